import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { setAuthHooks } from "./api.ts";
import { forgetToken, storedToken, TokenPrompt } from "./auth.tsx";
import { ClusterPage } from "./cluster.tsx";
import { EventsPage } from "./events.tsx";
import { useConnState } from "./live.tsx";
import { OverviewPage } from "./overview.tsx";
import { TargetPage } from "./target.tsx";
import { applyTheme, storedTheme, ThemeToggle } from "./theme.tsx";
import "./styles.css";

// Hash routes keep every page a plain GET of `/`: the node serves one file, and links and
// the back button work without any server-side routing.
//   #/                      overview
//   #/target/{pool}/{addr}  one target
//   #/cluster               members
//   #/events                the event log

export type Route =
  | { page: "overview" }
  | { page: "target"; pool: string; target: string }
  | { page: "cluster" }
  | { page: "events" };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/");
  try {
    if (parts[0] === "target" && parts.length === 3 && parts[1] && parts[2]) {
      return { page: "target", pool: decodeURIComponent(parts[1]), target: decodeURIComponent(parts[2]) };
    }
  } catch {
    return { page: "overview" };
  }
  if (parts[0] === "cluster") return { page: "cluster" };
  if (parts[0] === "events") return { page: "events" };
  return { page: "overview" };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

const titles: Record<Route["page"], string> = {
  overview: "Overview",
  target: "Target",
  cluster: "Cluster",
  events: "Events",
};

/** Set when the node answers 401: the page gives way to the token prompt. */
let unauthorized = false;
const unauthorizedListeners = new Set<() => void>();
setAuthHooks({
  token: storedToken,
  onUnauthorized: () => {
    unauthorized = true;
    for (const l of unauthorizedListeners) l();
  },
});

function useUnauthorized(): boolean {
  const [u, setU] = useState(unauthorized);
  useEffect(() => {
    const on = () => setU(true);
    unauthorizedListeners.add(on);
    setU(unauthorized);
    return () => {
      unauthorizedListeners.delete(on);
    };
  }, []);
  return u;
}

function App() {
  const route = useRoute();
  const needToken = useUnauthorized();
  const hasToken = storedToken() !== undefined;
  const conn = useConnState();
  const [nodeName, setNodeName] = useState("");
  useEffect(() => {
    fetch("/v1/health")
      .then((r) => r.json())
      .then((h: { name?: string }) => setNodeName(h.name ?? ""))
      .catch(() => {});
  }, []);
  useEffect(() => {
    const what = route.page === "target" ? `${route.pool}/${route.target}` : titles[route.page];
    document.title = `${what} · Vigil${nodeName ? ` (${nodeName})` : ""}`;
  }, [route, nodeName]);
  const firstRoute = useRef(true);
  useEffect(() => {
    // After a navigation (not on load) move focus to the new page's heading, so keyboard and
    // screen-reader users land on it.
    if (firstRoute.current) {
      firstRoute.current = false;
      return;
    }
    requestAnimationFrame(() =>
      document.querySelector<HTMLElement>("main h1")?.focus({ preventScroll: true }),
    );
  }, [route]);
  const link = (href: string, page: Route["page"], label: string) => (
    <a href={href} aria-current={route.page === page ? "page" : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById("main")?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">Vigil{nodeName ? <small>node {nodeName}</small> : null}</span>
        <nav class="tabs" aria-label="Pages">
          {link("#/", "overview", "Overview")}
          {link("#/cluster", "cluster", "Cluster")}
          {link("#/events", "events", "Events")}
        </nav>
        <div class="top-right">
          <output class="conn" data-state={conn} aria-live="polite">
            {conn === "live" ? "Live" : conn === "connecting" ? "Connecting…" : "Disconnected"}
          </output>
          {hasToken ? (
            <button
              type="button"
              onClick={forgetToken}
              data-testid="forget-token"
              title="Remove the API token from this browser"
            >
              Forget token
            </button>
          ) : null}
          <ThemeToggle />
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {needToken ? (
          <TokenPrompt />
        ) : route.page === "overview" ? (
          <OverviewPage />
        ) : route.page === "target" ? (
          <TargetPage key={`${route.pool}/${route.target}`} pool={route.pool} target={route.target} />
        ) : route.page === "cluster" ? (
          <ClusterPage />
        ) : (
          <EventsPage />
        )}
      </main>
    </>
  );
}

applyTheme(storedTheme());
const root = document.getElementById("app");
if (root !== null) {
  root.textContent = "";
  render(<App />, root);
}
