import { describe, expect, it } from "vitest";

import type { Task } from "./api";
import type { Clock } from "./outbox";
import { type RenewResult, TaskQueue, type TaskSource } from "./taskQueue";

const idleClock: Clock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };

function task(image: number): Task {
  return {
    image,
    file_url: `/api/images/${image}/file/`,
    lease_expires: "2030-01-01T00:00:00Z",
    suggestion: null,
    exploration: false,
  };
}

/** A server holding `pool` images: leases them in order, the caller's own leases first. */
function fakeSource(pool: number[]) {
  const leased: number[] = [];
  const requests: number[] = [];
  const released: number[] = [];
  const skips: boolean[] = [];
  const renewAnswers = new Map<number, RenewResult>();
  const source: TaskSource = {
    async next(count) {
      requests.push(count);
      const mine = leased.slice(0, count);
      const fresh = pool.filter((id) => !leased.includes(id)).slice(0, count - mine.length);
      leased.push(...fresh);
      return [...mine, ...fresh].map(task);
    },
    async renew(image) {
      return renewAnswers.get(image) ?? "ok";
    },
    async release(image, skip = true) {
      released.push(image);
      skips.push(skip);
      leased.splice(leased.indexOf(image), 1);
    },
    async preload(t) {
      return { src: `blob:${t.image}`, width: 28, height: 28 };
    },
    discard() {},
  };
  return { source, leased, requests, released, skips, renewAnswers, pool };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Label the task on screen: it leaves the queue, and the server ends its lease. */
function label(queue: TaskQueue, server: ReturnType<typeof fakeSource>, handled: Set<number>) {
  const done = queue.current()!;
  handled.add(done.image);
  server.leased.splice(server.leased.indexOf(done.image), 1);
  server.pool.splice(server.pool.indexOf(done.image), 1);
  return queue.take();
}

function makeQueue(server: ReturnType<typeof fakeSource>, handled = new Set<number>(), pending = 0) {
  return new TaskQueue({
    source: server.source,
    lookahead: 4,
    lowWater: 2,
    leaseSeconds: 600,
    pendingCount: () => pending,
    isHandled: (image) => handled.has(image),
    onChange: () => {},
    clock: idleClock,
  });
}

describe("TaskQueue: keeping tasks ready", () => {
  it("keeps the next tasks leased and their images loaded", async () => {
    const server = fakeSource([1, 2, 3, 4, 5, 6]);
    const queue = makeQueue(server);
    await queue.fill();
    await tick();
    expect(queue.tasks.map((t) => t.image)).toEqual([1, 2, 3, 4]);
    expect(queue.tasks.every((t) => t.src !== null)).toBe(true);
  });

  it("asks for what it holds plus what it wants, and keeps only what is new", async () => {
    const server = fakeSource([1, 2, 3, 4, 5, 6, 7]);
    const handled = new Set<number>();
    const queue = makeQueue(server, handled);
    await queue.fill();
    label(queue, server, handled);
    label(queue, server, handled);
    label(queue, server, handled); // 1 left: below low water, refill
    await queue.fill();
    expect(server.requests.at(-1)).toBe(4); // 1 held + 3 wanted
    expect(queue.tasks.map((t) => t.image)).toEqual([4, 5, 6, 7]);
  });

  it("after a reload, leaves out images whose labels are still in the outbox", async () => {
    const server = fakeSource([1, 2, 3, 4, 5, 6]);
    server.leased.push(1, 2); // labeled before the reload, labels not sent yet
    const queue = makeQueue(server, new Set([1, 2]), 2);
    await queue.fill();
    expect(server.requests).toEqual([6]);
    expect(queue.tasks.map((t) => t.image)).toEqual([3, 4, 5, 6]);
  });

  it("says all done when the server has nothing left", async () => {
    const queue = makeQueue(fakeSource([]));
    await queue.fill();
    expect(queue.loading).toBe(false);
    expect(queue.exhausted).toBe(true);
  });
});

describe("TaskQueue: skips, lost leases and failed refills", () => {
  it("gives a skipped image back once, and drops it if a racing refill offers it again", async () => {
    const server = fakeSource([1, 2]);
    const handled = new Set<number>();
    const queue = makeQueue(server, handled);
    await queue.fill();
    queue.skip(); // the refill this starts is offered 1 again
    await queue.fill();
    await tick();
    expect(server.released).toEqual([1]);
    expect(queue.tasks.map((t) => t.image)).toEqual([2]);
    label(queue, server, handled);
    await queue.fill();
    await tick();
    expect(queue.tasks).toEqual([]);
    expect(queue.exhausted).toBe(true);
  });

  it("gives every lease back without a skip on a switch to the grid, and stops", async () => {
    const server = fakeSource([1, 2, 3, 4, 5, 6]);
    const queue = makeQueue(server);
    await queue.fill();
    queue.skip(); // 1: a skip
    await queue.releaseAll(); // resolves once the releases are answered
    expect(server.released).toEqual([1, 2, 3, 4]);
    expect(server.skips).toEqual([true, false, false, false]);
    expect(queue.tasks).toEqual([]);
    await queue.fill();
    expect(server.requests).toHaveLength(1); // stopped: it asks for nothing more
  });

  it("drops a queued task whose lease was lost, but never the one on screen", async () => {
    const server = fakeSource([1, 2, 3, 4]);
    const queue = makeQueue(server);
    await queue.fill();
    server.renewAnswers.set(1, "lost");
    server.renewAnswers.set(3, "lost");
    await queue.renewAll();
    expect(queue.tasks.map((t) => t.image).slice(0, 3)).toEqual([1, 2, 4]);
  });

  it("keeps the tasks it has when a refill fails, and says why", async () => {
    const server = fakeSource([1, 2, 3]);
    const handled = new Set<number>();
    const queue = makeQueue(server, handled);
    await queue.fill();
    server.source.next = async () => {
      throw new Error("The server cannot be reached.");
    };
    label(queue, server, handled);
    label(queue, server, handled);
    await queue.fill();
    expect(queue.tasks.map((t) => t.image)).toEqual([3]);
    expect(queue.error).toBe("The server cannot be reached.");
  });
});
