// The single view asks the queue now and then (every OFFER_EVERY labels) whether a page of
// images the model is sure of is waiting: a probe, which leases nothing. When one is, the
// status line offers it (G); the annotator decides, and the flow is never interrupted.

import { useEffect } from "react";

import { useLatest } from "../../hooks/useLatest";
import { api } from "../../lib/api";
import { type GridAnswer, offerDue, offerText } from "../../lib/grid";

export function useGridOffer(
  projectId: number,
  suggestions: boolean,
  labeled: number,
  offer: (text: string) => void,
) {
  const offerNow = useLatest(offer);
  const due = offerDue(labeled, suggestions);
  useEffect(() => {
    if (!due) return;
    let live = true;
    api<GridAnswer>(`/api/projects/${projectId}/tasks/grid/`, {
      method: "POST",
      body: { probe: true },
    })
      .then((answer) => {
        if (live && answer.grid && answer.proposed) offerNow.current(offerText(answer.proposed));
      })
      .catch(() => undefined); // only an offer: offline or refused, the next one will ask
    return () => {
      live = false;
    };
  }, [due, labeled, projectId, offerNow]);
}
