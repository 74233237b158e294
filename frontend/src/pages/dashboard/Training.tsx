// The model tab's training card: the active model's accuracy, "Retrain now", and the watched
// round's progress. Backbone runs (the background lane) show in the Backbone panel, with the
// same RunProgress, named by their lane so that neither passes for the other.

import { ErrorNote } from "../../components/ErrorNote";
import type { ApiError, ModelVersion, Project, Stats, TrainingRun } from "../../lib/api";
import { accuracyRange, FEW_HELD_OUT, heldOut, laneName, pct, queuePicker, runKind } from "./format";
import { ACTIVE } from "./useModel";

export function TrainingCard({
  project,
  active,
  activeStats,
  model,
}: {
  project: Project;
  active: ModelVersion | null; // the active version
  activeStats: Stats["active_model"] | null; // the stats of that same version
  model: {
    error: ApiError | null;
    trainingAvailable: boolean | null; // null: not known yet
    run: TrainingRun | null;
    runActive: boolean;
    canRetrain: boolean;
    busy: boolean;
    retrain: () => void;
    cancel: () => void;
  };
}) {
  const { error, trainingAvailable, run, runActive } = model;
  return (
    <section className="card" aria-labelledby="train-title">
      <h2 id="train-title">Training</h2>
      {error && <ErrorNote error={error} />}
      <ActiveModel active={active} activeStats={activeStats} />
      {trainingAvailable === false ? (
        <p className="muted">Training is not available on this server yet.</p>
      ) : (
        <>
          <div className="row">
            <button
              type="button"
              className="btn btn-primary"
              onClick={model.retrain}
              disabled={model.busy || !model.canRetrain || trainingAvailable === null}
            >
              Retrain now
            </button>
            {runActive && (
              <button type="button" className="btn btn-danger" onClick={model.cancel}>
                Cancel run
              </button>
            )}
          </div>
          <p className="muted small">
            {project.retrain_every > 0
              ? `A run also starts by itself after every ${project.retrain_every} new labels.`
              : "Automatic retraining is off (Settings)."}
          </p>
        </>
      )}
      {run && <RunProgress run={run} />}
    </section>
  );
}

/** The active model, led by the range its accuracy is likely in (a point figure on a handful
 * of held-out labels misleads), with a warning while the held-out set is small. */
function ActiveModel({
  active,
  activeStats,
}: {
  active: ModelVersion | null;
  activeStats: Stats["active_model"] | null;
}) {
  if (!active) return <p data-testid="active-model">No model yet.</p>;
  const accuracy = active.metrics?.accuracy;
  const n = activeStats?.val_images ?? active.metrics?.n_val ?? null;
  const range = accuracyRange(accuracy, n, activeStats?.accuracy_interval);
  return (
    <>
      <p data-testid="active-model">
        Active model <strong>v{active.number}</strong>:{" "}
        {range ? (
          <>
            accuracy likely <strong data-testid="accuracy-range">{range}</strong> (measured{" "}
            {pct(accuracy)} {heldOut(n)})
          </>
        ) : (
          <>accuracy {pct(accuracy)} {heldOut(n)}</>
        )}
        {active.metrics?.ece !== undefined && active.metrics?.ece !== null
          ? `, calibration error ${active.metrics.ece.toFixed(3)}`
          : ""}
        , trained on {active.labels_used?.toLocaleString() ?? "?"} labels.
      </p>
      {n !== null && n < FEW_HELD_OUT && (
        <p className="note note-warn" data-testid="few-held-out">
          Only {n} held-out label{n === 1 ? "" : "s"}: the accuracy can be far off. It firms up as
          more labels come from the random exploration slice (aim for {FEW_HELD_OUT} or more).
        </p>
      )}
    </>
  );
}

/** A run's status, stage and progress; `testId` prefixes the test ids ("run": the round's). */
export function RunProgress({ run, testId = "run" }: { run: TrainingRun; testId?: string }) {
  const progress = Math.max(0, Math.min(1, run.progress ?? 0));
  const percent = Math.round(progress * 100);
  const picker = queuePicker(run.metrics); // "" unless typical images lead the queue
  return (
    <div className="run-progress" data-testid={`${testId}-progress`} data-status={run.status}>
      <p>
        {laneName(run.lane)} #{run.id} ({runKind(run.trigger)}):{" "}
        <strong data-testid={`${testId}-status`}>{run.status}</strong>
        {run.stage ? ` · ${run.stage}` : ""}
        {ACTIVE.includes(run.status) ? ` · ${percent}%` : ""}
      </p>
      {ACTIVE.includes(run.status) && (
        <progress max={100} value={percent} aria-label={`${laneName(run.lane)} progress, ${run.stage ?? run.status}`}>
          {percent}%
        </progress>
      )}
      {run.status === "queued" && run.wait && (
        <p className="small" data-testid={`${testId}-wait`} data-reason={run.wait.reason}>
          {run.wait.message} (place in line: {run.wait.position})
        </p>
      )}
      {run.status === "failed" && run.error && (
        <p className="form-error" role="alert">
          {run.error}
        </p>
      )}
      {run.status === "succeeded" && run.model_version !== null && (
        <p className="muted small">A new model version was made from {run.labels_snapshot ?? "?"} labels.</p>
      )}
      {run.status === "succeeded" && picker && (
        <p className="muted small" data-testid={`${testId}-picker`}>
          {picker}
        </p>
      )}
    </div>
  );
}
