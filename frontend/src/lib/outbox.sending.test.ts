import { describe, expect, it } from "vitest";

import { Outbox } from "./outbox";
import { FakeClock, MemoryStorage, label, setup } from "./outbox.fakes";

describe("Outbox: sending", () => {
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

  it("does not let one image's stuck label hold back other images", async () => {
    const { outbox, server } = setup();
    server.script.push({ kind: "retry", error: "HTTP 500" });
    outbox.enqueue(label(1));
    outbox.enqueue(label(2));
    await outbox.flush();
    expect(outbox.pending().map((item) => item.image)).toEqual([1]);
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

describe("Outbox: changing a label", () => {
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
});
