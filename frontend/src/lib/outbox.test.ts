import { describe, expect, it } from "vitest";

import {
  backoffDelay,
  classifyResponse,
  type Clock,
  type OutboxItem,
  Outbox,
  type SendOutcome,
  type StorageLike,
  uuid4,
} from "./outbox";

class MemoryStorage implements StorageLike {
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

class FakeClock implements Clock {
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
function fakeServer() {
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
function setup(storage = new MemoryStorage(), server = fakeServer(), clock = new FakeClock()) {
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

const label = (image: number, name = "3") => ({ project: 1, image, label: name, durationMs: 800 });

describe("backoffDelay", () => {
  it("doubles after each failure, with jitter between half and all of the step", () => {
    const policy = { baseMs: 500, maxMs: 15_000 };
    expect(backoffDelay(1, policy, () => 0)).toBe(250);
    expect(backoffDelay(1, policy, () => 1)).toBe(500);
    expect(backoffDelay(2, policy, () => 1)).toBe(1000);
    expect(backoffDelay(4, policy, () => 1)).toBe(4000);
  });

  it("never waits longer than the ceiling", () => {
    expect(backoffDelay(30, { baseMs: 500, maxMs: 15_000 }, () => 1)).toBe(15_000);
    expect(backoffDelay(1000, { baseMs: 500, maxMs: 15_000 }, () => 0.999)).toBeLessThanOrEqual(
      15_000,
    );
  });
});

describe("classifyResponse", () => {
  it("counts 200 (a replay) and 201 as sent", () => {
    expect(classifyResponse(201).kind).toBe("sent");
    expect(classifyResponse(200).kind).toBe("sent");
  });

  it("retries when the network or the server failed", () => {
    expect(classifyResponse(0)).toMatchObject({ kind: "retry", offline: true });
    for (const status of [401, 408, 500, 502, 503, 504]) {
      expect(classifyResponse(status).kind).toBe("retry");
    }
  });

  it("honours the server's retry-after on 429", () => {
    expect(classifyResponse(429, "throttled", "slow down", 7)).toMatchObject({
      kind: "retry",
      retryAfterMs: 7000,
    });
  });

  it("drops what sending again cannot fix, keeping the reason", () => {
    expect(classifyResponse(409, "not_needed", "already labeled")).toEqual({
      kind: "drop",
      error: "already labeled",
      code: "not_needed",
    });
    for (const status of [400, 403, 404]) expect(classifyResponse(status).kind).toBe("drop");
  });
});

describe("Outbox", () => {
  it("persists a label before enqueue returns", () => {
    const { outbox, storage } = setup();
    outbox.enqueue(label(7));
    const stored = JSON.parse(storage.getItem("outbox:bob")!);
    expect(stored.items).toHaveLength(1);
    expect(stored.items[0]).toMatchObject({ image: 7, label: "3", durationMs: 800 });
  });

  it("sends labels in order and forgets them once the server has them", async () => {
    const { outbox, server, storage } = setup();
    outbox.enqueue(label(1));
    outbox.enqueue(label(2));
    outbox.enqueue(label(3));
    await outbox.flush();
    expect(server.received.map((item) => item.image)).toEqual([1, 2, 3]);
    expect(outbox.size).toBe(0);
    expect(JSON.parse(storage.getItem("outbox:bob")!).items).toEqual([]);
  });

  it("gives every label its own idempotency key", () => {
    const outbox = new Outbox({
      storage: new MemoryStorage(),
      key: "k",
      send: () => new Promise(() => {}),
      clock: new FakeClock(),
    });
    const a = outbox.enqueue(label(1));
    const b = outbox.enqueue(label(2));
    expect(a.clientId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.clientId).not.toBe(b.clientId);
  });

  it("keeps labels through a reload: a new outbox on the same storage sends them", async () => {
    const storage = new MemoryStorage();
    const offline = fakeServer();
    offline.setOnline(false);
    const first = setup(storage, offline);
    first.outbox.enqueue(label(1));
    first.outbox.enqueue(label(2));
    await first.outbox.flush();
    first.outbox.dispose(); // the tab is gone

    const server = fakeServer();
    const second = setup(storage, server);
    expect(second.outbox.size).toBe(2);
    second.outbox.kick();
    await second.outbox.flush();
    expect(server.received.map((item) => item.image)).toEqual([1, 2]);
    expect(second.outbox.size).toBe(0);
  });

  it("still counts a label delivered after a reload as handled, so its task is not shown again", async () => {
    // The old tab stored the label and died; the new one sends it while a task list asked
    // for earlier (holding that image's lease) is on its way: the image must stay handled.
    const storage = new MemoryStorage();
    const offline = fakeServer();
    offline.setOnline(false);
    const first = setup(storage, offline);
    first.outbox.enqueue(label(7));
    await first.outbox.flush();
    first.outbox.dispose();

    const second = setup(storage, fakeServer());
    expect(second.outbox.handled(7)).toBe(true);
    second.outbox.kick();
    await second.outbox.flush();
    expect(second.outbox.hasPending(7)).toBe(false);
    expect(second.outbox.handled(7)).toBe(true);
    expect(second.outbox.handled(8)).toBe(false);
  });

  it("retries with growing delays while offline, and sends everything when back", async () => {
    const { outbox, server, clock } = setup();
    server.setOnline(false);
    for (const image of [1, 2, 3, 4, 5]) outbox.enqueue(label(image));
    await outbox.flush();
    expect(outbox.size).toBe(5);

    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const wait = clock.nextTimerIn()!;
      delays.push(wait);
      clock.advance(wait);
      await outbox.flush();
    }
    expect(delays).toEqual([375, 750, 1500, 3000]); // random() = 0.5: 3/4 of each step
    expect(outbox.size).toBe(5);

    server.setOnline(true);
    clock.advance(clock.nextTimerIn()!);
    await outbox.flush();
    expect(outbox.size).toBe(0);
    const arrived = server.received.filter((_, i, all) => all.length - i <= 5);
    expect(arrived.map((item) => item.image)).toEqual([1, 2, 3, 4, 5]);
  });

  it("does not send the others while the network is down: one probe per attempt", async () => {
    const { outbox, server } = setup();
    server.setOnline(false);
    outbox.enqueue(label(1));
    await outbox.flush();
    const before = server.received.length;
    outbox.enqueue(label(2)); // kicks: one probe (the oldest), not one request per item
    await outbox.flush();
    expect(server.received.length - before).toBe(1);
    expect(server.received.at(-1)!.image).toBe(1);
  });

  it("retries with the same idempotency key, so a lost response cannot make two labels", async () => {
    const { outbox, server, clock } = setup();
    server.script.push({ kind: "retry", error: "HTTP 502" });
    const item = outbox.enqueue(label(9));
    await outbox.flush();
    clock.advance(clock.nextTimerIn()!);
    await outbox.flush();
    expect(server.received.map((sent) => sent.clientId)).toEqual([item.clientId, item.clientId]);
    expect(outbox.size).toBe(0);
  });

  it("waits at least as long as a 429 asks", async () => {
    const { outbox, server, clock } = setup();
    server.script.push(classifyResponse(429, "throttled", "slow down", 30));
    outbox.enqueue(label(1));
    await outbox.flush();
    expect(clock.nextTimerIn()).toBe(30_000);
  });

  it("kick retries at once, e.g. when another request shows the network is back", async () => {
    const { outbox, server, clock } = setup();
    server.setOnline(false);
    outbox.enqueue(label(1));
    await outbox.flush();
    clock.advance(clock.nextTimerIn()!);
    await outbox.flush(); // second failure: the next try is seconds away
    server.setOnline(true);
    outbox.kick();
    await outbox.flush();
    expect(outbox.size).toBe(0);
  });

  it("networkBack retries only when sending was waiting for the network", async () => {
    const { outbox, server, clock } = setup();
    server.script.push({ kind: "retry", error: "HTTP 500" });
    outbox.enqueue(label(1));
    await outbox.flush();
    const sent = server.received.length;
    outbox.networkBack(); // a server error is not fixed by the network coming back
    await outbox.flush();
    expect(server.received.length).toBe(sent);

    server.setOnline(false);
    clock.advance(clock.nextTimerIn()!);
    await outbox.flush();
    expect(outbox.offline).toBe(true);
    server.setOnline(true);
    outbox.networkBack();
    await outbox.flush();
    expect(outbox.size).toBe(0);
    expect(outbox.offline).toBe(false);
  });

  it("drops a label the server refuses for good and keeps the reason to show", async () => {
    const { outbox, server } = setup();
    server.script.push({ kind: "drop", error: "image already labeled", code: "not_needed" });
    outbox.enqueue(label(1));
    outbox.enqueue(label(2));
    await outbox.flush();
    expect(outbox.size).toBe(0);
    expect(outbox.dropped()).toHaveLength(1);
    expect(outbox.dropped()[0]).toMatchObject({ image: 1, code: "not_needed" });
  });

  it("treats a send that throws as the network being down", async () => {
    const storage = new MemoryStorage();
    const clock = new FakeClock();
    const outbox = new Outbox({
      storage,
      key: "k",
      clock,
      random: () => 0.5,
      send: async () => {
        throw new TypeError("Failed to fetch");
      },
    });
    outbox.enqueue(label(1));
    await outbox.flush();
    expect(outbox.size).toBe(1);
    expect(outbox.pending()[0]).toMatchObject({ attempts: 1, lastError: "TypeError: Failed to fetch" });
  });

  it("changes an unsent label in place when the annotator undoes and relabels", () => {
    const storage = new MemoryStorage();
    const outbox = new Outbox({
      storage,
      key: "k",
      clock: new FakeClock(),
      send: () => new Promise(() => {}), // the first label is in flight forever
    });
    outbox.enqueue(label(1, "3"));
    const second = outbox.enqueue(label(2, "5"));
    const changed = outbox.relabel(label(2, "6"));
    expect(changed.clientId).toBe(second.clientId);
    expect(outbox.pending().map((item) => item.label)).toEqual(["3", "6"]);
  });

  it("sends a change as a new label after one that may have reached the server", async () => {
    const { outbox, server, clock } = setup();
    server.script.push({ kind: "retry", error: "HTTP 504" }); // reached the server? unknown
    const first = outbox.enqueue(label(4, "1"));
    await outbox.flush();
    const change = outbox.relabel(label(4, "7"));
    expect(change.clientId).not.toBe(first.clientId);
    await outbox.flush();
    // The new label retries the original first: labels of one image go in order.
    expect(server.received.map((item) => item.label)).toEqual(["1", "1", "7"]);
    expect(outbox.size).toBe(0);
    expect(clock.nextTimerIn()).toBeNull();
  });

  it("does not let one image's stuck label hold back other images", async () => {
    const { outbox, server } = setup();
    server.script.push({ kind: "retry", error: "HTTP 500" });
    outbox.enqueue(label(1));
    outbox.enqueue(label(2));
    await outbox.flush();
    expect(outbox.pending().map((item) => item.image)).toEqual([1]);
  });

  it("keeps labels in memory and says so when storage refuses writes", () => {
    const storage = new MemoryStorage();
    storage.failWrites = true;
    const outbox = new Outbox({ storage, key: "k", clock: new FakeClock(), send: () => new Promise(() => {}) });
    outbox.enqueue(label(1));
    expect(outbox.size).toBe(1);
    expect(outbox.persistError).toContain("QuotaExceededError");
  });

  it("starts empty from unreadable storage instead of failing", () => {
    const storage = new MemoryStorage();
    storage.setItem("k", "{not json");
    const outbox = new Outbox({ storage, key: "k", send: async () => ({ kind: "sent" }) });
    expect(outbox.size).toBe(0);
  });

  it("adopts labels another tab of the same user stored, and sends them", async () => {
    const storage = new MemoryStorage();
    const hang = () => new Promise<SendOutcome>(() => {});
    const other = new Outbox({ storage, key: "k", clock: new FakeClock(), send: hang });
    const theirs = other.enqueue(label(11));

    const server = fakeServer();
    const mine = new Outbox({ storage, key: "k", clock: new FakeClock(), send: server.send });
    mine.enqueue(label(12));
    await mine.flush();
    expect(server.received.map((item) => item.clientId)).toContain(theirs.clientId);
    expect(mine.size).toBe(0);
  });

  it("tells subscribers when the pending count changes", async () => {
    const { outbox } = setup();
    const sizes: number[] = [];
    outbox.subscribe(() => sizes.push(outbox.size));
    outbox.enqueue(label(1));
    await outbox.flush();
    expect(sizes).toEqual([1, 0]);
  });
});

describe("uuid4", () => {
  it("makes version-4 UUIDs the server accepts", () => {
    expect(uuid4()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
