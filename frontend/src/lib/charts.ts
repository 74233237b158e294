// Chart.js, registered once with only the pieces the dashboard draws (keeps the bundle small).

import {
  ArcElement,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(
  ArcElement,
  BarElement,
  CategoryScale,
  Filler,
  Legend,
  LinearScale,
  LineElement,
  PointElement,
  Tooltip,
);
Chart.defaults.font.family =
  'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
// Text and grid lines follow the theme (the page's dark theme follows the system setting).
const dark = typeof window !== "undefined" && window.matchMedia?.("(prefers-color-scheme: dark)").matches;
Chart.defaults.color = dark ? "#cbd5e1" : "#334155";
Chart.defaults.borderColor = dark ? "rgba(203, 213, 225, 0.18)" : "rgba(0, 0, 0, 0.1)";
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.animation = false; // dashboards refresh often; motion only distracts

export const COLORS = {
  blue: "#1d4ed8",
  blueSoft: "rgba(29, 78, 216, 0.15)",
  orange: "#c2410c",
  green: "#15803d",
  grey: "#94a3b8",
  amber: "#b45309",
  red: "#b91c1c",
};

export const STATUS_COLORS: Record<string, string> = {
  unlabeled: COLORS.grey,
  partial: COLORS.amber,
  disputed: COLORS.red,
  labeled: COLORS.green,
};
