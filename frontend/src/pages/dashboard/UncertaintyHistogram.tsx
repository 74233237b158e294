// How uncertain the model is about the unlabeled images: a histogram of their scores.

import { Bar } from "react-chartjs-2";

import { COLORS } from "../../lib/charts";

interface Bin {
  label: string;
  count: number;
}

/** The histogram in any of the shapes a stats endpoint may reasonably send. */
export function histogramBins(raw: unknown): Bin[] {
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  if (Array.isArray(raw)) {
    return raw.map((item, i) => {
      if (typeof item === "number") return { label: String(i), count: item };
      const bin = item as Record<string, number>;
      const lo = bin.from ?? bin.lo ?? bin.start ?? bin.bin_start ?? bin.left ?? bin.min;
      const hi = bin.to ?? bin.hi ?? bin.end ?? bin.bin_end ?? bin.right ?? bin.max;
      const label = lo !== undefined && hi !== undefined ? `${fmt(lo)}–${fmt(hi)}` : String(i);
      return { label, count: bin.images ?? bin.count ?? bin.n ?? 0 };
    });
  }
  if (raw && typeof raw === "object") {
    const body = raw as Record<string, number[] | undefined>;
    const counts = body.counts;
    const edges = body.edges ?? body.bin_edges ?? body.bins;
    if (Array.isArray(counts)) {
      return counts.map((count, i) => ({
        label: edges && edges.length === counts.length + 1 ? `${fmt(edges[i])}–${fmt(edges[i + 1])}` : String(i),
        count,
      }));
    }
  }
  return [];
}

export function UncertaintyHistogram({ raw }: { raw: unknown }) {
  const bins = histogramBins(raw);
  if (bins.length === 0 || bins.every((b) => b.count === 0)) {
    return <p className="muted">No model yet: images are scored after the first training run.</p>;
  }
  return (
    <div className="chart">
      <Bar
        role="img"
        aria-label={`Uncertainty histogram: ${bins.map((b) => `${b.label}: ${b.count}`).join(", ")}`}
        data={{
          labels: bins.map((b) => b.label),
          datasets: [{ label: "Unlabeled images", data: bins.map((b) => b.count), backgroundColor: COLORS.orange }],
        }}
        options={{
          plugins: { legend: { display: false } },
          scales: {
            x: { title: { display: true, text: "uncertainty" } },
            y: { beginAtZero: true, ticks: { precision: 0 } },
          },
        }}
      />
    </div>
  );
}
