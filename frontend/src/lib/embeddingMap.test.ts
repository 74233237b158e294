import { describe, expect, it } from "vitest";

import {
  classColour,
  insidePolygon,
  lassoSelect,
  MAP_PAD,
  MAP_SIZE,
  NONE_COLOUR,
  pointColour,
  toCanvas,
  uncertaintyColour,
} from "./embeddingMap";

describe("the map's geometry", () => {
  it("draws 0..1 inside the margin, y upwards", () => {
    expect(toCanvas(0, 0)).toEqual([MAP_PAD, MAP_SIZE - MAP_PAD]);
    expect(toCanvas(1, 1)).toEqual([MAP_SIZE - MAP_PAD, MAP_PAD]);
  });

  it("knows inside from outside of a concave lasso", () => {
    // A U shape: the notch in the middle is outside.
    const u: [number, number][] = [[0, 0], [30, 0], [30, 30], [20, 30], [20, 10], [10, 10], [10, 30], [0, 30]];
    expect(insidePolygon(5, 20, u)).toBe(true);
    expect(insidePolygon(25, 20, u)).toBe(true);
    expect(insidePolygon(15, 20, u)).toBe(false);
    expect(insidePolygon(15, 5, u)).toBe(true);
    expect(insidePolygon(40, 5, u)).toBe(false);
  });

  it("selects the points drawn inside the lasso, by their position", () => {
    const xs = [0.1, 0.9, 0.15, 0.5];
    const ys = [0.1, 0.9, 0.2, 0.5];
    const [x0, y0] = toCanvas(0, 0);
    const [x1, y1] = toCanvas(0.3, 0.3);
    const box: [number, number][] = [[x0 - 1, y0 + 1], [x1, y0 + 1], [x1, y1], [x0 - 1, y1]];
    expect(lassoSelect(xs, ys, box)).toEqual([0, 2]);
    expect(lassoSelect(xs, ys, box.slice(0, 2))).toEqual([]); // not a shape yet
  });
});

describe("the map's colours", () => {
  it("gives classes distinct colours and no class grey", () => {
    const colours = Array.from({ length: 30 }, (_, i) => classColour(i));
    expect(new Set(colours).size).toBe(30);
    expect(classColour(-1)).toBe(NONE_COLOUR);
  });

  it("runs uncertainty from blue to red, none grey", () => {
    expect(uncertaintyColour(0)).toBe("hsl(220, 75%, 50%)");
    expect(uncertaintyColour(1)).toBe("hsl(0, 75%, 50%)");
    expect(uncertaintyColour(null)).toBe(NONE_COLOUR);
  });

  it("colours a point by the mode asked for", () => {
    const points = { label: [2], predicted: [5], uncertainty: [null] };
    expect(pointColour("label", 0, points)).toBe(classColour(2));
    expect(pointColour("predicted", 0, points)).toBe(classColour(5));
    expect(pointColour("uncertainty", 0, points)).toBe(NONE_COLOUR);
  });
});
