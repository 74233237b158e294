// The model tab's state: statistics, runs and versions (re-read after every change), the run
// being watched (polled until it ends; rounds only, not the background lane's backbone runs),
// and the actions on runs and versions. The training endpoints arrive with the active-learning
// loop; until then (404) there are no runs.

import { useCallback, useEffect, useState } from "react";

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

export const ACTIVE: TrainingRun["status"][] = ["queued", "running"];
const ORDERING_ONLY = ["cold_start", "new_images"];
const POLL_MS = 1000; // a run's progress, while one is queued or running

/** Follow the watched run until it ends, then re-read what it made. */
function useRunPolling(
  run: TrainingRun | null,
  setRun: (run: TrainingRun) => void,
  load: () => Promise<void>,
): boolean {
  const runId = run?.id;
  const runActive = run ? ACTIVE.includes(run.status) : false;
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
  }, [runId, runActive, setRun, load]);
  return runActive;
}

export function useModel(project: Project) {
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
      // The round being watched: a backbone run (background lane) is the Backbone panel's.
      const active = runList.find((r) => r.lane !== "background" && ACTIVE.includes(r.status));
      setRun((watched) => (watched && ACTIVE.includes(watched.status) ? watched : active ?? watched));
      setError(null);
    } catch (caught) {
      setError(asApiError(caught));
    }
  }, [base]);

  useEffect(() => {
    void load();
  }, [load]);

  const runActive = useRunPolling(run, setRun, load);
  // A queued run that only orders the queue (a cold start, or scoring new images) gives way
  // to a training run.
  const canRetrain =
    !runActive || (run?.status === "queued" && ORDERING_ONLY.includes(run.trigger ?? ""));

  /** POST to start a run or activate a version, then watch the run it answers with. */
  async function watch(path: string, body?: unknown) {
    try {
      setRun(await api<TrainingRun>(path, { method: "POST", body }));
      return true;
    } catch (caught) {
      setError(asApiError(caught));
      return false;
    }
  }

  const actions = {
    async retrain() {
      setBusy(true);
      if (await watch(`${base}/training-runs/`, {})) setError(null);
      setBusy(false);
    },
    async cancel() {
      if (run) await watch(`/api/training-runs/${run.id}/cancel/`);
    },
    async activate(version: ModelVersion) {
      // Activation is a run too (the queue is re-scored with that version): watch it.
      if (await watch(`/api/model-versions/${version.id}/activate/`)) await load();
    },
  };

  return { stats, versions, runs, trainingAvailable, run, error, busy, runActive, canRetrain, ...actions };
}
