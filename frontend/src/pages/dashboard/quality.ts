// Label quality, the pure parts: how the review queue and the annotator-quality table write
// their numbers, what a key does in the review queue, and sending a review decision so that a
// retry of the same decision reuses its decision_id (the server then answers it once).

import { ApiError, asApiError } from "../../lib/api";
import type { Decision, Review, ReviewState } from "../../lib/quality";
import { classKeys, type KeyPress } from "../../lib/hotkeys";
import { uuid4 } from "../../lib/outbox";
import { pct } from "./format";

// --- Numbers ---

/** "80% (95% interval 49–94%)"; "–" when there is nothing to measure. */
export function withInterval(value: number | null, low: number | null, high: number | null): string {
  if (value === null) return "–";
  if (low === null || high === null) return pct(value, 0);
  return `${pct(value, 0)} (95% interval ${Math.round(low * 100)}–${pct(high, 0)})`;
}

/** "8 of 10" beside a gold accuracy: how many answers it stands on. */
export function ofCount(part: number | null, whole: number | null): string {
  if (part === null || whole === null || whole === 0) return "";
  return `${part.toLocaleString()} of ${whole.toLocaleString()}`;
}

/** Below the project's alert threshold: flagged in the table in words as well as colour. */
export function isLowAccuracy(accuracy: number | null, threshold: number | null | undefined): boolean {
  return accuracy !== null && threshold !== null && threshold !== undefined && accuracy < threshold;
}

/** A median labeling time: "4.2 s", "38 s", "2 min 5 s". */
export function seconds(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return "–";
  if (value < 10) return `${value.toFixed(1)} s`;
  if (value < 60) return `${Math.round(value)} s`;
  const whole = Math.round(value);
  const rest = whole % 60;
  return rest ? `${Math.floor(whole / 60)} min ${rest} s` : `${whole / 60} min`;
}

/** A 0..1 fraction as a whole percent, for the settings form ("5" for 0.05). */
export function toPercentField(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined) return "";
  return String(Math.round(fraction * 1000) / 10);
}

/** The settings form's percent back as the API's fraction; null for what is not a number. */
export function fromPercentField(text: string): number | null {
  if (!text.trim()) return null;
  const value = Number(text);
  return Number.isFinite(value) ? Math.round(value * 10) / 1000 : null;
}

export const STATE_TITLES: Record<ReviewState | "all", string> = {
  open: "Open",
  confirmed: "Confirmed",
  relabeled: "Relabeled",
  sent_back: "Sent back",
  stale: "Stale (the label changed since)",
  all: "All",
};

/** What happened to a review, in a line: "relabeled to 7 by carol". */
export function outcome(review: Review): string {
  const by = review.decided_by ? ` by ${review.decided_by}` : "";
  switch (review.state) {
    case "open":
      return "waiting for a reviewer";
    case "confirmed":
      return `label confirmed${by}`;
    case "relabeled":
      return `relabeled to ${review.label_after ?? "?"}${by}`;
    case "sent_back":
      return `sent back for fresh votes${by}`;
    case "stale":
      return "stale: the label changed since it was found";
  }
}

// --- Keys ---

export const REVIEW_COMMANDS = {
  next: ["j", "ArrowDown", "ArrowRight"],
  previous: ["k", "ArrowUp", "ArrowLeft"],
  confirm: "c",
  sendBack: "b",
} as const;

// Letters the queue uses itself: never a class key here (a class named "c" keeps its button).
const RESERVED = new Set(["j", "k", "c", "b"]);

export type ReviewAction =
  | { type: "next" }
  | { type: "previous" }
  | { type: "confirm" }
  | { type: "send_back" }
  | { type: "relabel"; label: string };

/** key -> class for relabeling: the annotator's class keys, less the queue's own letters. */
export function relabelKeys(labels: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const { label, key } of classKeys(labels)) {
    if (key !== null && !RESERVED.has(key)) map.set(key, label);
  }
  return map;
}

