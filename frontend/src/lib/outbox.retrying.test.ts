import { describe, expect, it } from "vitest";

import { classifyResponse, Outbox } from "./outbox";
import { FakeClock, MemoryStorage, label, setup } from "./outbox.fakes";

describe("Outbox: retrying", () => {
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

  it("waits at least as long as a 429 asks", async () => {
    const { outbox, server, clock } = setup();
    server.script.push(classifyResponse(429, "throttled", "slow down", 30));
    outbox.enqueue(label(1));
    await outbox.flush();
    expect(clock.nextTimerIn()).toBe(30_000);
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
});

describe("Outbox: waiting for the network", () => {
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
});
