// Reading raw HTTP/1.1 responses off a socket, for tests that speak the protocol by hand.

export interface Reply {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Splits a byte stream into responses (each with a content-length); a tail that is not a whole
 * response is left out. */
export function parseReplies(raw: Buffer): Reply[] {
  const out: Reply[] = [];
  let at = 0;
  for (;;) {
    const end = raw.indexOf("\r\n\r\n", at);
    if (end < 0) return out;
    const lines = raw.toString("latin1", at, end).split("\r\n");
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      headers.set(l.slice(0, c).toLowerCase(), l.slice(c + 1).trim());
    }
    const length = Number(headers.get("content-length") ?? "0");
    if (raw.length < end + 4 + length) return out;
    out.push({
      status: Number(lines[0]!.split(" ")[1]),
      headers,
      body: raw.toString("utf8", end + 4, end + 4 + length),
    });
    at = end + 4 + length;
  }
}