/** What a keypress means in the review queue, or null (browser shortcuts, held keys, others). */
export function reviewKeyAction(press: KeyPress, keys: Map<string, string>): ReviewAction | null {
  if (press.ctrlKey || press.metaKey || press.altKey || press.repeat) return null;
  const key = press.key.length === 1 ? press.key.toLowerCase() : press.key;
  if ((REVIEW_COMMANDS.next as readonly string[]).includes(key)) return { type: "next" };
  if ((REVIEW_COMMANDS.previous as readonly string[]).includes(key)) return { type: "previous" };
  if (key === REVIEW_COMMANDS.confirm) return { type: "confirm" };
  if (key === REVIEW_COMMANDS.sendBack) return { type: "send_back" };
  const label = keys.get(key);
  return label === undefined ? null : { type: "relabel", label };
}

// --- Decisions ---

export interface PendingDecision {
  reviewId: number;
  decision: Decision;
  label: string | null;
  decisionId: string;
}

/**
 * The decisions sent and not yet answered. Asking again for the same decision on the same
 * review gives the same decision_id, so a retry (after a timeout whose answer never came) is
 * the same request to the server; a different decision gets a fresh id.
 */
export class DecisionBook {
  private pending = new Map<number, PendingDecision>();

  constructor(private readonly newId: () => string = uuid4) {}

  take(reviewId: number, decision: Decision, label: string | null = null): PendingDecision {
    const old = this.pending.get(reviewId);
    if (old && old.decision === decision && old.label === label) return old;
    const made = { reviewId, decision, label, decisionId: this.newId() };
    this.pending.set(reviewId, made);
    return made;
  }

  /** The server answered (done, or refused for good): the next decision is a new one. */
  settle(reviewId: number): void {
    this.pending.delete(reviewId);
  }

  has(reviewId: number): boolean {
    return this.pending.has(reviewId);
  }
}

export type DecisionOutcome =
  | { kind: "done"; review: Review }
  | { kind: "conflict"; message: string; decidedBy: string | null }
  | { kind: "failed"; error: ApiError; retryable: boolean };

export type Post = (path: string, body: unknown) => Promise<Review>;

/** Worth sending again with the same id: no answer, or the server failed. */
function retryable(error: ApiError): boolean {
  return error.status === 0 || error.status >= 500;
}

/** Who decided first, from the 409's details: {decided_by} or the review, {review: {decided_by}}. */
function decidedBy(details: unknown): string | null {
  if (!details || typeof details !== "object") return null;
  const { decided_by: by, review } = details as { decided_by?: unknown; review?: { decided_by?: unknown } };
  const found = by ?? review?.decided_by;
  return typeof found === "string" ? found : null;
}

/**
 * Send one decision: up to `attempts` tries, all with the same decision_id, while the network
 * or the server fails. A 409 means someone else decided first. A failure that outlasts the
 * tries leaves the decision pending: pressing the key again sends it with the same id.
 */
export async function sendDecision(
  post: Post,
  book: DecisionBook,
  request: { reviewId: number; decision: Decision; label?: string | null },
  options: { attempts?: number; wait?: (attempt: number) => Promise<void> } = {},
): Promise<DecisionOutcome> {
  const attempts = options.attempts ?? 3;
  const wait = options.wait ?? ((attempt) => new Promise((r) => setTimeout(r, 500 * 2 ** attempt)));
  const pending = book.take(request.reviewId, request.decision, request.label ?? null);
  const body: Record<string, unknown> = { decision: pending.decision, decision_id: pending.decisionId };
  if (pending.label !== null) body.label = pending.label;
  let last: ApiError = new ApiError(0, "network", "The server cannot be reached.");
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) await wait(attempt);
    try {
      const review = await post(`/api/reviews/${request.reviewId}/decision/`, body);
      book.settle(request.reviewId);
      return { kind: "done", review };
    } catch (caught) {
      last = asApiError(caught);
      if (last.status === 409) {
        book.settle(request.reviewId);
        return { kind: "conflict", message: last.message, decidedBy: decidedBy(last.details) };
      }
      if (!retryable(last)) {
        book.settle(request.reviewId);
        return { kind: "failed", error: last, retryable: false };
      }
    }
  }
  return { kind: "failed", error: last, retryable: true };
}
