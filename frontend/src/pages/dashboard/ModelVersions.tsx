// The model registry: every version with its metrics and the backbone its head was fitted on
// ("scratch": none), where activating an older one is the rollback; and the recent runs.

import type { ModelVersion, TrainingRun } from "../../lib/api";
import { builtOn } from "./backboneFormat";
import { pct, runKind } from "./format";

function when(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function ModelVersions({
  versions,
  runs,
  activate,
}: {
  versions: ModelVersion[] | null;
  runs: TrainingRun[] | null;
  activate: (version: ModelVersion) => void;
}) {
  return (
    <section className="card span-2" aria-labelledby="versions-title">
      <h2 id="versions-title">Model versions</h2>
      {!versions?.length ? (
        <p className="muted">No model yet.</p>
      ) : (
        <VersionTable versions={versions} activate={activate} />
      )}
      {runs && runs.length > 0 && <RecentRuns runs={runs} />}
    </section>
  );
}

function VersionTable({
  versions,
  activate,
}: {
  versions: ModelVersion[];
  activate: (version: ModelVersion) => void;
}) {
  return (
    <table className="table">
      <thead>
        <tr>
          <th scope="col">Version</th>
          <th scope="col">Trained</th>
          <th scope="col">Built on</th>
          <th scope="col" className="num">Labels</th>
          <th scope="col" className="num">Accuracy</th>
          <th scope="col" className="num">Held out</th>
          <th scope="col" className="num">ECE</th>
          <th scope="col">
            <span className="visually-hidden">Action</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {versions.map((version) => (
          <tr key={version.id}>
            <th scope="row">
              v{version.number} {version.is_active && <span className="badge badge-ok">active</span>}
            </th>
            <td>{when(version.created_at)}</td>
            <td data-backbone={version.backbone?.number ?? ""}>{builtOn(version)}</td>
            <td className="num">{version.labels_used?.toLocaleString() ?? "–"}</td>
            <td className="num">{pct(version.metrics?.accuracy)}</td>
            <td className="num">
              {typeof version.metrics?.n_val === "number" && version.metrics.n_val > 0
                ? version.metrics.n_val.toLocaleString()
                : "–"}
            </td>
            <td className="num">
              {typeof version.metrics?.ece === "number" ? version.metrics.ece.toFixed(3) : "–"}
            </td>
            <td>
              {!version.is_active && (
                <button type="button" className="btn btn-small" onClick={() => activate(version)}>
                  Activate<span className="visually-hidden"> v{version.number}</span>
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RecentRuns({ runs }: { runs: TrainingRun[] }) {
  return (
    <details>
      <summary>Recent runs</summary>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Status</th>
            <th scope="col">Trigger</th>
            <th scope="col">Started</th>
            <th scope="col">Finished</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {runs.slice(0, 10).map((r) => (
            <tr key={r.id}>
              <th scope="row">#{r.id}</th>
              <td>{r.status}</td>
              <td data-trigger={r.trigger ?? ""}>{runKind(r.trigger)}</td>
              <td>{when(r.started_at)}</td>
              <td>{when(r.finished_at)}</td>
              <td>{r.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
