// TCP checks: connect, optionally write `send`, optionally wait for `expect` in what comes
// back. What is read is searched as it arrives and never kept past the needle's length.

import { connect as netConnect, type Socket } from "node:net";
import type { TcpCheckSpec } from "../config/types.ts";
import { limits } from "../core/limits.ts";
import { Attempt, type CheckerContext, closeWithReset } from "./attempt.ts";
import { NeedleScanner } from "./scan.ts";
import type { CheckRequest, CheckResult } from "./types.ts";

export function checkTcp(spec: TcpCheckSpec, req: CheckRequest, ctx: CheckerContext): Promise<CheckResult> {
  return new TcpAttempt(spec, req, ctx).run();
}

class TcpAttempt extends Attempt {
  private readonly spec: TcpCheckSpec;
  private readonly host: string;
  private readonly port: number;
  private socket: Socket | undefined;
  private scanner: NeedleScanner | undefined;
  private connected = false;
  private readBytes = 0;

  constructor(spec: TcpCheckSpec, req: CheckRequest, ctx: CheckerContext) {
    super(req, ctx.inflight);
    this.spec = spec;
    this.host = req.target.host;
    this.port = req.target.port;
  }

  protected start(): void {
    const socket = netConnect({ host: this.host, port: this.port });
    this.socket = socket;
    socket.on("connect", this.onConnect);
    socket.on("error", this.onError);
    if (this.spec.expect !== undefined) {
      this.scanner = new NeedleScanner(Buffer.from(this.spec.expect, "utf8"));
      socket.on("data", this.onData);
      socket.on("end", this.onEnd);
    }
  }

  private readonly onConnect = (): void => {
    this.connected = true;
    const { send, expect } = this.spec;
    const socket = this.socket!;
    if (send !== undefined && send !== "") {
      // Without an expectation the check is done once the bytes are handed to the kernel.
      socket.write(send, expect === undefined ? this.onSent : undefined);
      return;
    }
    if (expect === undefined || this.scanner!.found) this.finish(true, "connected");
  };

  private readonly onSent = (err?: Error | null): void => {
    if (err) this.fail(err);
    else this.finish(true, "connected");
  };

  private readonly onData = (chunk: Buffer): void => {
    const room = limits.maxTcpExpectBytes - this.readBytes;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.readBytes += part.length;
    if (this.scanner!.push(part)) {
      this.finish(true, `got ${quote(this.spec.expect!)}`);
      return;
    }
    if (this.readBytes >= limits.maxTcpExpectBytes) {
      this.finish(false, `${quote(this.spec.expect!)} not in the first ${limits.maxTcpExpectBytes} bytes`);
    }
  };

  private readonly onEnd = (): void => {
    this.finish(false, `closed after ${this.readBytes} bytes without ${quote(this.spec.expect!)}`);
  };

  private readonly onError = (err: Error): void => {
    this.fail(err);
  };

  override timedOut(): void {
    if (!this.connected || this.spec.expect === undefined) {
      super.timedOut();
      return;
    }
    this.finish(
      false,
      `timeout after ${this.timeoutMs}ms waiting for ${quote(this.spec.expect)} (read ${this.readBytes} bytes)`,
    );
  }

  protected release(): void {
    if (this.socket !== undefined) closeWithReset(this.socket);
  }
}

function quote(s: string): string {
  return JSON.stringify(s);
}
