import { describe, expect, it } from "vitest";

import type { GridAnswer, GridTask } from "./grid";
import { type GridSource, GridSession } from "./gridSession";
import { FakeClock } from "./outbox.fakes";
import type { RenewResult } from "./taskQueue";

function task(image: number, suggestion: string | null = "7"): GridTask {
  return { image, file_url: `/f/${image}`, lease_expires: "", suggestion, exploration: false, confidence: 0.9 };
}
const page = (tasks: GridTask[], proposed = "7"): GridAnswer => ({ grid: true, reason: "", message: "", proposed, min_confidence: 0.9, tasks });
const none: GridAnswer = { grid: false, reason: "no_confident_page", message: "Too few.", proposed: null, min_confidence: 0.9, tasks: [] };

/** A server and an image loader we control: pages answered in turn, preloads resolved by hand. */
function fakeSource(answers: GridAnswer[]) {
  const released: number[] = [];
  const discarded: string[] = [];
  const asked: { ids: readonly number[]; prefetch: boolean }[] = [];
  const waiting = new Map<number, () => void>();
  const renewals = new Map<number, RenewResult>();
  const source: GridSource = {
    page: async (_size, ids, prefetch) => {
      asked.push({ ids, prefetch: prefetch ?? false });
      return answers.shift() ?? { grid: false, reason: "no_confident_page", message: "The model is sure of too few.", proposed: null, min_confidence: 0.9, tasks: [] };
    },
    renew: async (image) => renewals.get(image) ?? "ok",
    release: async (image) => void released.push(image),
    preload: (t) => new Promise((resolve) => waiting.set(t.image, () => resolve({ src: `blob:${t.image}`, width: 28, height: 28 }))),
    discard: (src) => void discarded.push(src),
  };
  const decodeAll = async () => {
    await Promise.resolve();
    for (const [image, resolve] of [...waiting]) {
      waiting.delete(image);
      resolve();
    }
    for (let n = 0; n < 5; n++) await Promise.resolve();
  };
  /** Until nothing waits: the page, then the page ahead. */
  const settle = async () => {
    for (let n = 0; n < 3; n++) await decodeAll();
  };
  return { source, released, discarded, asked, renewals, decodeAll, settle };
}

function session(answers: GridAnswer[], handled: number[] = [], unsent = new Set<number>(), ids: number[] = []) {
  const fake = fakeSource(answers);
  const clock = new FakeClock();
  const refused: string[] = [];
  const grid = new GridSession({
    source: fake.source,
    ids,
    leaseSeconds: 30,
    isHandled: (image) => handled.includes(image),
    isUnsent: (image) => unsent.has(image),
    submit: (labels) => labels.forEach((label) => unsent.add(label.image)), // the outbox
    onChange: () => {},
    onRefused: (reason, message) => refused.push(`${reason}: ${message}`),
    clock,
  });
  return { grid, fake, clock, refused, unsent };
}

describe("GridSession", () => {
  it("shows a page only once every image on it is decoded", async () => {
    const { grid, fake } = session([page([task(1), task(2), task(3)])]);
    grid.start();
    await Promise.resolve();
    expect(grid.page).toBeNull();
    expect(grid.loading).toBe(true);
    await fake.decodeAll();
    expect(grid.page?.cells.map((c) => c.src)).toEqual(["blob:1", "blob:2", "blob:3"]);
    expect(grid.loading).toBe(false);
  });

  it("accepts a page with the time on screen shared, and shows the page leased ahead at once", async () => {
    const { grid, fake, clock } = session([page([task(1), task(2)]), page([task(3)], "5")]);
    grid.start();
    await fake.settle(); // the page, then the next one ahead
    expect(fake.asked).toEqual([{ ids: [], prefetch: false }, { ids: [], prefetch: true }]);
    expect(grid.page?.cells.map((c) => c.task.image)).toEqual([1, 2]); // still this one
    clock.time += 3000;
    const { labels, missing } = grid.accept();
    expect(missing).toEqual([]);
    expect(labels.map((l) => [l.image, l.label, l.durationMs])).toEqual([[1, "7", 1500], [2, "7", 1500]]);
    expect(fake.released).toEqual([]); // the labels end those leases
    // No wait for the labels to reach the server, no request, no decoding: it is on screen.
    expect(grid.page?.cells.map((c) => [c.task.image, c.src])).toEqual([[3, "blob:3"]]);
    expect(grid.page?.proposed).toBe("5");
    expect(grid.loading).toBe(false);
    await fake.decodeAll();
    expect(fake.asked.slice(2)).toEqual([{ ids: [], prefetch: true }]); // and the one after it
  });

  it("refuses Enter while a cell has no label and puts the cursor on it", async () => {
    const { grid, fake } = session([page([task(1), task(2, null)])]);
    grid.start();
    await fake.decodeAll();
    expect(grid.accept()).toEqual({ labels: [], missing: [1] });
    expect(grid.page?.cursor).toBe(1);
    expect(fake.asked.filter((a) => !a.prefetch)).toHaveLength(1);
  });


});

