// The annotator's queue: the next several tasks, leased and with their images already
// decoded, so the next image shows the moment a key is pressed, whatever the network does.
//
// The server hands an annotator's own unexpired leases back first (a reload, a second tab), so
// asking for `count` tasks returns the ones already held before any new ones: the request asks
// for everything held (queued + labels still in the outbox) plus what is wanted, and drops what
// it already has.

import type { Clock } from "./outbox";
import { realClock } from "./outbox";
import type { Task } from "./api";

export const MAX_TASKS_PER_REQUEST = 50; // the server's limit
const PRELOAD_ATTEMPTS = 5; // then the image is shown as failed (the annotator can skip it)

export interface Preloaded {
  src: string; // displays without the network (an object URL of the fetched bytes)
  width: number; // natural size in pixels
  height: number;
}

export interface QueueTask extends Task {
  src: string | null; // a displayable URL once the image is loaded and decoded
  width: number | null;
  height: number | null;
  failed: boolean; // the image could not be loaded
  // Set when the task came back from the history by an undo: the label it had. Such a task
  // holds no lease (the label ended it); a new key changes the label.
  previousLabel: string | null;
}

export type RenewResult = "ok" | "lost" | "error";

export interface TaskSource {
  next(count: number): Promise<Task[]>;
  renew(image: number): Promise<RenewResult>;
  release(image: number, skip?: boolean): Promise<void>; // skip: true unless said otherwise
  /** Fetch and decode the image, so that showing it needs neither network nor decoding. */
  preload(task: Task): Promise<Preloaded>;
  discard(src: string): void;
}

export interface TaskQueueOptions {
  source: TaskSource;
  lookahead?: number; // tasks kept leased and preloaded
  lowWater?: number; // refill when fewer than this many are queued
  leaseSeconds: number;
  pendingCount: () => number; // labels of this project still in the outbox (leases held)
  isHandled: (image: number) => boolean; // labeled (sent or not) in this session
  onChange: () => void;
  clock?: Clock;
  retryMs?: number; // after a failed refill
  idlePollMs?: number; // while the queue is empty: new images, expired leases of others
}

export class TaskQueue {
  tasks: QueueTask[] = []; // tasks[0] is on screen
  exhausted = false; // the server has nothing more for this annotator right now
  loading = true; // the first request has not answered yet
  error: string | null = null;
  readonly skipped = new Set<number>();
  private filling: Promise<void> | null = null;
  private fillTimer: unknown = null;
  private renewTimer: unknown = null;
  private stopped = false;
  private readonly clock: Clock;
  private readonly lookahead: number;
  private readonly lowWater: number;

  constructor(private readonly options: TaskQueueOptions) {
    this.clock = options.clock ?? realClock;
    this.lookahead = options.lookahead ?? 8;
    this.lowWater = options.lowWater ?? Math.ceil(this.lookahead / 2);
  }

