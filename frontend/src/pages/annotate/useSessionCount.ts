import { useCallback, useState } from "react";

interface SessionCount {
  count: number;
  startedAt: number; // ms since the epoch
}

/** Labels in this browser tab's session (kept across reloads, like the tab itself). */
export function useSessionCount(projectId: number) {
  const key = `labelloop.session.${projectId}`;
  const [state, setState] = useState<SessionCount>(() => {
    try {
      const stored = JSON.parse(sessionStorage.getItem(key) ?? "null") as SessionCount | null;
      if (stored && typeof stored.count === "number") return stored;
    } catch {
      // a fresh count below
    }
    return { count: 0, startedAt: Date.now() };
  });
  const add = useCallback(() => {
    setState((old) => {
      const next = { ...old, count: old.count + 1 };
      sessionStorage.setItem(key, JSON.stringify(next));
      return next;
    });
  }, [key]);
  return { ...state, add };
}
