import pino, { type Logger } from "pino";

export type { Logger };

/**
 * Structured logs (JSON lines) on stderr, so stdout stays for what a command prints.
 * VIGIL_LOG_LEVEL sets the level (trace|debug|info|warn|error|silent).
 */
export function createLogger(bindings: Record<string, unknown> = {}, level?: string): Logger {
  return pino(
    { level: level ?? process.env.VIGIL_LOG_LEVEL ?? "info", base: { pid: process.pid, ...bindings } },
    pino.destination({ dest: 2, sync: false }),
  );
}

export const silentLogger: Logger = pino({ level: "silent" });
