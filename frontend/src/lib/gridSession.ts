// The grid view's page on screen: leased from POST /tasks/grid/, every image fetched and
// decoded before the page shows (no cell pops in), every lease renewed while it shows, and
// the leases of cells not accepted given back (skip=false) when the page is left. While a page
// of the queue shows, the next one is leased ahead ({prefetch: true}: none of the images
// already leased to me) and decoded, so Enter shows it at once.

import { acceptPage, type Accepted, type GridAnswer, type GridCell, type GridPage, type GridTask, GRID_SIZE, newPage } from "./grid";
import { type Clock, realClock } from "./outbox";
import type { Preloaded, RenewResult } from "./taskQueue";

type Cell = Omit<GridCell, "initial" | "label">;

export interface GridSource {
  /** `prefetch`: the next page, without the images already leased to me. */
  page(size: number, ids: readonly number[], prefetch?: boolean): Promise<GridAnswer>;
  renew(image: number): Promise<RenewResult>;
  /** Give the lease back without a skip (the image may come to this annotator again). */
  release(image: number): Promise<void>;
  preload(task: GridTask): Promise<Preloaded>;
  discard(src: string): void;
}

export interface GridSessionOptions {
  source: GridSource;
  ids?: readonly number[]; // images asked for (a lasso's selection); empty: the queue's pick
  size?: number;
  leaseSeconds: number;
  isHandled: (image: number) => boolean; // labeled in this browser (its label may be unsent)
  isUnsent: (image: number) => boolean; // its label is still in the outbox
  /** Queue an accepted page's labels (the outbox): before the next page is asked for. */
  submit: (labels: Accepted[]) => void;
  name?: (label: string) => string | null; // a class's current name (null: removed)
  onChange: () => void;
  /** The server serves no grid now: the reason's code, and the reason in words. */
  onRefused: (reason: string, message: string) => void;
  clock?: Clock;
  retryMs?: number; // after a failed request
  pollMs?: number; // how often to look whether the page's labels have reached the server
}

export class GridSession {
  page: GridPage | null = null;
  loading = true;
  error: string | null = null;
  sending = false; // the page's labels are on their way; the next page waits for them
  shownAt = 0; // clock time the page showed: the labels' duration starts there
  private stopped = false;
  private ahead: { proposed: string | null; cells: Cell[] } | null = null; // the next page, decoded
  private aheadPending = false; // a prefetch is on its way
  private awaiting: number[] | null = null; // accepted before the page ahead arrived: its images
  private retryTimer: unknown = null;
  private renewTimer: unknown = null;
  private readonly clock: Clock;

  constructor(private readonly options: GridSessionOptions) {
    this.clock = options.clock ?? realClock;
  }

  start(): void {
    void this.load();
    this.scheduleRenew();
  }

