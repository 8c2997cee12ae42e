// The dashboard against a node with API tokens (docs/security.md). A browser's EventSource
// cannot send headers, so the token lives in the `vigil_token` cookie, which the node accepts for
// GET requests only (SameSite=Strict: other sites' pages never send it). Writes (the admin
// form) send it in the Authorization header, read back from the cookie by this script; the node
// refuses a write that carries the cookie alone. The cookie lasts until the browser closes.

import { useState } from "preact/hooks";

const COOKIE = "vigil_token";
// RFC 6750's b64token, what the node accepts: nothing that could break out of the cookie.
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** The token the dashboard holds, if any. */
export function storedToken(): string | undefined {
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq >= 0 && part.slice(0, eq).trim() === COOKIE) {
      const v = part.slice(eq + 1).trim();
      return v === "" ? undefined : v;
    }
  }
  return undefined;
}

function writeCookie(value: string, maxAge?: number): void {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  const age = maxAge === undefined ? "" : `; Max-Age=${maxAge}`;
  // biome-ignore lint/suspicious/noDocumentCookie: the Cookie Store API is missing in Firefox and Safari
  document.cookie = `${COOKIE}=${value}; Path=/; SameSite=Strict${secure}${age}`;
}

export function forgetToken(): void {
  writeCookie("", 0);
  location.reload();
}

/** Whether `token` opens this node's API: a read of /v1/members with it in the header. */
async function tokenWorks(token: string): Promise<"ok" | "refused" | string> {
  try {
    const r = await fetch("/v1/members", {
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    });
    if (r.ok) return "ok";
    if (r.status === 401 || r.status === 403) return "refused";
    return `the node answered ${r.status}`;
  } catch (e) {
    return `cannot reach the node: ${(e as Error).message}`;
  }
}

/** Shown instead of the page when the node answered 401: asks for a token, then reloads. */
export function TokenPrompt() {
  const [value, setValue] = useState("");
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = value.trim();
    if (!TOKEN.test(token)) {
      setProblem("A token is letters, digits and - . _ ~ + / (as in the node's token file).");
      return;
    }
    setBusy(true);
    const r = await tokenWorks(token);
    setBusy(false);
    if (r === "ok") {
      writeCookie(token);
      location.reload();
    } else {
      setProblem(r === "refused" ? "The node does not accept this token." : r);
    }
  };
  return (
    <section class="panel token-prompt" aria-labelledby="token-h" data-testid="token-prompt">
      <h1 id="token-h" tabIndex={-1}>
        API token needed
      </h1>
      <p>
        This node's API needs a token. Paste one (a read token is enough to look; the admin actions need a
        write token). The browser keeps it until it closes.
      </p>
      <form onSubmit={submit}>
        <label class="field">
          Token
          <input
            type="password"
            name="token"
            autoComplete="off"
            spellcheck={false}
            value={value}
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
            data-testid="token-input"
          />
        </label>
        <button type="submit" class="primary" disabled={busy || value.trim() === ""}>
          Use token
        </button>
      </form>
      {problem !== "" ? (
        <p class="error" role="alert" data-testid="token-error">
          {problem}
        </p>
      ) : null}
    </section>
  );
}
