import { describe, expect, it } from "vitest";

import { annotationBody, itemView } from "./outbox";
import { fakeServer, label, MemoryStorage, setup } from "./outbox.fakes";

describe("Outbox: the view a label was made in", () => {
  it("keeps a grid label's view through storage and sends it as view: grid", async () => {
    const storage = new MemoryStorage();
    const offline = fakeServer();
    offline.setOnline(false);
    const first = setup(storage, offline);
    first.outbox.enqueue({ ...label(3), view: "grid", durationMs: 250 });
    first.outbox.enqueue(label(4));
    await first.outbox.flush();
    first.outbox.dispose(); // a reload

    const server = fakeServer();
    const second = setup(storage, server);
    second.outbox.kick();
    await second.outbox.flush();
    expect(server.received.map(annotationBody)).toEqual([
      expect.objectContaining({ image: 3, view: "grid", duration_ms: 250 }),
      expect.objectContaining({ image: 4, view: "single", duration_ms: 800 }),
    ]);
  });

  it("sends an item stored before the grid existed (no view) as view: single", async () => {
    const storage = new MemoryStorage();
    const old = { clientId: "c-1", project: 1, image: 9, label: "2", durationMs: 700, createdAt: 1,
      attempts: 0, nextAttemptAt: 0, lastError: null };
    storage.setItem("outbox:bob", JSON.stringify({ items: [old], dropped: [] }));
    const server = fakeServer();
    const { outbox } = setup(storage, server);
    expect(itemView(outbox.pending()[0])).toBe("single");
    outbox.kick();
    await outbox.flush();
    expect(annotationBody(server.received[0])).toEqual({
      image: 9, label: "2", client_id: "c-1", duration_ms: 700, view: "single",
    });
  });

  it("keeps the view when a label not yet sent is changed in place", () => {
    const { outbox } = setup(new MemoryStorage(), fakeServer());
    outbox.dispose(); // nothing is sent: the item stays unsent, changeable in place
    outbox.enqueue({ ...label(5), view: "grid" });
    const changed = outbox.relabel({ project: 1, image: 5, label: "7" });
    expect(changed).toMatchObject({ image: 5, label: "7", view: "grid" });
  });
});
