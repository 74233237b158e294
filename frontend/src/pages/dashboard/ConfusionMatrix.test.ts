import { describe, expect, it } from "vitest";

import { cellColors, contrast } from "./ConfusionMatrix";

describe("confusion matrix shades", () => {
  it("keeps every cell's text at 4.5:1 or more against its shade, diagonal or not", () => {
    for (const diagonal of [true, false]) {
      for (let step = 0; step <= 100; step++) {
        const { background, text } = cellColors(step / 100, diagonal);
        expect(contrast(background, text)).toBeGreaterThanOrEqual(4.5);
      }
    }
  });

  it("measures contrast as WCAG does", () => {
    expect(contrast([255, 255, 255], [0, 0, 0])).toBeCloseTo(21, 5);
    expect(contrast([255, 255, 255], [255, 255, 255])).toBe(1);
  });

  it("was below 4.5:1 before: white on the diagonal's shade at 60%", () => {
    const { background } = cellColors(0.6, true);
    expect(contrast(background, [255, 255, 255])).toBeLessThan(4.5);
  });
});
