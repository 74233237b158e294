// How the model tab writes backbones: the one-line description, the probe score, the loss
// curve's points, and which backbone a model version used. Pure; tested by
// backboneFormat.test.ts (`npm test`).

import type { Backbone, BackboneRef, ModelVersion, Probe, ProbeScore } from "../../lib/api";
import { pct } from "./format";

// Self-supervised methods in their usual spelling (the API's `metrics.method`).
const METHODS: Record<string, string> = { simclr: "SimCLR" };

/** "41 min" for 2460 s: how long a pretraining took, to the unit a reader needs. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const rest = minutes % 60;
  return rest ? `${Math.floor(minutes / 60)} h ${rest} min` : `${minutes / 60} h`;
}

/** The file name of an origin that may be a path or a URL ("" stays ""). */
function fileName(origin: string): string {
  const trimmed = origin.replace(/[?#].*$/, "").replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * "#2 · pretrained on 8,000 images · SimCLR · 30 epochs · 41 min" or
 * "#1 · imported resnet18-f37072fd.pth (resnet18, 224 px)".
 */
export function describeBackbone(b: Backbone): string {
  if (b.source === "import") {
    const name = fileName(b.origin) || "weights";
    return `#${b.number} · imported ${name} (${b.arch}, ${b.input_size} px)`;
  }
  const m = b.metrics ?? {};
  const parts = [`#${b.number}`, `pretrained on ${b.images_seen.toLocaleString("en-US")} images`];
  if (m.method) parts.push(METHODS[m.method] ?? m.method);
  if (typeof m.epochs_run === "number") parts.push(`${m.epochs_run} epoch${m.epochs_run === 1 ? "" : "s"}`);
  if (typeof m.seconds === "number") parts.push(duration(m.seconds));
  if (m.stopped === "budget") parts.push("stopped at the time budget");
  if (m.stopped === "cancelled") parts.push("cancelled early");
  return parts.join(" · ");
}

function score(name: string, s: ProbeScore, withInterval: boolean): string {
  const text = `${name} ${pct(s.accuracy, 0)}`;
  if (!withInterval) return text;
  return `${text} (${pct(s.interval[0], 0).slice(0, -1)}–${pct(s.interval[1], 0)})`;
}

/**
 * "k-NN 62% (55–68%) · linear 66% on 120 labels": how well the features separate the classes
 * labeled so far. Without a score, why (the probe's note), or that there were no labels.
 */
export function probeText(p: Probe | null | undefined): string {
  if (!p) return "Not scored on labels.";
  const scores = [];
  if (p.knn) scores.push(score("k-NN", p.knn, true));
  if (p.linear) scores.push(score("linear", p.linear, false));
  if (!scores.length) return p.note ? `Not scored: ${p.note}.` : "Not scored: no labels yet.";
  const labels = p.labels ?? p.n;
  return `${scores.join(" · ")} on ${labels.toLocaleString("en-US")} label${labels === 1 ? "" : "s"}`;
}

/**
 * Where the probe score comes from, once a round measured it again on its labels:
 * "Measured by the round of v3; at registration: k-NN 40% (31–50%) on 20 labels." ("" while
 * the score is still the registration's).
 */
export function probeHistory(m: Backbone["metrics"]): string {
  if (!m || typeof m.probe_version !== "number") return "";
  const first = m.probe_at_registration;
  const then = first ? probeText(first).replace(/^Not scored/, "not scored") : "not scored";
  return `Measured by the round of v${m.probe_version}; at registration: ${then.replace(/\.$/, "")}.`;
}

/**
 * SVG polyline points of a loss curve in a width x height box (y down, the highest loss at the
 * top, the lowest at the bottom); "" for fewer than two values, or any that is not finite (a
 * diverged run has no curve worth drawing).
 */
export function lossPoints(values: number[], width: number, height: number): string {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length < 2 || finite.length !== values.length) return "";
  const lo = Math.min(...values);
  const span = Math.max(...values) - lo || 1; // a flat curve sits at the bottom
  const step = width / (values.length - 1);
  return values
    .map((v, i) => `${round(i * step)},${round(height - ((v - lo) / span) * height)}`)
    .join(" ");
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/** "scratch" or "backbone #2": what a model version's head was fitted on. */
export function backboneLabel(ref: BackboneRef | null | undefined): string {
  return ref ? `backbone #${ref.number}` : "scratch";
}

/** What a version is built on: "scratch", "backbone #2" (a head on its frozen features) or
 * "backbone #2, fine-tuned from v3" (every layer trained, starting from v3). */
export function builtOn(version: Partial<Pick<ModelVersion, "backbone" | "metrics">>): string {
  const base = backboneLabel(version.backbone);
  const from = version.metrics?.base_version;
  if (!version.backbone || version.metrics?.trained !== "fine-tuned") return base;
  return typeof from === "number" ? `${base}, fine-tuned from v${from}` : `${base}, fine-tuned`;
}
