import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";

import type { TrainingRun } from "../../lib/api";
import { queuePicker } from "./format";
import { RunProgress } from "./Training";

function run(metrics: Record<string, unknown> | null, status: TrainingRun["status"] = "succeeded"): TrainingRun {
  return {
    id: 7,
    status,
    stage: null,
    progress: 1,
    trigger: "manual",
    lane: "main",
    labels_snapshot: 20,
    metrics,
    error: null,
    created_at: "2026-12-07T21:00:00Z",
    started_at: "2026-12-07T21:00:01Z",
    finished_at: "2026-12-07T21:00:09Z",
    model_version: 2,
  };
}

describe("a finished round says what picks the queue", () => {
  it("says typical images come first while the hand-over rule has TypiClust pick", () => {
    const html = renderToStaticMarkup(createElement(RunProgress, { run: run({ picker: "typical" }) }));
    expect(html).toContain('data-testid="run-picker"');
    expect(html).toContain("typical images first");
    expect(html).toContain("from 3 labels per class");
  });

  it("says nothing more when the project's strategy picked, or for a run from before the rule", () => {
    for (const metrics of [{ picker: "uncertain" }, {}, null]) {
      const html = renderToStaticMarkup(createElement(RunProgress, { run: run(metrics) }));
      expect(html).not.toContain("run-picker");
      expect(html).toContain("A new model version was made from 20 labels.");
    }
  });

  it("says it only once the round has succeeded", () => {
    const html = renderToStaticMarkup(createElement(RunProgress, { run: run({ picker: "typical" }, "failed") }));
    expect(html).not.toContain("typical images first");
    expect(queuePicker({ picker: "typical" })).toMatch(/^The queue now serves typical images first/);
  });
});
