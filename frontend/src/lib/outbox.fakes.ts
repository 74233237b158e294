// Fakes for the outbox's tests (outbox.*.test.ts): storage in memory, a clock the test moves,
// and a server that answers as scripted.

import { type Clock, type OutboxItem, Outbox, type SendOutcome, type StorageLike } from "./outbox";

export class MemoryStorage implements StorageLike {
  data = new Map<string, string>();
  failWrites = false;
  getItem(key: string) {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    if (this.failWrites) throw new Error("QuotaExceededError");
    this.data.set(key, value);
  }
}

export class FakeClock implements Clock {
  time = 1_000_000;
  timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  now() {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown) {
    this.timers = this.timers.filter((timer) => timer.id !== handle);
  }
  /** Move time forward, firing the timers that come due. */
  advance(ms: number) {
    this.time += ms;
    const due = this.timers.filter((timer) => timer.at <= this.time);
    this.timers = this.timers.filter((timer) => timer.at > this.time);
    for (const timer of due) timer.fn();
  }
  nextTimerIn(): number | null {
    if (!this.timers.length) return null;
    return Math.min(...this.timers.map((timer) => timer.at)) - this.time;
  }
}

/** A server we control: answers each send with the next scripted outcome (default: sent). */
export function fakeServer() {
  const received: OutboxItem[] = [];
  const script: SendOutcome[] = [];
  let online = true;
  const send = async (item: OutboxItem): Promise<SendOutcome> => {
    received.push({ ...item });
    if (!online) return { kind: "retry", error: "net::ERR_FAILED", offline: true };
    return script.shift() ?? { kind: "sent" };
  };
  return {
    received,
    script,
    send,
    setOnline(value: boolean) {
      online = value;
    },
  };
}

let ids = 0;
export function setup(storage = new MemoryStorage(), server = fakeServer(), clock = new FakeClock()) {
  const outbox = new Outbox({
    storage,
    key: "outbox:bob",
    send: server.send,
    clock,
    random: () => 0.5,
    newId: () => `id-${++ids}`,
  });
  return { outbox, storage, server, clock };
}

export const label = (image: number, name = "3") => ({ project: 1, image, label: name, durationMs: 800 });
