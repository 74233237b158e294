import { describe, expect, it } from "vitest";

import { ApiError } from "../../lib/api";
import type { Review } from "../../lib/quality";
import {
  DecisionBook,
  fromPercentField,
  isLowAccuracy,
  ofCount,
  outcome,
  relabelKeys,
  reviewKeyAction,
  seconds,
  sendDecision,
  toPercentField,
  withInterval,
} from "./quality";

function review(fields: Partial<Review> = {}): Review {
  return {
    id: 7,
    project: 1,
    image: {
      id: 70,
      file_url: "/api/images/70/file/",
      original_name: "digit-0070.png",
      width: 28,
      height: 28,
      predicted_label: "7",
      confidence: 0.9,
      status: "labeled",
      consensus_label: "1",
    },
    state: "open",
    score: 0.93,
    given_label: "1",
    model_label: "7",
    model_confidence: 0.9,
    votes: [],
    run: 3,
    found_at: "2026-12-07T10:00:00Z",
    decided_by: null,
    decided_at: null,
    label_after: null,
    ...fields,
  };
}

/** Ids 1, 2, 3…: predictable decision ids. */
function counter(): () => string {
  let n = 0;
  return () => `id-${++n}`;
}

const noWait = () => Promise.resolve();

describe("quality numbers", () => {
  it("writes an accuracy with its 95% interval, or a dash when there is nothing to measure", () => {
    expect(withInterval(0.8, 0.49, 0.943)).toBe("80% (95% interval 49–94%)");
    expect(withInterval(0.8, null, null)).toBe("80%");
    expect(withInterval(null, null, null)).toBe("–");
  });

  it("says how many answers an accuracy stands on", () => {
    expect(ofCount(8, 10)).toBe("8 of 10");
    expect(ofCount(1200, 1500)).toBe("1,200 of 1,500");
    expect(ofCount(0, 0)).toBe("");
    expect(ofCount(null, 3)).toBe("");
  });

  it("flags an accuracy below the alert threshold, and only a measured one", () => {
    expect(isLowAccuracy(0.6, 0.7)).toBe(true);
    expect(isLowAccuracy(0.7, 0.7)).toBe(false);
    expect(isLowAccuracy(null, 0.7)).toBe(false);
    expect(isLowAccuracy(0.1, undefined)).toBe(false);
  });

  it("writes a median labeling time in the unit a reader needs", () => {
    expect(seconds(4.23)).toBe("4.2 s");
    expect(seconds(38.4)).toBe("38 s");
    expect(seconds(125)).toBe("2 min 5 s");
    expect(seconds(120)).toBe("2 min");
    expect(seconds(null)).toBe("–");
  });

  it("shows fractions as percents in the settings form and reads them back", () => {
    expect(toPercentField(0.05)).toBe("5");
    expect(toPercentField(0.125)).toBe("12.5");
    expect(toPercentField(undefined)).toBe("");
    expect(fromPercentField("5")).toBe(0.05);
    expect(fromPercentField("70")).toBe(0.7);
    expect(fromPercentField("12.5")).toBe(0.125);
    expect(fromPercentField("")).toBeNull();
    expect(fromPercentField("abc")).toBeNull();
  });

  it("says what happened to a review in a line", () => {
    expect(outcome(review())).toBe("waiting for a reviewer");
    expect(outcome(review({ state: "relabeled", label_after: "7", decided_by: "carol" }))).toBe(
      "relabeled to 7 by carol",
    );
    expect(outcome(review({ state: "confirmed", decided_by: "alice" }))).toBe("label confirmed by alice");
    expect(outcome(review({ state: "sent_back" }))).toBe("sent back for fresh votes");
  });
});

describe("review keys", () => {
  const digits = relabelKeys(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);

  it("moves with j/k and the arrows, confirms with c, sends back with b", () => {
    expect(reviewKeyAction({ key: "j" }, digits)).toEqual({ type: "next" });
    expect(reviewKeyAction({ key: "ArrowDown" }, digits)).toEqual({ type: "next" });
    expect(reviewKeyAction({ key: "ArrowRight" }, digits)).toEqual({ type: "next" });
    expect(reviewKeyAction({ key: "k" }, digits)).toEqual({ type: "previous" });
    expect(reviewKeyAction({ key: "ArrowUp" }, digits)).toEqual({ type: "previous" });
    expect(reviewKeyAction({ key: "c" }, digits)).toEqual({ type: "confirm" });
    expect(reviewKeyAction({ key: "C" }, digits)).toEqual({ type: "confirm" });
    expect(reviewKeyAction({ key: "b" }, digits)).toEqual({ type: "send_back" });
  });

  it("relabels with a class key: on MNIST the digit is the class", () => {
    expect(reviewKeyAction({ key: "3" }, digits)).toEqual({ type: "relabel", label: "3" });
    expect(reviewKeyAction({ key: "0" }, digits)).toEqual({ type: "relabel", label: "0" });
  });

  it("numbers named classes 1-9, 0 and never gives a class the queue's own letters", () => {
    const many = Array.from({ length: 16 }, (_, i) => `class-${i}`);
    const keys = relabelKeys(many);
    expect(keys.get("1")).toBe("class-0");
    expect(keys.get("0")).toBe("class-9");
    for (const letter of ["j", "k", "c", "b"]) expect(keys.has(letter)).toBe(false);
    expect(reviewKeyAction({ key: "c" }, keys)).toEqual({ type: "confirm" });
  });

  it("leaves browser shortcuts, held keys and unbound keys alone", () => {
    expect(reviewKeyAction({ key: "c", ctrlKey: true }, digits)).toBeNull();
    expect(reviewKeyAction({ key: "r", metaKey: true }, digits)).toBeNull();
    expect(reviewKeyAction({ key: "j", repeat: true }, digits)).toBeNull();
    expect(reviewKeyAction({ key: "q" }, digits)).toBeNull();
  });
});

