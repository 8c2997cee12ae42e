// Wording shared by every config error: what was expected, what was found, where.
// Users read these after a typo at 3 a.m.; zod's generic wording names TypeScript types
// ("expected number, received string"), which is not what a YAML author thinks in.

/** How a found value is shown: strings quoted (and cut), other values by their YAML name. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (typeof value === "string") {
    const shown = value.length > maxShownChars ? `${value.slice(0, maxShownChars)}…` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === "number") {
    if (Number.isNaN(value)) return ".nan";
    if (!Number.isFinite(value)) return value > 0 ? ".inf" : "-.inf";
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return "a list";
  if (value instanceof Uint8Array) return "binary data";
  if (typeof value === "object") return "a mapping";
  return typeof value;
}

/** Found strings are echoed up to this many characters, so a pasted blob does not flood a log line. */
const maxShownChars = 80;

/** `expected <what>, got <found>`; a missing required key says so instead of "got nothing". */
export function expectedGot(what: string, input: unknown): string {
  if (input === undefined) return `missing required key: expected ${what}`;
  return `expected ${what}, got ${describeValue(input)}`;
}

/** The known key closest to `key`, when it is close enough to be a likely typo. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  const folded = foldKey(key);
  // camelCase or kebab-case spellings of a snake_case key are the commonest "typo".
  const sameFolded = known.find((k) => foldKey(k) === folded);
  if (sameFolded !== undefined) return sameFolded;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // One edit in short keys, up to a third of the length in long ones: "intervall", "obsevers".
  const allowed = Math.max(1, Math.floor(key.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

function foldKey(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, "");
}

/** Edit distance counting a swap of neighbours as one edit ("chekc" → "check"). Keys are short. */
function editDistance(a: string, b: string): number {
  if (a.length > maxKeyCharsCompared || b.length > maxKeyCharsCompared) return Number.POSITIVE_INFINITY;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const above = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((above[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (above[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row.push(best);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? Number.POSITIVE_INFINITY;
}

/** Keys longer than this are not typos of anything we know; skip the distance table. */
const maxKeyCharsCompared = 64;

/**
 * `unknown key "intervall" (did you mean "interval"?)`, or the list of valid keys when no
 * key is close. `owner` names the mapping when the valid keys depend on it ("a tcp check").
 */
export function unknownKeyMessage(key: string, known: readonly string[], owner?: string): string {
  const where = owner === undefined ? "" : ` for ${owner}`;
  const suggestion = didYouMean(key, known);
  if (suggestion !== undefined)
    return `unknown key ${JSON.stringify(key)}${where} (did you mean "${suggestion}"?)`;
  return `unknown key ${JSON.stringify(key)}${where} (expected one of: ${known.join(", ")})`;
}

/** `pools.web.check.expect.status[1]`; keys that are not plain words are bracket-quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (typeof segment === "string" && /^[A-Za-z0-9_-]+$/.test(segment)) {
      out += out === "" ? segment : `.${segment}`;
    } else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}
