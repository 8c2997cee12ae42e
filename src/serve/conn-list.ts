// The open connections of a server, as an intrusive doubly linked list, not a Set or a Map.
//
// Why: at thousands of short connections a second, a Set of sockets (add on accept, delete on
// close) made every young-generation GC of the node take 5-15 ms instead of under 1 ms, and the
// old generation grow by about 1 KB per connection until the next full GC (bench/lookup.ts, agent
// mode, with --trace-gc). The Set's backing table lives in the old generation and is rebuilt as
// entries churn; the tables it leaves behind still point at sockets that have closed, and the
// young-generation GC, which must treat old-to-young pointers as roots, keeps those sockets alive
// and promotes them. Per-connection timers did the same through the timer lists. A linked list
// whose removed entries drop their links leaves nothing pointing at a closed connection.

/** An entry: the list's own fields, on the object itself. */
export interface Linked<T> {
  prev: T | undefined;
  next: T | undefined;
  listed: boolean;
}

export class ConnList<T extends Linked<T>> {
  head: T | undefined;
  tail: T | undefined;
  size = 0;

  /** Appends `c`: the list stays in the order entries were added. */
  push(c: T): void {
    if (c.listed) return;
    c.listed = true;
    c.prev = this.tail;
    c.next = undefined;
    if (this.tail === undefined) this.head = c;
    else this.tail.next = c;
    this.tail = c;
    this.size++;
  }

  /** Removes `c` if listed; a removed entry keeps no link to any other. */
  remove(c: T): void {
    if (!c.listed) return;
    if (c.prev === undefined) this.head = c.next;
    else c.prev.next = c.next;
    if (c.next === undefined) this.tail = c.prev;
    else c.next.prev = c.prev;
    c.prev = undefined;
    c.next = undefined;
    c.listed = false;
    this.size--;
  }

  /** The entries, oldest first; removing the current one while iterating is safe. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let c = this.head; c !== undefined; ) {
      const next = c.next;
      yield c;
      c = next;
    }
  }
}
