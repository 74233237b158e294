import { Bar, Doughnut } from "react-chartjs-2";

import { ErrorNote } from "../../components/ErrorNote";
import { useResource } from "../../hooks/useResource";
import { canReview, type Project, type Stats } from "../../lib/api";
import { COLORS, STATUS_COLORS } from "../../lib/charts";
import { AnnotatorQualityCard } from "./AnnotatorQuality";

const STATUS_ORDER = ["unlabeled", "partial", "disputed", "labeled"] as const;

function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

export function OverviewTab({ project }: { project: Project }) {
  const stats = useResource<Stats>(`/api/projects/${project.id}/stats/`, 15_000);
  if (stats.error && !stats.data) return <ErrorNote error={stats.error} />;
  if (!stats.data) return <p aria-busy="true">Loading statistics…</p>;
  const s = stats.data;
  return (
    <div className="grid-2">
      <StatusCard s={s} oneLabelEach={project.annotations_per_image === 1} />
      <ClassBalance s={s} classes={project.labels} />
      <Annotators s={s} />
      <Agreement s={s} classes={project.labels} oneLabelEach={project.annotations_per_image === 1} />
      {canReview(project.role) && <AnnotatorQualityCard project={project} />}
    </div>
  );
}

function StatusCard({ s, oneLabelEach }: { s: Stats; oneLabelEach: boolean }) {
  const byStatus = s.images.by_status;
  // With one label per image no image is ever partial or disputed: the legend leaves them out.
  const statuses = STATUS_ORDER.filter(
    (k) => !oneLabelEach || k === "unlabeled" || k === "labeled" || (byStatus[k] ?? 0) > 0,
  );
  const labeled = byStatus.labeled ?? 0;
  return (
    <section className="card" aria-labelledby="status-title">
      <h2 id="status-title">Images by status</h2>
      <dl className="stat-row">
        <div>
          <dt>Images</dt>
          <dd>{s.images.total.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Labeled</dt>
          <dd>
            {labeled.toLocaleString()}{" "}
            <span className="muted small">({percent(s.images.total ? labeled / s.images.total : null)})</span>
          </dd>
        </div>
        <div>
          <dt>Annotations</dt>
          <dd>{s.annotations.total.toLocaleString()}</dd>
        </div>
      </dl>
      <div className="chart chart-small">
        <Doughnut
          aria-label={`Images by status: ${statuses.map((k) => `${k} ${byStatus[k] ?? 0}`).join(", ")}`}
          role="img"
          data={{
            labels: [...statuses],
            datasets: [
              {
                data: statuses.map((k) => byStatus[k] ?? 0),
                backgroundColor: statuses.map((k) => STATUS_COLORS[k]),
              },
            ],
          }}
          options={{ plugins: { legend: { position: "right" } } }}
        />
      </div>
    </section>
  );
}

function ClassBalance({ s, classes }: { s: Stats; classes: string[] }) {
  return (
    <section className="card" aria-labelledby="balance-title">
      <h2 id="balance-title">Class balance</h2>
      <p className="muted small">Consensus labels per class.</p>
      <div className="chart">
        <Bar
          aria-label={`Class balance: ${classes.map((c) => `${c} ${s.class_balance[c] ?? 0}`).join(", ")}`}
          role="img"
          data={{
            labels: classes,
            datasets: [
              {
                label: "Labeled images",
                data: classes.map((c) => s.class_balance[c] ?? 0),
                backgroundColor: COLORS.blue,
              },
            ],
          }}
          options={{ plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }}
        />
      </div>
    </section>
  );
}

function Annotators({ s }: { s: Stats }) {
  return (
    <section className="card" aria-labelledby="annotators-title">
      <h2 id="annotators-title">Annotators</h2>
      {s.annotators.length === 0 ? (
        <p className="muted">Nobody has labeled anything yet.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Annotator</th>
              <th scope="col" className="num">Labels</th>
              <th scope="col" className="num">Last hour</th>
              <th scope="col" className="num">Last 24 h</th>
              <th scope="col" className="num">Agrees with consensus</th>
            </tr>
          </thead>
          <tbody>
            {s.annotators.map((row) => {
              const agreement = s.agreement.per_annotator[row.username];
              return (
                <tr key={row.username}>
                  <th scope="row">{row.username}</th>
                  <td className="num">{row.annotations.toLocaleString()}</td>
                  <td className="num">{row.last_hour.toLocaleString()}</td>
                  <td className="num">{row.last_24h.toLocaleString()}</td>
                  <td className="num">
                    {agreement ? `${percent(agreement.agreement)} of ${agreement.labels_with_consensus}` : "–"}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Agreement({ s, classes, oneLabelEach }: { s: Stats; classes: string[]; oneLabelEach: boolean }) {
  if (oneLabelEach) {
    // One label per image agrees with itself: a chart of 100% bars would say nothing.
    return (
      <section className="card" aria-labelledby="agreement-title">
        <h2 id="agreement-title">Agreement per class</h2>
        <p className="muted" data-testid="agreement-none">
          Each image gets one label in this project, so there is no agreement to measure. Ask for
          two or more labels per image (Settings) to see where annotators disagree.
        </p>
      </section>
    );
  }
  return (
    <section className="card" aria-labelledby="agreement-title">
      <h2 id="agreement-title">Agreement per class</h2>
      <p className="muted small">Mean share of annotators who gave the consensus label.</p>
      <div className="chart">
        <Bar
          aria-label={`Agreement per class: ${classes.map((c) => `${c} ${percent(s.agreement.per_class[c])}`).join(", ")}`}
          role="img"
          data={{
            labels: classes,
            datasets: [
              {
                label: "Mean agreement",
                data: classes.map((c) => s.agreement.per_class[c] ?? null),
                backgroundColor: COLORS.green,
              },
            ],
          }}
          options={{
            plugins: { legend: { display: false } },
            scales: { y: { min: 0, max: 1, ticks: { callback: (v) => `${Math.round(Number(v) * 100)}%` } } },
          }}
        />
      </div>
    </section>
  );
}
