// The Review tab (reviewers and admins): labels a label check suspects are wrong, the likeliest
// first. One suspect at a time, its image large enough to judge, the given label and who gave
// which vote, the model's class and confidence, the suspect score; confirm (C), relabel (a
// class key or the class picker) or send back for fresh votes (B); J/K or the arrows move.
// The state filter is in the URL (?state=), like the tab itself.

import { useEffect, useMemo } from "react";
import { useSearchParams } from "react-router";

import { ErrorNote } from "../../components/ErrorNote";
import { useLatest } from "../../hooks/useLatest";
import type { Project } from "../../lib/api";
import type { Review } from "../../lib/quality";
import { keyCap } from "../../lib/hotkeys";
import { pct } from "./format";
import { outcome, relabelKeys, type ReviewAction, reviewKeyAction, STATE_TITLES } from "./quality";
import { type StateFilter, useReviews } from "./useReviews";

const STATES = Object.keys(STATE_TITLES) as StateFilter[];

export function ReviewTab({ project }: { project: Project }) {
  const [params, setParams] = useSearchParams();
  const asked = params.get("state") as StateFilter | null;
  const state: StateFilter = asked && STATES.includes(asked) ? asked : "open";
  const queue = useReviews(project, state);
  const keys = useMemo(() => relabelKeys(project.labels), [project.labels]);
  const { current } = queue;

  function act(action: ReviewAction) {
    if (action.type === "next") return queue.move(1);
    if (action.type === "previous") return queue.move(-1);
    if (!current) return;
    if (action.type === "confirm") return void queue.decide(current, "confirm");
    if (action.type === "send_back") return void queue.decide(current, "send_back");
    return void queue.decide(current, "relabel", action.label);
  }

  const latest = useLatest({ act, keys });
  useEffect(() => {
    function onKeyDown(event: KeyboardEvent) {
      const target = event.target as HTMLElement | null;
      if (target?.closest("input, textarea, select, [contenteditable='true']")) return;
      if ((event.key === "Enter" || event.key === " ") && target?.closest("button, a")) return;
      const action = reviewKeyAction(event, latest.current.keys);
      if (!action) return;
      event.preventDefault();
      latest.current.act(action);
    }
    window.addEventListener("keydown", onKeyDown);
    return () => window.removeEventListener("keydown", onKeyDown);
  }, [latest]);

  return (
    <div className="review">
      <form className="filters" aria-label="Filter reviews" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select
            value={state}
            onChange={(e) => setParams(e.target.value === "open" ? {} : { state: e.target.value })}
          >
            {STATES.map((s) => (
              <option key={s} value={s}>
                {STATE_TITLES[s]}
              </option>
            ))}
          </select>
        </label>
        <Counts queue={queue} state={state} />
      </form>
      {queue.loadError && <ErrorNote error={queue.loadError} />}
      <p className="status-line" role="status" aria-live="polite" data-testid="review-status">
        {queue.status}
      </p>
      {queue.error && queue.error.status !== 0 && <ErrorNote error={queue.error} />}
      {queue.reviews === null && !queue.loadError && <p aria-busy="true">Loading the review queue…</p>}
      {queue.reviews?.length === 0 && (
        <EmptyQueue project={project} state={state} busy={queue.busy} checkLabels={queue.checkLabels} />
      )}
      {current && queue.reviews && (
        <div className="review-layout">
          <Suspect review={current} project={project} keys={keys} queue={queue} />
          <SuspectList reviews={queue.reviews} index={queue.index} select={queue.setIndex} />
        </div>
      )}
      {queue.next && (
        <button type="button" className="btn" onClick={() => void queue.loadMore()}>
          Load more
        </button>
      )}
    </div>
  );
}

type Queue = ReturnType<typeof useReviews>;

