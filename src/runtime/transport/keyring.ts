import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { ErrorCode, VigilError } from "../../core/errors.ts";

// AES-256-GCM on every gossip packet and stream. Layout of a sealed message:
//   [1: format version = 1][12: random nonce][N: ciphertext][16: GCM tag]
// The cluster label is the additional authenticated data, so two clusters sharing a key
// but not a label still cannot talk. The first key encrypts; every key is tried to decrypt,
// so a cluster rotates keys by rolling restarts: add the new key second, then first, then
// drop the old one.

const FORMAT_V1 = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const SEAL_OVERHEAD_BYTES = 1 + NONCE_BYTES + TAG_BYTES;

export class Keyring {
  private readonly keys: Buffer[];
  private readonly aad: Buffer;

  constructor(base64Keys: readonly string[], label = "vigil") {
    if (base64Keys.length === 0) throw new VigilError(ErrorCode.config, "a keyring needs at least one key");
    this.keys = base64Keys.map((k, i) => {
      const buf = Buffer.from(k, "base64");
      if (buf.length !== 32 || buf.toString("base64") !== k) {
        throw new VigilError(
          ErrorCode.config,
          "expected the base64 form of exactly 32 bytes (vigil keygen makes one)",
          {
            path: `node.encrypt_keys[${i}]`,
          },
        );
      }
      return buf;
    });
    this.aad = Buffer.from(label, "utf8");
  }

  get size(): number {
    return this.keys.length;
  }

  seal(plain: Uint8Array): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.keys[0]!, nonce);
    cipher.setAAD(this.aad);
    const body = cipher.update(plain);
    cipher.final();
    return Buffer.concat([Buffer.of(FORMAT_V1), nonce, body, cipher.getAuthTag()]);
  }

  /** The plaintext, or undefined when no key opens it (wrong key, wrong label, tampered). */
  open(sealed: Uint8Array): Buffer | undefined {
    if (sealed.length < SEAL_OVERHEAD_BYTES || sealed[0] !== FORMAT_V1) return undefined;
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    const nonce = buf.subarray(1, 1 + NONCE_BYTES);
    const body = buf.subarray(1 + NONCE_BYTES, buf.length - TAG_BYTES);
    const tag = buf.subarray(buf.length - TAG_BYTES);
    for (const key of this.keys) {
      try {
        const d = createDecipheriv("aes-256-gcm", key, nonce);
        d.setAAD(this.aad);
        d.setAuthTag(tag);
        const out = d.update(body);
        d.final();
        return out;
      } catch {
        // Not this key: try the next one.
      }
    }
    return undefined;
  }
}
