import { useCallback, useEffect, useState } from "react";

import { api, type ApiError, asApiError, type Project } from "../lib/api";

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

/** GET a resource once (and again on reload()); `refreshMs` polls it. */
export function useResource<T>(path: string | null, refreshMs = 0): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);

  useEffect(() => {
    if (path === null) return;
    const controller = new AbortController();
    setLoading(true);
    api<T>(path, { signal: controller.signal })
      .then((body) => {
        setData(body);
        setError(null);
      })
      .catch((caught) => {
        if ((caught as Error).name === "AbortError") return;
        setError(asApiError(caught));
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
  }, [path, tick]);

  useEffect(() => {
    if (!refreshMs || path === null) return;
    const timer = window.setInterval(reload, refreshMs);
    return () => window.clearInterval(timer);
  }, [refreshMs, path, reload]);

  return { data, error, loading, reload };
}

export function useProject(projectId: string | undefined, refreshMs = 0): Loaded<Project> {
  return useResource<Project>(projectId ? `/api/projects/${projectId}/` : null, refreshMs);
}
