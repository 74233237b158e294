// The Backbone panel's state: the project's backbones (GET /api/projects/{id}/backbones/), its
// background-lane runs (pretraining and imports, from GET .../training-runs/, polled while one
// is queued or running), and the admin's actions: pretrain, import weights, cancel. When a
// background run ends the backbones are read again (it may have registered a new one).

import { useEffect, useRef, useState } from "react";

import { useResource } from "../../hooks/useResource";
import {
  api,
  type ApiError,
  asApiError,
  type Backbone,
  listOf,
  type Page,
  type Project,
  type TrainingRun,
} from "../../lib/api";
import { ACTIVE } from "./useModel";

const POLL_MS = 1500; // a background run's progress: its stages last minutes, not seconds

/** The background runs worth showing: those queued or running, else the newest one (its end). */
export function backgroundRuns(runs: TrainingRun[]): TrainingRun[] {
  const background = runs.filter((r) => r.lane === "background");
  const active = background.filter((r) => ACTIVE.includes(r.status));
  return active.length ? active : background.slice(0, 1);
}

export interface ImportRequest {
  file: File;
  inputSize: number | null; // null: the server's default
}

export function useBackbones(project: Project) {
  const base = `/api/projects/${project.id}`;
  const [polling, setPolling] = useState(false);
  const backbones = useResource<Backbone[] | Page<Backbone>>(`${base}/backbones/`);
  const runs = useResource<TrainingRun[] | Page<TrainingRun>>(
    `${base}/training-runs/`,
    polling ? POLL_MS : 0,
  );
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const shown = backgroundRuns(listOf(runs.data));
  const running = shown.some((r) => ACTIVE.includes(r.status));
  const reloadBackbones = backbones.reload;
  const wasRunning = useRef(false);
  useEffect(() => {
    setPolling(running);
    if (wasRunning.current && !running) reloadBackbones();
    wasRunning.current = running;
  }, [running, reloadBackbones]);

  /** POST, then read the runs again (the answer is, or names, the queued run). */
  async function post(path: string, body: unknown): Promise<boolean> {
    setBusy(true);
    try {
      await api<unknown>(path, { method: "POST", body });
      setError(null);
      runs.reload();
      return true;
    } catch (caught) {
      setError(asApiError(caught));
      return false;
    } finally {
      setBusy(false);
    }
  }

  const actions = {
    pretrain(minutes: number | null) {
      return post(`${base}/training-runs/`, minutes ? { kind: "pretrain", minutes } : { kind: "pretrain" });
    },
    importWeights({ file, inputSize }: ImportRequest) {
      const form = new FormData();
      form.append("file", file);
      if (inputSize) form.append("input_size", String(inputSize));
      return post(`${base}/backbones/`, form);
    },
    cancel(run: TrainingRun) {
      return post(`/api/training-runs/${run.id}/cancel/`, undefined);
    },
  };

  return {
    backbones: backbones.data === null ? null : listOf(backbones.data),
    loadError: backbones.error ?? runs.error,
    runs: shown,
    error,
    busy,
    ...actions,
  };
}
