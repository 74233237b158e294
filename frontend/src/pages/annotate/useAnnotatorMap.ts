// The annotator's activation-map toggle (key H): off by default; while on, the current
// image's map is fetched and laid over it. Only where the project shows suggestions.

import { useCallback, useState } from "react";

import { type ExplanationState, useExplanation } from "../../hooks/useExplanation";

export interface AnnotatorMap {
  on: boolean;
  toggle: () => void;
  state: ExplanationState;
}

export function useAnnotatorMap(imageId: number | null, suggestions: boolean): AnnotatorMap {
  const [on, setOn] = useState(false);
  const toggle = useCallback(() => setOn((shown) => !shown), []);
  const state = useExplanation(imageId, on && suggestions);
  return { on: on && suggestions, toggle, state };
}
