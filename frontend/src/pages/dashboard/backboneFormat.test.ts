import { describe, expect, it } from "vitest";

import type { Backbone } from "../../lib/api";
import {
  backboneLabel,
  builtOn,
  describeBackbone,
  duration,
  lossPoints,
  probeHistory,
  probeText,
} from "./backboneFormat";

function backbone(fields: Partial<Backbone>): Backbone {
  return {
    id: 1,
    number: 1,
    source: "pretrain",
    origin: "",
    arch: "resnet18",
    run: 7,
    width: 16,
    stem: "small",
    input_size: 64,
    embed_dim: 128,
    images_seen: 0,
    metrics: null,
    file_sha256: "ab".repeat(32),
    created_at: "2026-12-07T10:00:00Z",
    current: true,
    ...fields,
  };
}

describe("backbone format", () => {
  it("describes a pretrained backbone by its images, method, epochs and time", () => {
    const b = backbone({
      number: 2,
      images_seen: 8000,
      metrics: { method: "simclr", epochs_run: 30, seconds: 2460, loss_curve: [5, 4] },
    });
    expect(describeBackbone(b)).toBe("#2 · pretrained on 8,000 images · SimCLR · 30 epochs · 41 min");
  });

  it("says when a pretraining stopped at its time budget, and leaves out what it lacks", () => {
    const b = backbone({ images_seen: 16, metrics: { method: "byol", epochs_run: 1, stopped: "budget" } });
    expect(describeBackbone(b)).toBe("#1 · pretrained on 16 images · byol · 1 epoch · stopped at the time budget");
  });

  it("describes imported weights by their file name, even when the origin is a URL", () => {
    const b = backbone({ source: "import", origin: "resnet18-f37072fd.pth", input_size: 224 });
    expect(describeBackbone(b)).toBe("#1 · imported resnet18-f37072fd.pth (resnet18, 224 px)");
    const url = backbone({ source: "import", origin: "https://x.org/w/resnet50-11ad3fa6.pth?dl=1", arch: "resnet50" });
    expect(describeBackbone(url)).toBe("#1 · imported resnet50-11ad3fa6.pth (resnet50, 64 px)");
    expect(describeBackbone(backbone({ source: "import", origin: "" }))).toBe("#1 · imported weights (resnet18, 64 px)");
  });

  it("writes durations in the unit a reader needs", () => {
    expect(duration(42.4)).toBe("42 s");
    expect(duration(2460)).toBe("41 min");
    expect(duration(7200)).toBe("2 h");
    expect(duration(7500)).toBe("2 h 5 min");
  });

  it("writes the probe score with the k-NN interval and the labels it was measured on", () => {
    const probe = {
      n: 118,
      labels: 120,
      knn: { accuracy: 0.62, n: 118, interval: [0.55, 0.68] as [number, number] },
      linear: { accuracy: 0.66, n: 118, interval: [0.58, 0.73] as [number, number] },
      note: null,
    };
    expect(probeText(probe)).toBe("k-NN 62% (55–68%) · linear 66% on 120 labels");
    expect(probeText({ ...probe, labels: undefined, linear: null })).toBe("k-NN 62% (55–68%) on 118 labels");
  });

  it("says why there is no probe score", () => {
    expect(probeText(undefined)).toBe("Not scored on labels.");
    expect(probeText({ n: 0, note: "no labels yet" })).toBe("Not scored: no labels yet.");
    expect(probeText({ n: 0, knn: null, linear: null })).toBe("Not scored: no labels yet.");
  });

  it("draws a loss curve from the highest loss at the top to the lowest at the bottom", () => {
    expect(lossPoints([4, 3, 2], 100, 40)).toBe("0,0 50,20 100,40");
    expect(lossPoints([1, 1], 10, 10)).toBe("0,10 10,10");
    expect(lossPoints([3], 100, 40)).toBe("");
    expect(lossPoints([3, Number.NaN, 1], 100, 40)).toBe("");
  });

  it("names the backbone a model version used, or scratch", () => {
    expect(backboneLabel(null)).toBe("scratch");
    const ref = { id: 9, number: 2, source: "pretrain" as const, arch: "resnet18", origin: "" };
    expect(builtOn({ backbone: null, metrics: { trained: "fine-tuned" } })).toBe("scratch");
    expect(builtOn({ backbone: ref, metrics: { trained: "head on frozen backbone features" } })).toBe(
      "backbone #2",
    );
    expect(builtOn({ backbone: ref, metrics: { trained: "fine-tuned", base_version: 3 } })).toBe(
      "backbone #2, fine-tuned from v3",
    );
    expect(backboneLabel({ id: 9, number: 2, source: "pretrain", arch: "resnet18", origin: "" })).toBe("backbone #2");
  });
});

describe("a probe measured again by the rounds", () => {
  it("says which round measured the probe again, and what it was at registration", () => {
    const probe = {
      n: 32,
      labels: 32,
      knn: { accuracy: 0.5, n: 32, interval: [0.34, 0.66] as [number, number] },
      linear: { accuracy: 0.56, n: 32, interval: [0.39, 0.72] as [number, number] },
    };
    const knn = { accuracy: 0.4, n: 20, interval: [0.22, 0.61] as [number, number] };
    const first = { ...probe, n: 20, labels: 20, knn };
    const measured = { probe, probe_labels: 32, probe_version: 3, probe_at_registration: first };
    expect(probeHistory(measured)).toBe(
      "Measured by the round of v3; at registration: k-NN 40% (22–61%) · linear 56% on 20 labels.",
    );
    const none = { n: 0, note: "no labels yet" };
    expect(probeHistory({ probe, probe_version: 2, probe_at_registration: none })).toBe(
      "Measured by the round of v2; at registration: not scored: no labels yet.",
    );
    expect(probeHistory({ probe, probe_version: 2, probe_at_registration: null })).toBe(
      "Measured by the round of v2; at registration: not scored.",
    );
    expect(probeHistory({ probe })).toBe("");
    expect(probeHistory(null)).toBe("");
  });
});
