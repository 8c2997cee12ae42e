import { connect } from "node:net";

/** One agent-check exchange as HAProxy makes it: connect, send the line, read to the close. */
export function askAgent(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => s.write(line));
    let out = "";
    s.setEncoding("latin1");
    s.on("data", (d) => {
      out += d;
    });
    s.on("end", () => resolve(out));
    s.on("error", reject);
  });
}