  start(): void {
    void this.fill();
    this.scheduleRenew();
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.fillTimer);
    this.clock.clearTimeout(this.renewTimer);
    for (const task of this.tasks) if (task.src) this.options.source.discard(task.src);
    this.tasks = [];
  }

  current(): QueueTask | null {
    return this.tasks[0] ?? null;
  }

  /** Take the task on screen off the queue (it was labeled) and top the queue up. */
  take(): QueueTask | null {
    const task = this.tasks.shift() ?? null;
    this.changed();
    this.topUp();
    return task;
  }

  /** Put a task back on screen (undo). */
  putBack(task: QueueTask): void {
    this.tasks.unshift(task);
    this.changed();
  }

  /** Skip the task on screen: give the lease back so someone else can label it. */
  skip(): QueueTask | null {
    const task = this.tasks.shift() ?? null;
    if (task && task.previousLabel !== null) {
      // Back from an undo: skipping keeps the label it has; there is no lease to give back.
      task.previousLabel = null;
    } else if (task) {
      this.skipped.add(task.image);
      this.options.source.release(task.image).catch(() => {
        // The lease lapses by itself; nothing is lost by a failed release.
      });
    }
    if (task?.src) this.options.source.discard(task.src);
    this.changed();
    this.topUp();
    return task;
  }

  /** Give back every lease held (no skip), for a switch to the grid or leaving the page; the
   * queue stays empty. Resolves once every release has been answered (or has failed). */
  releaseAll(): Promise<void> {
    const releases = this.tasks
      .filter((task) => task.previousLabel === null)
      .map((task) =>
        this.options.source.release(task.image, false).catch(() => {
          // The lease lapses by itself.
        }),
      );
    this.stop();
    return Promise.all(releases).then(() => undefined);
  }

  /** Ask the server for more when the queue runs low. */
  topUp(): void {
    if (this.tasks.length < this.lowWater) void this.fill();
  }

  fill(): Promise<void> {
    if (this.filling) return this.filling;
    this.filling = this.fillOnce().finally(() => {
      this.filling = null;
    });
    return this.filling;
  }

  private async fillOnce(): Promise<void> {
    if (this.stopped) return;
    this.clock.clearTimeout(this.fillTimer);
    const wanted = this.lookahead - this.tasks.length;
    if (wanted <= 0) return;
    const held = this.tasks.length + this.options.pendingCount();
    const count = Math.max(1, Math.min(MAX_TASKS_PER_REQUEST, held + wanted));
    let got: Task[];
    try {
      got = await this.options.source.next(count);
    } catch (error) {
      if (this.stopped) return;
      this.error = error instanceof Error ? error.message : String(error);
      this.loading = false;
      this.changed();
      this.fillTimer = this.clock.setTimeout(() => void this.fill(), this.options.retryMs ?? 3000);
      return;
    }
    if (this.stopped) return;
    this.error = null;
    this.loading = false;
    const have = new Set(this.tasks.map((task) => task.image));
    const fresh = got.filter((task) => !have.has(task.image) && !this.options.isHandled(task.image));
    // A skip sticks on the server (it does not hand the image to this annotator again), so a
    // skipped image here came from a refill that raced its release: dropped, not released
    // again (that was the skip loop of issue 28: 9 releases of one image over 30 labels).
    const usable = fresh.filter((task) => !this.skipped.has(task.image));
    for (const task of usable) this.add(task);
    this.exhausted = this.tasks.length === 0;
    this.changed();
    if (this.exhausted) {
      this.fillTimer = this.clock.setTimeout(
        () => void this.fill(),
        this.options.idlePollMs ?? 20_000,
      );
    }
  }

  private add(task: Task): void {
    const queued: QueueTask = {
      ...task,
      src: null,
      width: null,
      height: null,
      failed: false,
      previousLabel: null,
    };
    this.tasks.push(queued);
    this.preload(queued, 1);
  }

  private preload(queued: QueueTask, attempt: number): void {
    this.options.source.preload(queued).then(
      (loaded) => {
        if (this.stopped || !this.tasks.includes(queued)) {
          this.options.source.discard(loaded.src);
          return;
        }
        queued.src = loaded.src;
        queued.width = loaded.width;
        queued.height = loaded.height;
        queued.failed = false;
        this.changed();
      },
      () => {
        if (this.stopped || !this.tasks.includes(queued)) return;
        queued.failed = attempt >= PRELOAD_ATTEMPTS;
        this.changed();
        if (!queued.failed) {
          // The network blinked: try again, a little later each time.
          this.clock.setTimeout(() => this.preload(queued, attempt + 1), 1000 * 2 ** attempt);
        }
      },
    );
  }

  /** Renew every queued lease a few times per lease period while the page is open. */
  private scheduleRenew(): void {
    const every = Math.max(10_000, (this.options.leaseSeconds * 1000) / 3);
    this.renewTimer = this.clock.setTimeout(async () => {
      await this.renewAll();
      if (!this.stopped) this.scheduleRenew();
    }, every);
  }

  async renewAll(): Promise<void> {
    const leased = this.tasks.filter((task) => task.previousLabel === null);
    const results = await Promise.all(
      leased.map(async (task) => [task, await this.options.source.renew(task.image)] as const),
    );
    const lost = new Set(
      results
        .filter(([task, result]) => result === "lost" && task !== this.tasks[0])
        .map(([task]) => task),
    );
    if (lost.size === 0) return;
    for (const task of lost) if (task.src) this.options.source.discard(task.src);
    this.tasks = this.tasks.filter((task) => !lost.has(task));
    this.changed();
    this.topUp();
  }

  private changed(): void {
    if (!this.stopped) this.options.onChange();
  }
}
