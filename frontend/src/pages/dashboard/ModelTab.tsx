// The model: retrain with live progress, versions (rollback), learning curve, confusion matrix,
// uncertainty histogram. The training endpoints arrive with the active-learning loop; until
// then (404) or before the first model, every panel says "no model yet".

import { useCallback, useEffect, useState } from "react";
import { Bar } from "react-chartjs-2";

import { ErrorNote } from "../../components/ErrorNote";
import {
  api,
  type ApiError,
  apiOptional,
  asApiError,
  listOf,
  type ModelVersion,
  type Page,
  type Project,
  type Stats,
  type TrainingRun,
} from "../../lib/api";
import { COLORS } from "../../lib/charts";
import { heldOut, pct, runKind } from "./format";
import { LearningCurve } from "./LearningCurve";

const ACTIVE: TrainingRun["status"][] = ["queued", "running"];
const ORDERING_ONLY = ["cold_start", "new_images"];
const POLL_MS = 1000; // a run's progress, while one is queued or running

function when(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function ModelTab({ project }: { project: Project }) {
  const base = `/api/projects/${project.id}`;
  const [stats, setStats] = useState<Stats | null>(null);
  const [versions, setVersions] = useState<ModelVersion[] | null>(null);
  const [runs, setRuns] = useState<TrainingRun[] | null>(null);
  const [trainingAvailable, setTrainingAvailable] = useState<boolean | null>(null);
  const [run, setRun] = useState<TrainingRun | null>(null); // the run being watched
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      const [statsBody, runsBody, versionsBody] = await Promise.all([
        api<Stats>(`${base}/stats/`),
        apiOptional<TrainingRun[] | Page<TrainingRun>>(`${base}/training-runs/`),
        apiOptional<ModelVersion[] | Page<ModelVersion>>(`${base}/model-versions/`),
      ]);
      setStats(statsBody);
      setTrainingAvailable(runsBody !== null);
      const runList = listOf(runsBody);
      setRuns(runList);
      setVersions(listOf(versionsBody));
      const active = runList.find((r) => ACTIVE.includes(r.status));
      setRun((watched) => (watched && ACTIVE.includes(watched.status) ? watched : active ?? watched));
      setError(null);
    } catch (caught) {
      setError(asApiError(caught));
    }
  }, [base]);

  useEffect(() => {
    void load();
  }, [load]);

  // Follow the watched run until it ends, then show what it made.
  const runId = run?.id;
  const runActive = run ? ACTIVE.includes(run.status) : false;
  // A queued run that only orders the queue (a cold start, or scoring new images) gives way
  // to a training run.
  const canRetrain =
    !runActive || (run?.status === "queued" && ORDERING_ONLY.includes(run.trigger ?? ""));
  useEffect(() => {
    if (!runId || !runActive) return;
    let stopped = false;
    const timer = window.setInterval(async () => {
      try {
        const fresh = await api<TrainingRun>(`/api/training-runs/${runId}/`);
        if (stopped) return;
        setRun(fresh);
        if (!ACTIVE.includes(fresh.status)) void load();
      } catch {
        // a missed poll; the next one will do
      }
    }, POLL_MS);
    return () => {
      stopped = true;
      window.clearInterval(timer);
    };
  }, [runId, runActive, load]);

  async function retrain() {
    setBusy(true);
    try {
      const started = await api<TrainingRun>(`${base}/training-runs/`, { method: "POST", body: {} });
      setRun(started);
      setError(null);
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setBusy(false);
    }
  }

  async function cancel() {
    if (!run) return;
    try {
      setRun(await api<TrainingRun>(`/api/training-runs/${run.id}/cancel/`, { method: "POST" }));
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  async function activate(version: ModelVersion) {
    try {
      // Activation is a run too (the queue is re-scored with that version): watch it.
      setRun(await api<TrainingRun>(`/api/model-versions/${version.id}/activate/`, { method: "POST" }));
      await load();
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  const active = versions?.find((v) => v.is_active) ?? null;
  const curve = stats?.learning_curve ?? [];
  const activeStats = stats?.active_model?.version === active?.number ? stats?.active_model : null;

  return (
    <div className="grid-2">
      <section className="card" aria-labelledby="train-title">
        <h2 id="train-title">Training</h2>
        {error && <ErrorNote error={error} />}
        <p data-testid="active-model">
          {active ? (
            <>
              Active model <strong>v{active.number}</strong>: accuracy{" "}
              <strong>{pct(active.metrics?.accuracy)}</strong>{" "}
              {heldOut(
                activeStats?.val_images ?? active.metrics?.n_val,
                activeStats?.accuracy_interval,
              )}
              {active.metrics?.ece !== undefined && active.metrics?.ece !== null
                ? `, calibration error ${active.metrics.ece.toFixed(3)}`
                : ""}
              , trained on {active.labels_used?.toLocaleString() ?? "?"} labels.
            </>
          ) : (
            <>No model yet.</>
          )}
        </p>
        {trainingAvailable === false ? (
          <p className="muted">Training is not available on this server yet.</p>
        ) : (
          <>
            <div className="row">
              <button
                type="button"
                className="btn btn-primary"
                onClick={retrain}
                disabled={busy || !canRetrain || trainingAvailable === null}
              >
                Retrain now
              </button>
              {runActive && (
                <button type="button" className="btn btn-danger" onClick={cancel}>
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

      <LearningCurve curve={curve} />

      <section className="card" aria-labelledby="confusion-title">
        <h2 id="confusion-title">Confusion matrix{active ? ` (v${active.number})` : ""}</h2>
        {active?.metrics?.confusion?.length ? (
          // The model's own classes: the project's may have been reordered since.
          <ConfusionMatrix
            labels={active.metrics.classes ?? project.labels}
            matrix={active.metrics.confusion}
          />
        ) : (
          <p className="muted">No model yet.</p>
        )}
      </section>

      <section className="card" aria-labelledby="uncertainty-title">
        <h2 id="uncertainty-title">Uncertainty of unlabeled images</h2>
        <UncertaintyHistogram raw={stats?.uncertainty_histogram} />
      </section>

      <section className="card span-2" aria-labelledby="versions-title">
        <h2 id="versions-title">Model versions</h2>
        {!versions?.length ? (
          <p className="muted">No model yet.</p>
        ) : (
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Trained</th>
                <th scope="col" className="num">Labels</th>
                <th scope="col" className="num">Accuracy</th>
                <th scope="col" className="num">Held out</th>
                <th scope="col" className="num">ECE</th>
                <th scope="col">
                  <span className="visually-hidden">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {versions.map((version) => (
                <tr key={version.id}>
                  <th scope="row">
                    v{version.number} {version.is_active && <span className="badge badge-ok">active</span>}
                  </th>
                  <td>{when(version.created_at)}</td>
                  <td className="num">{version.labels_used?.toLocaleString() ?? "–"}</td>
                  <td className="num">{pct(version.metrics?.accuracy)}</td>
                  <td className="num">
                    {typeof version.metrics?.n_val === "number" && version.metrics.n_val > 0
                      ? version.metrics.n_val.toLocaleString()
                      : "–"}
                  </td>
                  <td className="num">
                    {typeof version.metrics?.ece === "number" ? version.metrics.ece.toFixed(3) : "–"}
                  </td>
                  <td>
                    {!version.is_active && (
                      <button type="button" className="btn btn-small" onClick={() => activate(version)}>
                        Activate<span className="visually-hidden"> v{version.number}</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {runs && runs.length > 0 && (
          <details>
            <summary>Recent runs</summary>
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">Status</th>
                  <th scope="col">Trigger</th>
                  <th scope="col">Started</th>
                  <th scope="col">Finished</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {runs.slice(0, 10).map((r) => (
                  <tr key={r.id}>
                    <th scope="row">#{r.id}</th>
                    <td>{r.status}</td>
                    <td data-trigger={r.trigger ?? ""}>{runKind(r.trigger)}</td>
                    <td>{when(r.started_at)}</td>
                    <td>{when(r.finished_at)}</td>
                    <td>{r.error ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        )}
      </section>
    </div>
  );
}

function RunProgress({ run }: { run: TrainingRun }) {
  const progress = Math.max(0, Math.min(1, run.progress ?? 0));
  const percent = Math.round(progress * 100);
  return (
    <div className="run-progress" data-testid="run-progress" data-status={run.status}>
      <p>
        Run #{run.id} ({runKind(run.trigger)}): <strong data-testid="run-status">{run.status}</strong>
        {run.stage ? ` · ${run.stage}` : ""}
        {ACTIVE.includes(run.status) ? ` · ${percent}%` : ""}
      </p>
      {ACTIVE.includes(run.status) && (
        <progress max={100} value={percent} aria-label={`Training progress, ${run.stage ?? run.status}`}>
          {percent}%
        </progress>
      )}
      {run.status === "failed" && run.error && (
        <p className="form-error" role="alert">
          {run.error}
        </p>
      )}
      {run.status === "succeeded" && run.model_version !== null && (
        <p className="muted small">A new model version was made from {run.labels_snapshot ?? "?"} labels.</p>
      )}
    </div>
  );
}

function ConfusionMatrix({ labels, matrix }: { labels: string[]; matrix: number[][] }) {
  const max = Math.max(1, ...matrix.flat());
  return (
    <div className="confusion-wrap">
      <table className="confusion">
        <caption className="muted small">Rows: the true class; columns: the model’s prediction.</caption>
        <thead>
          <tr>
            <td />
            {matrix[0]?.map((_, j) => (
              <th key={j} scope="col">
                {labels[j] ?? j}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            <tr key={i}>
              <th scope="row">{labels[i] ?? i}</th>
              {row.map((count, j) => {
                const strength = count / max;
                return (
                  <td
                    key={j}
                    className={i === j ? "diag" : undefined}
                    style={{
                      backgroundColor: `rgba(${i === j ? "21, 128, 61" : "185, 28, 28"}, ${strength * 0.85})`,
                      color: strength > 0.5 ? "#fff" : undefined,
                    }}
                  >
                    {count}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface Bin {
  label: string;
  count: number;
}

/** The histogram in any of the shapes a stats endpoint may reasonably send. */
export function histogramBins(raw: unknown): Bin[] {
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  if (Array.isArray(raw)) {
    return raw.map((item, i) => {
      if (typeof item === "number") return { label: String(i), count: item };
      const bin = item as Record<string, number>;
      const lo = bin.from ?? bin.lo ?? bin.start ?? bin.bin_start ?? bin.left ?? bin.min;
      const hi = bin.to ?? bin.hi ?? bin.end ?? bin.bin_end ?? bin.right ?? bin.max;
      const label = lo !== undefined && hi !== undefined ? `${fmt(lo)}–${fmt(hi)}` : String(i);
      return { label, count: bin.images ?? bin.count ?? bin.n ?? 0 };
    });
  }
  if (raw && typeof raw === "object") {
    const body = raw as Record<string, number[] | undefined>;
    const counts = body.counts;
    const edges = body.edges ?? body.bin_edges ?? body.bins;
    if (Array.isArray(counts)) {
      return counts.map((count, i) => ({
        label: edges && edges.length === counts.length + 1 ? `${fmt(edges[i])}–${fmt(edges[i + 1])}` : String(i),
        count,
      }));
    }
  }
  return [];
}

function UncertaintyHistogram({ raw }: { raw: unknown }) {
  const bins = histogramBins(raw);
  if (bins.length === 0 || bins.every((b) => b.count === 0)) {
    return <p className="muted">No model yet: images are scored after the first training run.</p>;
  }
  return (
    <div className="chart">
      <Bar
        role="img"
        aria-label={`Uncertainty histogram: ${bins.map((b) => `${b.label}: ${b.count}`).join(", ")}`}
        data={{
          labels: bins.map((b) => b.label),
          datasets: [{ label: "Unlabeled images", data: bins.map((b) => b.count), backgroundColor: COLORS.orange }],
        }}
        options={{
          plugins: { legend: { display: false } },
          scales: {
            x: { title: { display: true, text: "uncertainty" } },
            y: { beginAtZero: true, ticks: { precision: 0 } },
          },
        }}
      />
    </div>
  );
}
