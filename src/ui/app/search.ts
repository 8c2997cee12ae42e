import { type Effective, effectiveStates } from "./format.ts";

// The overview's search box. Pure: node tests cover it.

/** `state:down` / `is:down` words in the search box filter by state; the rest is the text. */
export function splitSearch(input: string): { text: string; states: Effective[] } {
  const states: Effective[] = [];
  const words: string[] = [];
  for (const w of input.trim().split(/\s+/)) {
    const m = /^(?:state|is|status):(\w+)$/i.exec(w);
    const s = m?.[1]?.toLowerCase();
    if (s !== undefined && (effectiveStates as readonly string[]).includes(s)) states.push(s as Effective);
    else if (w !== "") words.push(w);
  }
  return { text: words.join(" "), states };
}
