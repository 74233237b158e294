// The learning curve: accuracy against labels for every model version, with each accuracy's
// 95% interval as a band and the unbiased random-slice estimate where there is one.

import type { ChartDataset, ChartOptions } from "chart.js";
import { Line } from "react-chartjs-2";

import type { LearningPoint } from "../../lib/api";
import { COLORS } from "../../lib/charts";
import { heldOut, pct } from "./format";

type Interval = "bar" | "band" | "none"; // how the 95% intervals are drawn
type Dataset = ChartDataset<"line", { x: number; y: number | null }[]>;

function intervalDatasets(curve: LearningPoint[], interval: Interval): Dataset[] {
  const only = interval === "bar" ? curve[0].accuracy_interval : null;
  if (only) {
    return [
      {
        label: "95% interval",
        data: only.map((y) => ({ x: curve[0].labels, y })),
        borderColor: COLORS.blueSoft,
        borderWidth: 8,
        pointRadius: 0,
      },
    ];
  }
  if (interval !== "band") return [];
  // The 95% interval of each accuracy, a band: wide while few labels are held out.
  return [
    {
      label: "95% interval",
      data: curve.map((p) => ({ x: p.labels, y: p.accuracy_interval?.[1] ?? null })),
      borderColor: "transparent",
      backgroundColor: COLORS.blueSoft,
      pointRadius: 0,
      fill: "+1",
    },
    {
      label: "",
      data: curve.map((p) => ({ x: p.labels, y: p.accuracy_interval?.[0] ?? null })),
      borderColor: "transparent",
      backgroundColor: COLORS.blueSoft,
      pointRadius: 0,
      fill: false,
    },
  ];
}

function curveDatasets(curve: LearningPoint[], interval: Interval, hasRandomSlice: boolean): Dataset[] {
  return [
    ...intervalDatasets(curve, interval),
    {
      label: "Accuracy on held-out labels",
      data: curve.map((p) => ({ x: p.labels, y: p.accuracy })),
      borderColor: COLORS.blue,
      backgroundColor: COLORS.blue,
    },
    ...(hasRandomSlice
      ? [
          {
            label: "Random-slice estimate (unbiased)",
            data: curve.map((p) => ({ x: p.labels, y: p.random_slice_accuracy ?? null })),
            borderColor: COLORS.orange,
            backgroundColor: COLORS.orange,
            borderDash: [6, 4],
          },
        ]
      : []),
  ];
}

function curveOptions(curve: LearningPoint[]): ChartOptions<"line"> {
  return {
    parsing: false,
    plugins: {
      legend: { labels: { filter: (item) => item.text !== "" } },
      tooltip: {
        filter: (item) => item.dataset.label !== "" && item.dataset.label !== "95% interval",
        callbacks: {
          afterLabel: (item) => {
            const point = curve[item.dataIndex];
            return item.dataset.label === "Accuracy on held-out labels" && point
              ? heldOut(point.val_images, point.accuracy_interval)
              : "";
          },
        },
      },
    },
    scales: {
      x: { type: "linear", min: 0, grace: "5%", title: { display: true, text: "labels" } },
      y: {
        min: 0,
        max: 1,
        title: { display: true, text: "accuracy" },
        ticks: { callback: (v) => `${Math.round(Number(v) * 100)}%` },
      },
    },
  };
}

export function LearningCurve({ curve }: { curve: LearningPoint[] }) {
  const hasRandomSlice = curve.some((p) => typeof p.random_slice_accuracy === "number");
  const hasInterval = curve.some((p) => p.accuracy_interval);
  // One point makes no band: its interval is drawn as a bar through it instead.
  const only = curve.length === 1 ? curve[0].accuracy_interval : null;
  const interval: Interval = only ? "bar" : hasInterval ? "band" : "none";
  return (
    <section className="card" aria-labelledby="curve-title">
      <h2 id="curve-title">Learning curve</h2>
      {curve.length === 0 ? (
        <p className="muted" data-testid="curve-empty">
          No model yet: the curve starts with the first trained model.
        </p>
      ) : (
        <div
          className="chart"
          data-testid="learning-curve"
          data-points={curve.length}
          data-interval={interval}
        >
          <Line
            role="img"
            aria-label={`Learning curve, ${curve.length} points: ${curve
              .map((p) => `${p.labels} labels ${pct(p.accuracy)}`)
              .join(", ")}`}
            data={{ datasets: curveDatasets(curve, interval, hasRandomSlice) }}
            options={curveOptions(curve)}
          />
        </div>
      )}
      {curve.length > 0 && !hasRandomSlice && (
        <p className="muted small">
          The random-slice estimate appears once enough labels come from the random exploration
          slice to evaluate on them alone; until then accuracy is measured on a held-out split
          of the labels, which active learning biases toward hard images.
        </p>
      )}
    </section>
  );
}
