// node:sqlite, loaded on first use instead of at import: a static import loads the builtin while
// the module graph links, and its ExperimentalWarning is printed before any code of ours can
// filter it (src/runtime/warnings.ts).
import type * as Sqlite from "node:sqlite";

let mod: typeof Sqlite | undefined;

export function sqlite(): typeof Sqlite {
  mod ??= process.getBuiltinModule("node:sqlite") as typeof Sqlite;
  return mod;
}
