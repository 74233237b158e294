// The annotator's outbox: labels wait here until the server has them.
//
// Every label is written to localStorage before anything else happens, so a network blip, a
// reload or a crashed tab loses nothing. Each label carries a client_id (UUID v4) that the
// server treats as an idempotency key: sending the same item twice (a retry after a lost
// response, a second tab) records it once. Sending is in the background, oldest first, with
// exponential backoff and jitter; labels of one image are sent in order, so an undo-and-change
// never overtakes the label it changes.

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Where a label was made: the one-image view, or a page of the grid (sent as `view`). */
export type LabelView = "single" | "grid";

export interface OutboxItem {
  clientId: string;
  project: number;
  image: number;
  label: string;
  durationMs: number | null;
  view?: LabelView; // absent in items stored before the grid: those send "single"
  createdAt: number; // ms since the epoch
  attempts: number; // failed sends so far
  nextAttemptAt: number; // ms since the epoch; 0 = now
  lastError: string | null;
}

/** An item the server refused for good (e.g. 409: the image already had enough labels). */
export interface DroppedItem extends OutboxItem {
  reason: string;
  code: string | null;
}

export type SendOutcome =
  | { kind: "sent" }
  // offline: the request never reached the server, so every other item would fail too.
  | { kind: "retry"; error: string; offline?: boolean; retryAfterMs?: number }
  | { kind: "drop"; error: string; code?: string | null };

export interface BackoffPolicy {
  baseMs: number; // delay after the first failure
  maxMs: number; // ceiling; also how long a label can wait after the network is back
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 15_000 };

/**
 * Delay before attempt `attempt + 1`, after `attempt` failures: base * 2^(attempt-1) capped at
 * max, with "equal jitter" (half fixed, half random) so many clients that failed together do
 * not retry together.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** What to do with an HTTP answer to POST /api/annotations/ (status 0: no answer at all). */
