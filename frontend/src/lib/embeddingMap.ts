// The embedding map's geometry and colours, apart from React so they can be tested: where a
// point is drawn, which points a lasso encloses, and each point's colour in each mode.

/** GET /api/projects/{id}/embedding-map/: a 2-D projection of the project's embeddings. */
export interface EmbeddingMapAnswer {
  method: string;
  source: { kind: "backbone" | "model"; number: number };
  total: number;
  sampled: number;
  explained: number[];
  built_at: string;
  labels: string[];
  points: {
    id: number[];
    x: number[];
    y: number[];
    label: number[]; // index into labels; -1: none
    predicted: number[];
    uncertainty: (number | null)[];
  };
}

export type Point = [number, number];
export type ColourMode = "label" | "predicted" | "uncertainty";

/** The canvas's side (CSS pixels) and its margin: a point at (x, y) in 0..1 is drawn at
 * MAP_PAD + x * (MAP_SIZE - 2 * MAP_PAD) across and the same from the bottom up. */
export const MAP_SIZE = 560;
export const MAP_PAD = 12;

export function toCanvas(x: number, y: number): Point {
  const span = MAP_SIZE - 2 * MAP_PAD;
  return [MAP_PAD + x * span, MAP_SIZE - MAP_PAD - y * span];
}

/** Whether (px, py) is inside the polygon (ray casting; the polygon closes itself). */
export function insidePolygon(px: number, py: number, polygon: readonly Point[]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** The positions (indexes) of the points whose drawn place is inside the lasso. */
export function lassoSelect(xs: readonly number[], ys: readonly number[], lasso: readonly Point[]): number[] {
  if (lasso.length < 3) return [];
  const chosen: number[] = [];
  for (let n = 0; n < xs.length; n++) {
    const [cx, cy] = toCanvas(xs[n], ys[n]);
    if (insidePolygon(cx, cy, lasso)) chosen.push(n);
  }
  return chosen;
}

// Ten well-separated colours (Tableau 10), then hues spread by the golden angle.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
export const NONE_COLOUR = "#cbd5e1";

export function classColour(index: number): string {
  if (index < 0) return NONE_COLOUR;
  if (index < PALETTE.length) return PALETTE[index];
  return `hsl(${Math.round((index * 137.508) % 360)}, 60%, 50%)`;
}

/** Uncertainty 0 (sure) blue, through yellow, to 1 (unsure) red; none grey. */
export function uncertaintyColour(value: number | null): string {
  if (value === null) return NONE_COLOUR;
  const u = Math.min(1, Math.max(0, value));
  return `hsl(${Math.round(220 - 220 * u)}, 75%, 50%)`;
}

export function pointColour(
  mode: ColourMode,
  n: number,
  points: { label: number[]; predicted: number[]; uncertainty: (number | null)[] },
): string {
  if (mode === "label") return classColour(points.label[n]);
  if (mode === "predicted") return classColour(points.predicted[n]);
  return uncertaintyColour(points.uncertainty[n]);
}
