// How the model tab writes numbers.

export function pct(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(digits)}%`;
}

/** "on 5 held-out labels (95% interval 57–100%)": how far to trust an accuracy. */
export function heldOut(images: number | null | undefined, interval?: [number, number] | null): string {
  if (!images) return "on held-out labels";
  const count = `on ${images.toLocaleString()} held-out label${images === 1 ? "" : "s"}`;
  if (!interval) return count;
  return `${count} (95% interval ${pct(interval[0], 0)}–${pct(interval[1], 0)})`;
}

// What each kind of run does, in words (the API's `trigger`).
const RUN_KINDS: Record<string, string> = {
  manual: "retrain, requested",
  automatic: "retrain, automatic",
  activation: "re-score with a version",
  cold_start: "cold-start ordering",
  new_images: "scoring new images",
  pretrain: "backbone pretraining",
  backbone_import: "backbone import",
  label_check: "label check (suspect labels)",
  fine_tune: "fine-tune (every layer, after the head fit)",
};

/** "scoring new images" for `new_images`; an unknown trigger as it is. */
export function runKind(trigger: string | null | undefined): string {
  if (!trigger) return "–";
  return RUN_KINDS[trigger] ?? trigger;
}

/** What a run is, by its lane: a round (and queue ordering) or work on a backbone beside them. */
export function laneName(lane: string | null | undefined): string {
  return lane === "background" ? "Backbone run" : "Round";
}
