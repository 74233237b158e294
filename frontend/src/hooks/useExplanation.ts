// The activation map of one image while it is wanted: fetched (polling while a worker draws
// it) and kept per image and version for the page's life, so going back shows it at once.

import { useEffect, useRef, useState } from "react";

import { type Explanation, fetchExplanation } from "../lib/explanation";

export interface ExplanationState {
  explanation: Explanation | null;
  loading: boolean;
  error: string | null;
}

const IDLE: ExplanationState = { explanation: null, loading: false, error: null };

export function useExplanation(
  imageId: number | null,
  enabled: boolean,
  version?: number | null,
): ExplanationState {
  const cache = useRef(new Map<string, Explanation>());
  const [state, setState] = useState<ExplanationState>(IDLE);
  const key = imageId === null ? null : `${imageId}:${version ?? "active"}`;

  useEffect(() => {
    if (!enabled || imageId === null || key === null) {
      setState(IDLE);
      return;
    }
    const cached = cache.current.get(key);
    if (cached) {
      setState({ explanation: cached, loading: false, error: null });
      return;
    }
    const controller = new AbortController();
    setState({ explanation: null, loading: true, error: null });
    fetchExplanation(imageId, { version, signal: controller.signal }).then(
      (explanation) => {
        cache.current.set(key, explanation);
        setState({ explanation, loading: false, error: null });
      },
      (error: Error) => {
        if (error.name === "AbortError") return;
        setState({ explanation: null, loading: false, error: error.message });
      },
    );
    return () => controller.abort();
  }, [enabled, imageId, key, version]);

  useEffect(() => {
    const maps = cache.current;
    return () => {
      for (const explanation of maps.values()) URL.revokeObjectURL(explanation.src);
      maps.clear();
    };
  }, []);

  return state;
}
