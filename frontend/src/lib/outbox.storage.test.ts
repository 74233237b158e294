import { describe, expect, it } from "vitest";

import { Outbox, type SendOutcome } from "./outbox";
import { FakeClock, MemoryStorage, fakeServer, label, setup } from "./outbox.fakes";

describe("Outbox: storage", () => {
  it("persists a label before enqueue returns", () => {
    const { outbox, storage } = setup();
    outbox.enqueue(label(7));
    const stored = JSON.parse(storage.getItem("outbox:bob")!);
    expect(stored.items).toHaveLength(1);
    expect(stored.items[0]).toMatchObject({ image: 7, label: "3", durationMs: 800 });
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
});

describe("Outbox: across a reload", () => {
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
});
