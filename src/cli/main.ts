// Must stay the first import: it filters a warning that later imports emit.
import "../runtime/warnings.ts";
import { parseArgs } from "node:util";
import { isVigilError } from "../core/errors.ts";
import { cmdAgent } from "./agent.ts";
import { cmdCheck } from "./check.ts";
import { cmdDemo } from "./demo.ts";
import { cmdKeygen, cmdMembers, cmdStatus } from "./remote.ts";
import { UsageError } from "./usage.ts";

const HELP = `vigil — distributed active health checking

usage:
  vigil agent --config vigil.yaml [--name N] [--join host:port,...]   run a node
  vigil demo                                                          a local cluster with demo origins
  vigil check <url>                  one-shot check: http(s)://…, tcp://host:port, dns://server/name,
                                     grpc://host:port[/service], tls://host:port  (exit 0 up, 1 down)
  vigil status [pool[/target]] [--server URL] [--json]                table of verdicts
  vigil members [--server URL] [--json]                               the membership view
      status and members: --token-file FILE | --token T (or VIGIL_TOKEN) when the API needs a
      token; --ca FILE to trust a private CA for an https:// server
  vigil keygen                                                        a new base64 gossip key

exit codes: 0 ok, 1 failure of the thing asked about, 2 bad usage or bad config`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "agent":
        return await cmdAgent(rest);
      case "demo":
        return await cmdDemo(rest);
      case "check":
        return await cmdCheck(rest);
      case "status":
        return await cmdStatus(rest);
      case "members":
        return await cmdMembers(rest);
      case "keygen":
        return cmdKeygen(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(`${HELP}\n`);
        return cmd === undefined ? 2 : 0;
      case "--version":
      case "version":
        process.stdout.write(`${(await import("../version.ts")).VERSION}\n`);
        return 0;
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`vigil: ${err.message}\n\n${HELP}\n`);
      return 2;
    }
    if (isVigilError(err)) {
      process.stderr.write(`vigil: ${err.describe()}\n`);
      return err.code === "VIGIL_ERR_CONFIG" || err.code === "VIGIL_ERR_USAGE" ? 2 : 1;
    }
    throw err;
  }
}

export { parseArgs };

// Run when invoked as the entry point (node src/cli/main.ts …, or bin/vigil.js).
const entry = process.argv[1] ?? "";
if (entry.endsWith("main.ts") || entry.endsWith("vigil.js") || entry.endsWith("/vigil")) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`vigil: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 70;
    },
  );
}
