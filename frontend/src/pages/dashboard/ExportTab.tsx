// Export: the project's labels (and predictions) as a streamed file — the same
// GET /api/projects/{id}/export/ that scripts call, as a download link.

import { useState } from "react";

import type { Project } from "../../lib/api";

const FORMATS = [
  { value: "csv", title: "CSV", help: "one row per image: label, agreement, prediction, quality" },
  { value: "json", title: "JSON", help: "every image with its annotations, consensus and prediction" },
  { value: "imagefolder", title: "Image folders (zip)", help: "a folder per class with its labeled images" },
] as const;

export function exportUrl(projectId: number, format: string, labeledOnly: boolean, predictions: boolean) {
  const params = new URLSearchParams({ format });
  if (labeledOnly) params.set("labeled", "true");
  if (!predictions && format !== "imagefolder") params.set("predictions", "false");
  return `/api/projects/${projectId}/export/?${params}`;
}

export function ExportTab({ project }: { project: Project }) {
  const [format, setFormat] = useState<string>("csv");
  const [labeledOnly, setLabeledOnly] = useState(false);
  const [predictions, setPredictions] = useState(true);
  const url = exportUrl(project.id, format, labeledOnly, predictions);
  return (
    <section className="card export" aria-labelledby="export-title">
      <h2 id="export-title">Export labels</h2>
      <fieldset className="choices">
        <legend>Format</legend>
        {FORMATS.map((f) => (
          <label key={f.value} className="checkbox">
            <input
              type="radio"
              name="export-format"
              value={f.value}
              checked={format === f.value}
              onChange={() => setFormat(f.value)}
            />
            <span>
              <strong>{f.title}</strong> <span className="muted small">{f.help}</span>
            </span>
          </label>
        ))}
      </fieldset>
      <label className="checkbox">
        <input type="checkbox" checked={labeledOnly} onChange={(e) => setLabeledOnly(e.target.checked)} />
        Only images with a consensus label
      </label>
      {format !== "imagefolder" && (
        <label className="checkbox">
          <input type="checkbox" checked={predictions} onChange={(e) => setPredictions(e.target.checked)} />
          Include the active model’s predictions
        </label>
      )}
      <p>
        <a className="btn btn-primary" href={url} download data-testid="export-link">
          Download {FORMATS.find((f) => f.value === format)?.title}
        </a>
      </p>
      <p className="muted small">
        A snapshot of the project when the download starts, streamed: large projects are fine.
        Scripts get the same file from <code className="user-text">{url}</code>.
      </p>
    </section>
  );
}