describe("sending a decision", () => {
  it("sends the decision with a decision_id and the label for a relabel", async () => {
    const sent: unknown[] = [];
    const book = new DecisionBook(counter());
    const result = await sendDecision(
      async (path, body) => {
        sent.push([path, body]);
        return review({ state: "relabeled", label_after: "7" });
      },
      book,
      { reviewId: 7, decision: "relabel", label: "7" },
    );
    expect(result.kind).toBe("done");
    expect(sent).toEqual([["/api/reviews/7/decision/", { decision: "relabel", label: "7", decision_id: "id-1" }]]);
    expect(book.has(7)).toBe(false);
  });

  it("retries a lost answer with the same decision_id", async () => {
    const ids: string[] = [];
    let calls = 0;
    const result = await sendDecision(
      async (_path, body) => {
        ids.push((body as { decision_id: string }).decision_id);
        if (++calls < 3) throw new ApiError(0, "network", "The server cannot be reached.");
        return review({ state: "confirmed" });
      },
      new DecisionBook(counter()),
      { reviewId: 7, decision: "confirm" },
      { attempts: 3, wait: noWait },
    );
    expect(result.kind).toBe("done");
    expect(ids).toEqual(["id-1", "id-1", "id-1"]);
  });

  it("keeps the decision_id when every try failed, so pressing the key again resends the same decision", async () => {
    const book = new DecisionBook(counter());
    const ids: string[] = [];
    const down = async (_path: string, body: unknown): Promise<Review> => {
      ids.push((body as { decision_id: string }).decision_id);
      throw new ApiError(503, "unavailable", "Try again.");
    };
    const first = await sendDecision(down, book, { reviewId: 7, decision: "send_back" }, { attempts: 2, wait: noWait });
    expect(first).toMatchObject({ kind: "failed", retryable: true });
    await sendDecision(down, book, { reviewId: 7, decision: "send_back" }, { attempts: 1, wait: noWait });
    expect(ids).toEqual(["id-1", "id-1", "id-1"]);
  });

});

describe("decision ids and refusals", () => {
  it("gives a different decision a fresh decision_id", () => {
    const book = new DecisionBook(counter());
    expect(book.take(7, "relabel", "7").decisionId).toBe("id-1");
    expect(book.take(7, "relabel", "7").decisionId).toBe("id-1");
    expect(book.take(7, "relabel", "2").decisionId).toBe("id-2");
    expect(book.take(7, "confirm").decisionId).toBe("id-3");
    expect(book.take(8, "confirm").decisionId).toBe("id-4");
    book.settle(7);
    expect(book.take(7, "confirm").decisionId).toBe("id-5");
  });

  it("reports a 409 as decided by someone else, without retrying", async () => {
    let calls = 0;
    const result = await sendDecision(
      async () => {
        calls++;
        throw new ApiError(409, "already_decided", "This review was already decided.", { decided_by: "carol" });
      },
      new DecisionBook(counter()),
      { reviewId: 7, decision: "confirm" },
      { wait: noWait },
    );
    expect(calls).toBe(1);
    expect(result).toEqual({ kind: "conflict", message: "This review was already decided.", decidedBy: "carol" });
  });

  it("finds who decided first in the review a 409 carries, or leaves it to the message", async () => {
    const conflict = (details: unknown) => async (): Promise<Review> => {
      throw new ApiError(409, "already_decided", "Already decided by dave.", details);
    };
    const book = new DecisionBook(counter());
    const request = { reviewId: 7, decision: "confirm" as const };
    expect(await sendDecision(conflict({ review: { decided_by: "dave" } }), book, request)).toMatchObject({
      decidedBy: "dave",
    });
    expect(await sendDecision(conflict(null), book, request)).toMatchObject({
      decidedBy: null,
      message: "Already decided by dave.",
    });
  });

  it("does not retry a refusal such as an unknown class", async () => {
    let calls = 0;
    const book = new DecisionBook(counter());
    const result = await sendDecision(
      async () => {
        calls++;
        throw new ApiError(400, "invalid", "label: 'x' is not a class of this project");
      },
      book,
      { reviewId: 7, decision: "relabel", label: "x" },
      { wait: noWait },
    );
    expect(calls).toBe(1);
    expect(result).toMatchObject({ kind: "failed", retryable: false });
    expect(book.has(7)).toBe(false);
  });
});
