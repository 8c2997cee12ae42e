// Substring search over a byte stream without buffering it: each chunk is searched on its
// own, and only the last `needle.length - 1` bytes are kept to catch a match that straddles
// two chunks.

export class NeedleScanner {
  private readonly needle: Buffer;
  private tail: Buffer;
  found: boolean;

  constructor(needle: Buffer) {
    this.needle = needle;
    this.tail = Buffer.alloc(0);
    this.found = needle.length === 0;
  }

  /** Feeds the next chunk; true once the needle has been seen. */
  push(chunk: Buffer): boolean {
    if (this.found) return true;
    const keep = this.needle.length - 1;
    if (this.tail.length > 0) {
      // Only the junction needs a copy: the tail plus the first keep bytes of the chunk.
      const junction = Buffer.concat([this.tail, chunk.subarray(0, keep)]);
      if (junction.indexOf(this.needle) !== -1) this.found = true;
    }
    if (!this.found && chunk.indexOf(this.needle) !== -1) this.found = true;
    if (this.found) return true;
    if (chunk.length >= keep) {
      // A copy: the chunk may sit in a read buffer that the next read overwrites.
      this.tail = Buffer.from(chunk.subarray(chunk.length - keep));
    } else {
      const joined = Buffer.concat([this.tail, chunk]);
      this.tail = joined.subarray(Math.max(0, joined.length - keep));
    }
    return false;
  }
}
