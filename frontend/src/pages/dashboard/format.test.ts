import { describe, expect, it } from "vitest";

import { heldOut, laneName, pct, runKind } from "./format";

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