export function classifyResponse(
  status: number,
  code: string | null = null,
  message = "",
  retryAfterSeconds: number | null = null,
): SendOutcome {
  if (status === 200 || status === 201) return { kind: "sent" };
  const error = message || (status === 0 ? "network unreachable" : `HTTP ${status}`);
  if (status === 0) return { kind: "retry", error, offline: true };
  // 401: the session ended; the label waits for the annotator to log in again.
  if (status === 401 || status === 408 || status === 425 || status >= 500) {
    return { kind: "retry", error };
  }
  if (status === 429) {
    const retryAfterMs = retryAfterSeconds === null ? undefined : retryAfterSeconds * 1000;
    return { kind: "retry", error, retryAfterMs };
  }
  // 400, 403, 404, 409, 413: sending it again cannot change the answer.
  return { kind: "drop", error, code };
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A random UUID v4; crypto.randomUUID exists only in secure contexts (https, localhost). */
export function uuid4(): string {
  const c = globalThis.crypto;
  if (typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = c.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface OutboxOptions {
  storage: StorageLike;
  key: string; // storage key; one per user, so nobody sends someone else's labels
  send: (item: OutboxItem) => Promise<SendOutcome>;
  clock?: Clock;
  random?: () => number;
  backoff?: BackoffPolicy;
  newId?: () => string;
  maxDropped?: number; // refusals kept for the annotator to read
}

interface Stored {
  items: OutboxItem[];
  dropped: DroppedItem[];
}

export interface NewLabel {
  project: number;
  image: number;
  label: string;
  durationMs?: number | null;
  view?: LabelView; // default "single"
}

/** The view an item was labeled in; items stored before the grid existed say "single". */
export function itemView(item: OutboxItem): LabelView {
  return item.view === "grid" ? "grid" : "single";
}

/** The body of POST /api/annotations/ for an item. */
export function annotationBody(item: OutboxItem) {
  return {
    image: item.image,
    label: item.label,
    client_id: item.clientId,
    duration_ms: item.durationMs,
    view: itemView(item),
  };
}

export class Outbox {
  private items: OutboxItem[] = [];
  private droppedItems: DroppedItem[] = [];
  // Items this tab saw leave (sent or dropped): another tab's copy of them is not adopted.
  private gone = new Set<string>();
  // Images whose label this outbox delivered: a task list asked for before the label landed
  // may still hold one (the annotator's own lease, handed back), and it must not show again.
  private delivered = new Set<number>();
  private inFlight: string | null = null;
  private pass: Promise<void> | null = null;
  private again = false;
  private timer: unknown = null;
  private disposed = false;
  private listeners = new Set<() => void>();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: BackoffPolicy;
  private readonly newId: () => string;
  private readonly maxDropped: number;
  /** Set when localStorage refused a write (quota, private mode): labels are in memory only. */
  persistError: string | null = null;
  /** The last send never reached the server. */
  offline = false;
  /** Bumped on every change: a snapshot for React's useSyncExternalStore. */
  version = 0;

  constructor(private readonly options: OutboxOptions) {
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.newId = options.newId ?? uuid4;
    this.maxDropped = options.maxDropped ?? 50;
    const stored = this.read();
    this.items = stored.items;
    this.droppedItems = stored.dropped;
  }

  /** Labels not yet accepted by the server, oldest first. */
  pending(): readonly OutboxItem[] {
    return this.items;
  }

  get size(): number {
    return this.items.length;
  }

  dropped(): readonly DroppedItem[] {
    return this.droppedItems;
  }

  hasPending(image: number): boolean {
    return this.items.some((item) => item.image === image);
  }

  /** Labeled through this outbox: still waiting, or delivered since the page loaded. */
  handled(image: number): boolean {
    return this.delivered.has(image) || this.hasPending(image);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Queue a label (persisted before this returns) and start sending it. */
  enqueue(label: NewLabel): OutboxItem {
    const item: OutboxItem = {
      clientId: this.newId(),
      project: label.project,
      image: label.image,
      label: label.label,
      durationMs: label.durationMs ?? null,
      view: label.view ?? "single",
      createdAt: this.clock.now(),
      attempts: 0,
      nextAttemptAt: 0,
      lastError: null,
    };
    this.items.push(item);
    this.changed();
    this.kick();
    return item;
  }

  /**
   * Change the label of an image (undo, then another key). A label that was never sent is
   * changed in place; one that may have reached the server gets a new item (a new client_id:
   * reusing the old one would just replay the old label), sent after it.
   */
  relabel(label: NewLabel): OutboxItem {
    const last = [...this.items].reverse().find((item) => item.image === label.image);
    if (last && last.attempts === 0 && last.clientId !== this.inFlight) {
      last.label = label.label;
      if (label.durationMs !== undefined) last.durationMs = label.durationMs;
      if (label.view !== undefined) last.view = label.view;
      this.changed();
      this.kick();
      return last;
    }
    return this.enqueue(label);
  }

  /** Another request got an answer: if sending was waiting for the network, go now. */
  networkBack(): void {
    if (this.offline) this.kick();
  }

  /** Try every waiting item now (the network may be back, or a new label arrived). */
  kick(): void {
    if (this.disposed) return;
    for (const item of this.items) item.nextAttemptAt = 0;
    void this.flush();
  }

  /** Send what is due; resolves when this pass (and any pass asked for meanwhile) is over. */
  flush(): Promise<void> {
    if (this.pass) {
      this.again = true;
      return this.pass;
    }
    this.pass = (async () => {
      do {
        this.again = false;
        await this.sendDue();
      } while (this.again && !this.disposed);
      this.pass = null;
      this.schedule();
    })();
    return this.pass;
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  private async sendDue(): Promise<void> {
    this.adoptOtherTabs();
    const waiting = new Set<number>(); // images with an earlier item still unsent
    for (const item of [...this.items]) {
      if (this.disposed) return;
      if (!this.items.includes(item)) continue; // sent by a pass in another tab meanwhile
      if (waiting.has(item.image) || item.nextAttemptAt > this.clock.now()) {
        waiting.add(item.image);
        continue;
      }
      this.inFlight = item.clientId;
      let outcome: SendOutcome;
      try {
        outcome = await this.options.send(item);
      } catch (error) {
        outcome = { kind: "retry", error: String(error), offline: true };
      } finally {
        this.inFlight = null;
      }
      if (outcome.kind === "sent") {
        this.remove(item);
        this.delivered.add(item.image);
      } else if (outcome.kind === "drop") {
        this.remove(item);
        this.droppedItems.push({ ...item, reason: outcome.error, code: outcome.code ?? null });
        this.droppedItems = this.droppedItems.slice(-this.maxDropped);
      } else {
        item.attempts += 1;
        item.lastError = outcome.error;
        const delay = Math.max(
          outcome.retryAfterMs ?? 0,
          backoffDelay(item.attempts, this.backoff, this.random),
        );
        item.nextAttemptAt = this.clock.now() + delay;
        waiting.add(item.image);
      }
      const offline = outcome.kind === "retry" && outcome.offline === true;
      this.offline = offline;
      if (offline) {
        // The others would fail the same way: wait together, retry together.
        for (const other of this.items) {
          other.nextAttemptAt = Math.max(other.nextAttemptAt, item.nextAttemptAt);
        }
      }
      this.changed();
      if (offline) return;
    }
  }

  private schedule(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (this.disposed || this.items.length === 0) return;
    const due = Math.min(...this.items.map((item) => item.nextAttemptAt));
    const delay = Math.max(0, due - this.clock.now());
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delay);
  }

  private remove(item: OutboxItem): void {
    this.items = this.items.filter((other) => other !== item);
    this.gone.add(item.clientId);
  }

  private read(): Stored {
    try {
      const raw = this.options.storage.getItem(this.options.key);
      if (!raw) return { items: [], dropped: [] };
      const parsed = JSON.parse(raw) as Partial<Stored>;
      return {
        items: Array.isArray(parsed.items) ? parsed.items.filter(isItem) : [],
        dropped: Array.isArray(parsed.dropped) ? parsed.dropped.filter(isItem) : [],
      };
    } catch {
      return { items: [], dropped: [] }; // unreadable: start empty rather than not at all
    }
  }

  /** Items another tab of the same user stored: sending them twice is harmless (client_id). */
  private adoptOtherTabs(): void {
    const known = new Set(this.items.map((item) => item.clientId));
    const theirs = this.read().items.filter(
      (item) => !known.has(item.clientId) && !this.gone.has(item.clientId),
    );
    if (theirs.length) this.items = [...this.items, ...theirs];
  }

  private changed(): void {
    this.adoptOtherTabs();
    const body: Stored = { items: this.items, dropped: this.droppedItems };
    try {
      this.options.storage.setItem(this.options.key, JSON.stringify(body));
      this.persistError = null;
    } catch (error) {
      this.persistError = String(error);
    }
    this.version += 1;
    for (const listener of this.listeners) listener();
  }
}

function isItem(value: unknown): value is OutboxItem {
  if (typeof value !== "object" || value === null) return false;
  const item = value as Record<string, unknown>;
  return (
    typeof item.clientId === "string" &&
    typeof item.image === "number" &&
    typeof item.project === "number" &&
    typeof item.label === "string"
  );
}
