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

/** What a finished round did to the queue: its `metrics.picker` is "typical" while the hand-over
 * rule has TypiClust pick (a project on a backbone with fewer than 3 labels per class). "" when
 * the project's strategy picked, as it does for every other round. */
export function queuePicker(metrics: Record<string, unknown> | null | undefined): string {
  if (metrics?.picker !== "typical") return "";
  return (
    "The queue now serves typical images first, one from each cluster of the backbone's " +
    "features: with fewer than 3 labels per class, these teach the model more than its doubts " +
    "do. The project's strategy takes over from 3 labels per class."
  );
}

// Below this many held-out labels an accuracy can be off by 20 points or more: the model tab
// says so beside it (a 95% interval on 30 labels at 90% spans about 74–97%).
export const FEW_HELD_OUT = 30;

/** The 95% Wilson score interval of `accuracy` measured on `n` labels. */
export function wilson(accuracy: number, n: number): [number, number] {
  const z = 1.96;
  const denominator = 1 + (z * z) / n;
  const centre = (accuracy + (z * z) / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((accuracy * (1 - accuracy)) / n + (z * z) / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** "73–100%": an accuracy as the range it is likely in; null without held-out labels. */
export function accuracyRange(
  accuracy: number | null | undefined,
  n: number | null | undefined,
  interval?: [number, number] | null,
): string | null {
  if (accuracy === null || accuracy === undefined || !n) return null;
  const [low, high] = interval ?? wilson(accuracy, n);
  return `${pct(low, 0).replace("%", "")}–${pct(high, 0)}`;
}