function Counts({ queue, state }: { queue: Queue; state: StateFilter }) {
  const shown = queue.reviews?.length ?? 0;
  const { confirm, relabel, send_back: sentBack } = queue.tally;
  const decided = confirm + relabel + sentBack;
  return (
    <p className="review-counts" data-testid="review-counts">
      <strong>
        {shown.toLocaleString()}
        {queue.next ? "+" : ""}
      </strong>{" "}
      {state === "all" ? "reviews" : STATE_TITLES[state].toLowerCase().replace(/ \(.*/, "")}
      {decided > 0 && (
        <span className="muted">
          {" "}
          · this session: {confirm} confirmed, {relabel} relabeled, {sentBack} sent back
        </span>
      )}
    </p>
  );
}

function EmptyQueue({
  project,
  state,
  busy,
  checkLabels,
}: {
  project: Project;
  state: StateFilter;
  busy: boolean;
  checkLabels: () => Promise<void>;
}) {
  if (state !== "open") return <p className="muted">No reviews in this state.</p>;
  return (
    <div className="card review-empty" data-testid="review-empty">
      <h2>No suspect labels to review</h2>
      <p>
        This queue holds the labels most likely to be wrong. After each training round a label
        check predicts every labeled image with a model that never saw its label (cross-fitting)
        and ranks the labels the predictions contradict most (confident learning); the likeliest
        errors come here first. Confirm a label, relabel the image, or send it back for fresh
        votes: the next round trains on what you decide.
      </p>
      {project.role === "admin" && (
        <button type="button" className="btn btn-primary" disabled={busy} onClick={() => void checkLabels()}>
          Check labels now
        </button>
      )}
    </div>
  );
}

function Suspect({
  review,
  project,
  keys,
  queue,
}: {
  review: Review;
  project: Project;
  keys: Map<string, string>;
  queue: Queue;
}) {
  const open = review.state === "open";
  const img = review.image;
  return (
    <section className="card review-suspect" aria-labelledby="suspect-title" data-testid="review-current">
      <h2 id="suspect-title">
        Image {img.id} <span className="muted small">{img.original_name}</span>
      </h2>
      <div className="review-body">
        <div className="detail-image review-image">
          <img
            src={img.file_url}
            alt={`Image ${img.id}, labeled ${review.given_label}`}
            className={Math.max(img.width, img.height) < 256 ? "pixelated" : undefined}
          />
        </div>
        <div className="review-facts">
          <dl className="facts">
            <dt>Label</dt>
            <dd data-testid="review-given">
              <strong>{review.given_label}</strong>
            </dd>
            <dt>Model says</dt>
            <dd data-testid="review-model">
              <strong>{review.model_label}</strong> ({pct(review.model_confidence, 0)} sure)
            </dd>
            <dt>Suspect score</dt>
            <dd data-testid="review-score" title="How likely the label is wrong, 0 to 1">
              {review.score.toFixed(2)}
            </dd>
            <dt>State</dt>
            <dd>{outcome(review)}</dd>
          </dl>
          <h3>Votes</h3>
          {review.votes.length === 0 ? (
            <p className="muted">No votes on record (imported label).</p>
          ) : (
            <ul className="annotations" data-testid="review-votes">
              {review.votes.map((v, i) => (
                <li key={`${v.annotator}-${i}`}>
                  <strong>{v.label}</strong> by {v.annotator}
                  {v.source !== "manual" && <span className="muted"> ({v.source})</span>}
                  {v.discarded && <span className="muted"> · discarded (sent back)</span>}
                </li>
              ))}
            </ul>
          )}
          {open && <DecisionButtons review={review} project={project} keys={keys} queue={queue} />}
        </div>
      </div>
      <p className="muted small">
        <kbd>J</kbd>/<kbd>K</kbd> or arrows: next and previous · <kbd>C</kbd> confirm ·{" "}
        <kbd>B</kbd> send back for fresh votes · a class key relabels
      </p>
    </section>
  );
}

/** Confirm, send back, or relabel as one of the classes (its key beside it). */
function DecisionButtons({
  review,
  project,
  keys,
  queue,
}: {
  review: Review;
  project: Project;
  keys: Map<string, string>;
  queue: Queue;
}) {
  const keyOf = useMemo(() => new Map([...keys].map(([key, label]) => [label, key])), [keys]);
  return (
    <div className="review-actions" role="group" aria-label="Decision">
      <button type="button" className="btn btn-primary" disabled={queue.busy} onClick={() => void queue.decide(review, "confirm")}>
        <kbd>C</kbd> Confirm “{review.given_label}”
      </button>
      <button type="button" className="btn" disabled={queue.busy} onClick={() => void queue.decide(review, "send_back")}>
        <kbd>B</kbd> Send back
      </button>
      <span className="muted small">Relabel as:</span>
      <div className="review-classes">
        {project.labels.map((label) => {
          const key = keyOf.get(label);
          return (
            <button
              key={label}
              type="button"
              className={`btn btn-small${label === review.model_label ? " suggested" : ""}`}
              disabled={queue.busy || label === review.given_label}
              onClick={() => void queue.decide(review, "relabel", label)}
              aria-label={`Relabel as ${label}`}
            >
              {key && <kbd>{keyCap(key)}</kbd>} {label}
            </button>
          );
        })}
      </div>
    </div>
  );
}

function SuspectList({
  reviews,
  index,
  select,
}: {
  reviews: Review[];
  index: number;
  select: (index: number) => void;
}) {
  return (
    <ol className="review-list" aria-label="Suspect labels, likeliest errors first">
      {reviews.map((r, i) => (
        <li key={r.id}>
          <button
            type="button"
            className={`review-item${i === index ? " selected" : ""}`}
            aria-current={i === index ? "true" : undefined}
            onClick={() => select(i)}
          >
            <img src={r.image.file_url} alt="" loading="lazy" className="pixelated" />
            <span>
              <strong>{r.given_label}</strong> → {r.model_label}
              <span className="muted small"> · score {r.score.toFixed(2)}</span>
              {r.state !== "open" && <span className="muted small"> · {r.state.replace("_", " ")}</span>}
            </span>
          </button>
        </li>
      ))}
    </ol>
  );
}