  /** Leave: every lease on screen goes back (skip=false), the decoded images are freed. */
  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.retryTimer);
    this.clock.clearTimeout(this.renewTimer);
    if (this.page) this.drop(this.page.cells, true);
    if (this.ahead) this.drop(this.ahead.cells, true);
    this.page = null;
    this.ahead = null;
  }

  /** The cursor, the selection or a label changed. */
  update(page: GridPage): void {
    if (this.stopped || !this.page) return;
    this.page = page;
    this.changed();
  }

  /** Enter: the page's labels (handed to `submit`), then the page leased ahead at once (or, if
   * none came, the next page once the labels have reached the server); or the cells still
   * without a label, and the page stays. */
  accept(): { labels: Accepted[]; missing: number[] } {
    if (!this.page) return { labels: [], missing: [] };
    const result = acceptPage(this.page, this.clock.now() - this.shownAt);
    if (result.missing.length > 0) {
      this.update({ ...this.page, cursor: result.missing[0] });
      return result;
    }
    this.drop(this.page.cells, false); // labeled: the labels end the leases
    this.page = null;
    this.options.submit(result.labels);
    const images = result.labels.map((label) => label.image);
    if (this.ahead) {
      this.display(this.ahead.proposed, this.ahead.cells);
    } else if (this.aheadPending) {
      this.awaiting = images; // the prefetch ends it: shown, or the plain way
      this.loading = true;
      this.changed();
    } else {
      this.afterDelivery(images);
    }
    return result;
  }

  /** The server hands back the leases its caller holds, surest first: asked before the labels
   * of the page just accepted have arrived, it would serve that page again. */
  private afterDelivery(images: number[]): void {
    if (this.stopped) return;
    this.sending = images.some((image) => this.options.isUnsent(image));
    if (!this.sending) {
      void this.load();
      return;
    }
    this.changed();
    this.retryTimer = this.clock.setTimeout(() => this.afterDelivery(images), this.options.pollMs ?? 100);
  }

  async load(): Promise<void> {
    if (this.stopped) return;
    this.clock.clearTimeout(this.retryTimer);
    this.loading = true;
    this.changed();
    let answer: GridAnswer;
    try {
      answer = await this.options.source.page(this.options.size ?? GRID_SIZE, this.options.ids ?? []);
    } catch (error) {
      if (this.stopped) return;
      this.error = error instanceof Error ? error.message : String(error);
      this.retryTimer = this.clock.setTimeout(() => void this.load(), this.options.retryMs ?? 3000);
      this.changed();
      return;
    }
    this.error = null;
    if (this.stopped) return this.releaseAll(answer.tasks);
    if (!answer.grid) {
      this.loading = false;
      this.changed();
      this.options.onRefused(answer.reason, answer.message);
      return;
    }
    await this.show(answer);
  }

  private async show(answer: GridAnswer): Promise<void> {
    // An image labeled here whose label is still on its way can come back leased to me.
    const fresh = answer.tasks.filter((task) => this.isNew(task.image));
    const loaded = await Promise.all(fresh.map((task) => this.preload(task)));
    const cells = loaded.filter((cell): cell is Cell => cell !== null);
    if (this.stopped) return this.drop(cells, true);
    this.releaseAll(fresh.filter((task) => !cells.some((cell) => cell.task === task)));
    if (cells.length === 0) {
      // Everything served was labeled here already, or failed to load: ask again shortly.
      this.retryTimer = this.clock.setTimeout(() => void this.load(), this.options.retryMs ?? 3000);
      return;
    }
    this.display(answer.proposed, cells);
  }

  private display(proposed: string | null, cells: Cell[]): void {
    this.ahead = null;
    this.page = newPage(proposed, cells, this.options.name);
    this.loading = false;
    this.shownAt = this.clock.now();
    this.changed();
    if (!this.options.ids?.length) void this.prefetch(); // a lasso's selection is one page
  }

  /** Lease and decode the next page while this one shows. A refusal or an error is not shown:
   * Enter then asks the plain way. */
  private async prefetch(): Promise<void> {
    if (this.aheadPending || this.stopped) return;
    this.aheadPending = true;
    let cells: Cell[] = [];
    let proposed: string | null = null;
    try {
      const answer = await this.options.source.page(this.options.size ?? GRID_SIZE, [], true);
      proposed = answer.proposed;
      const fresh = answer.grid ? answer.tasks.filter((task) => this.isNew(task.image)) : [];
      if (!this.stopped) {
        const loaded = await Promise.all(fresh.map((task) => this.preload(task)));
        cells = loaded.filter((cell): cell is Cell => cell !== null);
      }
      this.releaseAll(fresh.filter((task) => !cells.some((cell) => cell.task === task)));
    } catch {
      // Nothing leased ahead; the plain request after Enter says what is wrong.
    }
    this.aheadPending = false;
    if (this.stopped) return this.drop(cells, true);
    if (cells.length > 0) this.ahead = { proposed, cells };
    const awaiting = this.awaiting;
    this.awaiting = null;
    if (awaiting === null) return;
    if (this.ahead) this.display(this.ahead.proposed, this.ahead.cells);
    else this.afterDelivery(awaiting);
  }

  /** Not labeled here, and on neither the page nor the page ahead. */
  private isNew(image: number): boolean {
    const on = (cells: readonly Cell[] | undefined) => cells?.some((cell) => cell.task.image === image) ?? false;
    return !this.options.isHandled(image) && !on(this.page?.cells) && !on(this.ahead?.cells);
  }

  private async preload(task: GridTask): Promise<Cell | null> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const image = await this.options.source.preload(task);
        return { task, ...image };
      } catch {
        if (this.stopped) return null;
      }
    }
    return null; // released: someone else (or a later page) may have more luck
  }

  private drop(cells: readonly Cell[], release: boolean): void {
    for (const cell of cells) this.options.source.discard(cell.src);
    if (release) this.releaseAll(cells.map((cell) => cell.task));
  }

  private releaseAll(tasks: readonly GridTask[]): void {
    for (const task of tasks) {
      this.options.source.release(task.image).catch(() => {
        // The lease lapses by itself; nothing is lost by a failed release.
      });
    }
  }

  /** Renew the leases of the page and of the page ahead a few times per lease period; a lost
   * one leaves its page. */
  private scheduleRenew(): void {
    const every = Math.max(10_000, (this.options.leaseSeconds * 1000) / 3);
    this.renewTimer = this.clock.setTimeout(async () => {
      await this.renewAll();
      if (!this.stopped) this.scheduleRenew();
    }, every);
  }

  async renewAll(): Promise<void> {
    await Promise.all([this.renewPage(), this.renewAhead()]);
  }

  private async renewAhead(): Promise<void> {
    const ahead = this.ahead;
    if (!ahead) return;
    const results = await Promise.all(ahead.cells.map((cell) => this.options.source.renew(cell.task.image)));
    if (this.ahead !== ahead || !results.includes("lost")) return;
    this.drop(ahead.cells.filter((_, index) => results[index] === "lost"), false);
    const keep = ahead.cells.filter((_, index) => results[index] !== "lost");
    this.ahead = keep.length > 0 ? { ...ahead, cells: keep } : null;
  }

  private async renewPage(): Promise<void> {
    const page = this.page;
    if (!page) return;
    const results = await Promise.all(page.cells.map((cell) => this.options.source.renew(cell.task.image)));
    if (this.page !== page || !results.includes("lost")) return;
    const keep = page.cells.filter((_, index) => results[index] !== "lost");
    this.drop(page.cells.filter((_, index) => results[index] === "lost"), false);
    const cursor = Math.min(page.cursor, Math.max(0, keep.length - 1));
    this.page = { ...page, cells: keep, cursor, selected: new Set() };
    if (keep.length === 0) {
      this.page = null;
      if (this.ahead) this.display(this.ahead.proposed, this.ahead.cells);
      else void this.load();
    }
    this.changed();
  }

  private changed(): void {
    if (!this.stopped) this.options.onChange();
  }
}
