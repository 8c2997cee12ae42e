import type { CheckSpec, TargetAddr } from "../config/types.ts";

/** The outcome of one probe. `reason` is short and human: "status 503", "connect ECONNREFUSED". */
export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  reason: string;
}

export interface CheckRequest {
  spec: CheckSpec;
  target: TargetAddr;
  timeoutMs: number;
  /** Aborts the check early (shutdown); the result is then a failure with reason "aborted". */
  signal?: AbortSignal;
}

/** The Prober port: real checkers in src/checkers, a scripted one in the simulator. */
export interface Prober {
  check(req: CheckRequest): Promise<CheckResult>;
  /** Closes kept-alive connections and other resources. */
  close(): Promise<void>;
}
