// Handing a connection to another process (node.lookup_api: a lookup process passes the API
// connections it does not answer to the node) must not overtake the answers already written on
// it: they sit in this process's write queue, and the other process writes to the same socket.
// So the hand-over waits until that queue has drained into the kernel. A client that does not
// read them holds the queue full; it is cut off after a bound instead of being held here for good.

import type { Socket } from "node:net";

/**
 * Calls `go` once every byte already written on `socket` has left this process's write queue:
 * at once when none is waiting. Reads are paused meanwhile (what arrives stays in the kernel for
 * whoever takes the socket over). After `timeoutMs` without that, the socket is destroyed and
 * `onCutOff` called instead; an error or a close meanwhile ends it quietly.
 */
export function whenWritten(socket: Socket, timeoutMs: number, go: () => void, onCutOff: () => void): void {
  socket.pause();
  // The caller has taken its listeners off: an error from here on ends this socket, not the process.
  socket.on("error", () => socket.destroy());
  if (socket.writableLength === 0) {
    go();
    return;
  }
  const timer = setTimeout(() => {
    socket.off("drain", drained);
    onCutOff();
    socket.destroy();
  }, timeoutMs);
  const drained = (): void => {
    clearTimeout(timer);
    if (!socket.destroyed) go();
  };
  socket.once("drain", drained);
  socket.once("close", () => clearTimeout(timer));
}