describe("GridSession: the page ahead", () => {
  it("Enter before the page ahead has arrived shows it as soon as it is decoded", async () => {
    const { grid, fake } = session([page([task(1)]), page([task(2)])]);
    grid.start();
    await Promise.resolve();
    await fake.decodeAll(); // the page shows; the one ahead is asked for, not yet decoded
    expect(grid.page?.cells.map((c) => c.task.image)).toEqual([1]);
    expect(fake.asked).toHaveLength(2);
    grid.accept();
    expect(grid.page).toBeNull();
    expect(grid.loading).toBe(true);
    await fake.decodeAll();
    expect(grid.page?.cells.map((c) => c.task.image)).toEqual([2]);
    expect(fake.asked.filter((a) => !a.prefetch)).toHaveLength(1);
  });

  it("with nothing ahead, asks for the next page only once the accepted page's labels have reached the server", async () => {
    // Asked before, the server would hand the page back: its leases are still the caller's.
    const { grid, fake, clock, unsent, refused } = session([page([task(1), task(2)]), none, page([task(3)])]);
    grid.start();
    await fake.decodeAll();
    expect(refused).toEqual([]); // a refused prefetch is not the grid's end
    grid.accept();
    expect([...unsent]).toEqual([1, 2]); // queued before anything else happens
    expect(grid.sending).toBe(true);
    clock.advance(500);
    await fake.decodeAll();
    expect(fake.asked).toHaveLength(2);
    unsent.clear(); // delivered
    clock.advance(100);
    await fake.decodeAll();
    expect(fake.asked[2]).toEqual({ ids: [], prefetch: false });
    expect(grid.sending).toBe(false);
    expect(grid.page?.cells.map((c) => c.task.image)).toEqual([3]);
  });

  it("a lasso's selection is one page: nothing is asked for ahead", async () => {
    const { grid, fake } = session([page([task(1), task(2)])], [], new Set(), [1, 2, 9]);
    grid.start();
    await fake.decodeAll();
    expect(fake.asked).toEqual([{ ids: [1, 2, 9], prefetch: false }]);
  });
});

describe("GridSession: leases", () => {
  it("gives every lease on screen and ahead back (no skip) when the page is left", async () => {
    const { grid, fake } = session([page([task(1), task(2)]), page([task(3)])]);
    grid.start();
    await fake.settle();
    grid.stop();
    await Promise.resolve();
    expect(fake.released).toEqual([1, 2, 3]);
    expect(fake.discarded).toEqual(["blob:1", "blob:2", "blob:3"]);
  });

  it("gives back what comes ahead after the page was left", async () => {
    const { grid, fake } = session([page([task(1)]), page([task(2), task(3)])]);
    grid.start();
    await Promise.resolve();
    await fake.decodeAll(); // the one ahead is asked for
    grid.stop();
    await fake.decodeAll();
    expect(fake.released).toEqual([1, 2, 3]);
  });

  it("says why when the server serves no grid", async () => {
    const { grid, refused } = session([]);
    grid.start();
    for (let n = 0; n < 5; n++) await Promise.resolve();
    expect(refused).toEqual(["no_confident_page: The model is sure of too few."]);
    expect(grid.page).toBeNull();
  });

  it("leaves out images labeled here already (their label still on its way)", async () => {
    const { grid, fake } = session([page([task(1), task(2)])], [1]);
    grid.start();
    await fake.decodeAll();
    expect(grid.page?.cells.map((c) => c.task.image)).toEqual([2]);
  });

  it("renews every lease on the page; a lost one leaves the page", async () => {
    const { grid, fake } = session([page([task(1), task(2), task(3)])]);
    grid.start();
    await fake.decodeAll();
    fake.renewals.set(2, "lost");
    await grid.renewAll();
    expect(grid.page?.cells.map((c) => c.task.image)).toEqual([1, 3]);
    expect(fake.discarded).toEqual(["blob:2"]);
  });

  it("renews the page ahead too; a lost lease leaves it, and Enter shows the rest", async () => {
    const { grid, fake } = session([page([task(1)]), page([task(2), task(3)])]);
    grid.start();
    await fake.settle();
    fake.renewals.set(3, "lost");
    await grid.renewAll();
    expect(fake.discarded).toEqual(["blob:3"]);
    grid.accept();
    expect(grid.page?.cells.map((c) => c.task.image)).toEqual([2]);
  });
});
