import { describe, expect, it } from "vitest";

import { accuracyRange, heldOut, laneName, pct, runKind, wilson } from "./format";

describe("format", () => {
  it("writes an accuracy as a percentage, and a missing one as a dash", () => {
    expect(pct(0.9123)).toBe("91.2%");
    expect(pct(null)).toBe("–");
  });

  it("says how many held-out labels an accuracy was measured on, with its interval", () => {
    expect(heldOut(1, null)).toBe("on 1 held-out label");
    expect(heldOut(10, [0.6, 0.98])).toBe("on 10 held-out labels (95% interval 60%–98%)");
    expect(heldOut(0)).toBe("on held-out labels");
  });

  it("leads with the interval: 2 of 2 right is anywhere from 34% to 100%", () => {
    const [low, high] = wilson(1, 2);
    expect(low).toBeCloseTo(0.342, 3);
    expect(high).toBe(1);
    expect(accuracyRange(1, 2)).toBe("34–100%");
    expect(accuracyRange(0.9, 100, [0.83, 0.95])).toBe("83–95%");
    expect(accuracyRange(0.9, 0)).toBeNull();
    expect(accuracyRange(null, 10)).toBeNull();
  });

  it("names each kind of run in words", () => {
    expect(runKind("new_images")).toBe("scoring new images");
    expect(runKind("cold_start")).toBe("cold-start ordering");
    expect(runKind("label_check")).toBe("label check (suspect labels)");
    expect(runKind("fine_tune")).toBe("fine-tune (every layer, after the head fit)");
    expect(runKind("manual")).toBe("retrain, requested");
    expect(runKind("something_new")).toBe("something_new");
    expect(runKind(null)).toBe("–");
    expect(runKind("pretrain")).toBe("backbone pretraining");
    expect(runKind("backbone_import")).toBe("backbone import");
  });

  it("tells a backbone run from a round by its lane", () => {
    expect(laneName("background")).toBe("Backbone run");
    expect(laneName("main")).toBe("Round");
    expect(laneName(undefined)).toBe("Round");
  });
});
