// Overview's "Annotator quality" card (admins and reviewers): per annotator, accuracy on gold
// questions with its 95% interval, agreement with consensus, the share of their labels a
// reviewer judged wrong, median time per label, and the reliability weighted consensus gives
// them (GET /api/projects/{id}/annotators/). A gold accuracy below the project's alert
// threshold is flagged in words, not only in colour.

import { ErrorNote } from "../../components/ErrorNote";
import { useResource } from "../../hooks/useResource";
import type { Project } from "../../lib/api";
import type { AnnotatorQuality, AnnotatorQualityReport } from "../../lib/quality";
import { pct } from "./format";
import { isLowAccuracy, ofCount, seconds, withInterval } from "./quality";

export function AnnotatorQualityCard({ project }: { project: Project }) {
  const report = useResource<AnnotatorQualityReport>(`/api/projects/${project.id}/annotators/`, 30_000);
  const threshold = project.gold_alert_accuracy ?? null;
  const missing = report.error?.status === 404 && !report.data; // a server from before it
  return (
    <section className="card span-2" aria-labelledby="quality-title">
      <h2 id="quality-title">Annotator quality</h2>
      {report.error && !missing && !report.data && <ErrorNote error={report.error} />}
      {missing && <p className="muted">Annotator quality is not available on this server yet.</p>}
      {report.data && (
        <>
          <p className="muted small">
            Consensus: {report.data.consensus_method === "weighted" ? "weighted by reliability" : "majority vote"}.
            {threshold !== null && ` Gold accuracy below ${pct(threshold, 0)} is flagged.`} Intervals are 95%.
          </p>
          {report.data.results.length === 0 ? (
            <p className="muted">Nobody has labeled anything yet.</p>
          ) : (
            <div className="table-scroll">
              <QualityTable rows={report.data.results} threshold={threshold} />
            </div>
          )}
        </>
      )}
    </section>
  );
}

function QualityTable({ rows, threshold }: { rows: AnnotatorQuality[]; threshold: number | null }) {
  return (
    <table className="table" data-testid="annotator-quality">
      <thead>
        <tr>
          <th scope="col">Annotator</th>
          <th scope="col" className="num">Labels</th>
          <th scope="col">Gold accuracy</th>
          <th scope="col" className="num">Agrees with consensus</th>
          <th scope="col" className="num">Judged wrong</th>
          <th scope="col" className="num">Median time</th>
          <th scope="col" className="num">Reliability</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => {
          const low = isLowAccuracy(row.gold_accuracy, threshold);
          return (
            <tr key={row.username} className={low ? "row-alert" : undefined}>
              <th scope="row">
                {row.username}
                {row.role && row.role !== "annotator" && <span className="muted small"> ({row.role})</span>}
              </th>
              <td className="num">{row.labels.toLocaleString()}</td>
              <td data-testid="gold-accuracy">
                {row.gold_answered === 0 ? (
                  <span className="muted">no gold answered</span>
                ) : (
                  <>
                    {withInterval(row.gold_accuracy, row.gold_accuracy_low, row.gold_accuracy_high)}
                    <span className="muted small"> · {ofCount(row.gold_correct, row.gold_answered)}</span>
                    {low && <strong className="alert-text"> · Low: below {pct(threshold, 0)}</strong>}
                  </>
                )}
              </td>
              <td className="num">
                {row.agreement === null ? "–" : `${pct(row.agreement, 0)}`}
                {row.agreement_n ? <span className="muted small"> of {row.agreement_n}</span> : null}
              </td>
              <td className="num">
                {row.judged_wrong_share === null ? "–" : pct(row.judged_wrong_share, 1)}
                {row.judged_wrong ? <span className="muted small"> ({row.judged_wrong})</span> : null}
              </td>
              <td className="num">{seconds(row.median_seconds)}</td>
              <td className="num">{row.reliability === null ? "–" : row.reliability.toFixed(2)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
