// The review queue's state: one state's reviews, best first (GET .../reviews/?state=, cursor
// pages), the one in view, and the reviewer's decisions (POST /api/reviews/{id}/decision/,
// each with its own decision_id, reused on retry: quality.ts). A 409 (someone decided first)
// says who and reads the list again. Admins can start a label check from here.

import { type Dispatch, type SetStateAction, useCallback, useEffect, useRef, useState } from "react";

import { api, type ApiError, asApiError, type Page, type Project } from "../../lib/api";
import type { Decision, Review, ReviewState } from "../../lib/quality";
import { DecisionBook, outcome, sendDecision } from "./quality";

export type StateFilter = ReviewState | "all";

const PAGE = 50; // reviews per page: a reviewer works through them one at a time

export interface DecisionTally {
  confirm: number;
  relabel: number;
  send_back: number;
}

/** One state's reviews, page by page, and which one is in view. */
function useReviewList(base: string, state: StateFilter) {
  const [reviews, setReviews] = useState<Review[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [index, setIndex] = useState(0);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);

  useEffect(() => {
    const controller = new AbortController();
    const params = new URLSearchParams({ state, page_size: String(PAGE) });
    api<Page<Review>>(`${base}/reviews/?${params}`, { signal: controller.signal })
      .then((page) => {
        setReviews(page.results);
        setNext(page.next);
        setLoadError(null);
      })
      .catch((caught) => {
        if ((caught as Error).name === "AbortError") return;
        setLoadError(asApiError(caught));
      });
    return () => controller.abort();
  }, [base, state, tick]);

  async function loadMore() {
    if (!next) return;
    try {
      const page = await api<Page<Review>>(next);
      setReviews((old) => [...(old ?? []), ...page.results]);
      setNext(page.next);
    } catch (caught) {
      setLoadError(asApiError(caught));
    }
  }

  const count = reviews?.length ?? 0;
  const shown = Math.min(index, Math.max(0, count - 1));
  function move(step: number) {
    if (count) setIndex(Math.min(count - 1, Math.max(0, shown + step)));
  }

  return {
    reviews,
    setReviews: setReviews as Dispatch<SetStateAction<Review[] | null>>,
    current: reviews && count ? reviews[shown] : null,
    index: shown,
    setIndex,
    move,
    next,
    loadMore,
    loadError,
    reload,
  };
}

export function useReviews(project: Project, state: StateFilter) {
  const base = `/api/projects/${project.id}`;
  const list = useReviewList(base, state);
  const [error, setError] = useState<ApiError | null>(null);
  const [status, setStatus] = useState("");
  const [busy, setBusy] = useState(false);
  const [tally, setTally] = useState<DecisionTally>({ confirm: 0, relabel: 0, send_back: 0 });
  const book = useRef(new DecisionBook());
  const inFlight = useRef(false); // one decision at a time: a second key press waits its turn

  function settled(review: Review, decision: Decision, after: Review) {
    setError(null);
    setTally((old) => ({ ...old, [decision]: old[decision] + 1 }));
    setStatus(`Image ${review.image.id}: ${outcome(after)}.`);
    // In the open list a decided review leaves it (the next one moves up into view);
    // elsewhere it shows its new state and the view moves on.
    list.setReviews((old) =>
      old && (state === "open" ? old.filter((r) => r.id !== review.id) : old.map((r) => (r.id === review.id ? after : r))),
    );
    if (state !== "open") list.move(1);
  }

  async function decide(review: Review, decision: Decision, label: string | null = null) {
    if (review.state !== "open") {
      setStatus(`Image ${review.image.id} is already decided: ${outcome(review)}.`);
      return;
    }
    if (decision === "relabel" && label === review.given_label) {
      setStatus(`“${label}” is the label it has: press C to confirm it.`);
      return;
    }
    if (inFlight.current) return;
    inFlight.current = true;
    setBusy(true);
    const result = await sendDecision(
      (path, body) => api<Review>(path, { method: "POST", body }),
      book.current,
      { reviewId: review.id, decision, label },
    ).finally(() => {
      inFlight.current = false;
      setBusy(false);
    });
    if (result.kind === "done") {
      settled(review, decision, result.review);
    } else if (result.kind === "conflict") {
      const who = result.decidedBy ? `${result.decidedBy} decided it first` : result.message;
      setStatus(`Image ${review.image.id} was already decided: ${who}. The list is read again.`);
      list.reload();
    } else {
      setError(result.error);
      setStatus(
        result.retryable
          ? `Image ${review.image.id}: not sent (${result.error.message}). Press the key again to retry.`
          : `Image ${review.image.id}: ${result.error.message}`,
      );
    }
  }

  async function checkLabels() {
    setBusy(true);
    try {
      await api(`${base}/training-runs/`, { method: "POST", body: { kind: "label_check" } });
      setError(null);
      setStatus("Label check queued: suspect labels appear here when it finishes.");
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setBusy(false);
    }
  }

  return { ...list, error, status, busy, tally, decide, checkLabels };
}
