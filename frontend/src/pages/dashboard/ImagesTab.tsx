// Image browser: thumbnails with filters, and a detail panel (annotations, prediction,
// resolving a disagreement).

import { type FormEvent, useCallback, useEffect, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { useResource } from "../../hooks/useResource";
import {
  api,
  type ApiError,
  asApiError,
  type ImageDetail,
  type ImageRow,
  type Page,
  type Project,
} from "../../lib/api";

type Show = "all" | "unlabeled" | "labeled" | "disputed" | "disagreement" | "uncertain" | "model_disagrees";

const SHOW_OPTIONS: { value: Show; title: string }[] = [
  { value: "all", title: "All images" },
  { value: "unlabeled", title: "Unlabeled (and needing more labels)" },
  { value: "labeled", title: "Labeled" },
  { value: "disputed", title: "Disputed" },
  { value: "disagreement", title: "Annotators disagree" },
  { value: "uncertain", title: "Most uncertain first" },
  { value: "model_disagrees", title: "Model disagrees with the label" },
];

const PAGE = 60; // thumbnails per page

function query(show: Show, predicted: string, label: string): URLSearchParams {
  const params = new URLSearchParams({ page_size: String(PAGE) });
  if (show === "unlabeled") {
    params.append("status", "unlabeled");
    params.append("status", "partial");
  } else if (show === "labeled") {
    params.append("status", "labeled");
  } else if (show === "model_disagrees") {
    // Likely label errors: the active model predicts another class than the consensus,
    // its most confident disagreements first.
    params.append("status", "labeled");
    params.set("model_disagrees", "true");
    params.set("ordering", "-confidence");
  } else if (show === "disputed") {
    params.append("status", "disputed");
  } else if (show === "disagreement") {
    params.set("disagreement", "true");
  } else if (show === "uncertain") {
    // The queue's order is the acquisition score: the most informative images first.
    params.append("status", "unlabeled");
    params.append("status", "partial");
    params.set("ordering", "-priority");
  }
  if (predicted) params.set("predicted", predicted);
  if (label) params.set("label", label);
  return params;
}

export function ImagesTab({ project }: { project: Project }) {
  const [show, setShow] = useState<Show>("all");
  const [predicted, setPredicted] = useState("");
  const [label, setLabel] = useState("");
  const [images, setImages] = useState<ImageRow[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [selected, setSelected] = useState<number | null>(null);

  const fetchPage = useCallback(
    async (url: string, append: boolean) => {
      setLoading(true);
      try {
        const page = await api<Page<ImageRow>>(url);
        setImages((old) => (append ? [...old, ...page.results] : page.results));
        setNext(page.next);
        setError(null);
      } catch (caught) {
        setError(asApiError(caught));
      } finally {
        setLoading(false);
      }
    },
    [],
  );

  useEffect(() => {
    setSelected(null);
    void fetchPage(`/api/projects/${project.id}/images/?${query(show, predicted, label)}`, false);
  }, [project.id, show, predicted, label, fetchPage]);

  return (
    <div className="browser">
      <div className="browser-main">
        <form className="filters" role="search" aria-label="Filter images" onSubmit={(e) => e.preventDefault()}>
          <label>
            Show
            <select value={show} onChange={(e) => setShow(e.target.value as Show)}>
              {SHOW_OPTIONS.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.title}
                </option>
              ))}
            </select>
          </label>
          <label>
            Predicted class
            <select value={predicted} onChange={(e) => setPredicted(e.target.value)}>
              <option value="">any</option>
              {project.labels.map((l) => (
                <option key={l} value={l}>
                  {l}
                </option>
              ))}
            </select>
          </label>
          <label>
            Label
            <select value={label} onChange={(e) => setLabel(e.target.value)}>
              <option value="">any</option>
              {project.labels.map((l) => (
                <option key={l} value={l}>
                  {l}
                </option>
              ))}
            </select>
          </label>
        </form>
        {error && <ErrorNote error={error} />}
        {!loading && images.length === 0 && !error && <p className="muted">No images match.</p>}
        <ul className="thumbs" aria-label="Images" aria-busy={loading}>
          {images.map((img) => (
            <li key={img.id}>
              <button
                type="button"
                className={`thumb${selected === img.id ? " selected" : ""}`}
                onClick={() => setSelected(img.id)}
                aria-pressed={selected === img.id}
                aria-label={`Image ${img.id}, ${img.status}${img.consensus_label ? `, label ${img.consensus_label}` : ""}${img.predicted_label ? `, predicted ${img.predicted_label}` : ""}`}
              >
                <img
                  src={img.file_url}
                  alt=""
                  loading="lazy"
                  className={Math.max(img.width, img.height) < 256 ? "pixelated" : undefined}
                />
                <span className={`thumb-tag status-${img.status}`}>
                  {img.consensus_label ?? img.status}
                </span>
              </button>
            </li>
          ))}
        </ul>
        {next && (
          <button type="button" className="btn" onClick={() => fetchPage(next, true)} disabled={loading}>
            {loading ? "Loading…" : "Load more"}
          </button>
        )}
      </div>
      <aside className="card detail" aria-label="Image details">
        {selected === null ? (
          <p className="muted">Choose an image to see its labels and the model’s prediction.</p>
        ) : (
          <ImageDetailPanel key={selected} imageId={selected} project={project} />
        )}
      </aside>
    </div>
  );
}

function ImageDetailPanel({ imageId, project }: { imageId: number; project: Project }) {
  const detail = useResource<ImageDetail>(`/api/images/${imageId}/`);
  const [resolveTo, setResolveTo] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  if (detail.error) return <ErrorNote error={detail.error} />;
  if (!detail.data) return <p aria-busy="true">Loading…</p>;
  const img = detail.data;

  async function resolve(event: FormEvent) {
    event.preventDefault();
    try {
      await api(`/api/images/${imageId}/resolve/`, { method: "POST", body: { label: resolveTo } });
      setMessage(`Final label set to “${resolveTo}”.`);
      setError(null);
      detail.reload();
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  return (
    <div>
      <h2>Image {img.id}</h2>
      <div className="detail-image">
        <img
          src={img.file_url}
          alt={`Image ${img.id}`}
          className={Math.max(img.width, img.height) < 256 ? "pixelated" : undefined}
        />
      </div>
      <dl className="facts">
        <dt>File</dt>
        <dd title={img.original_name}>{img.original_name}</dd>
        <dt>Size</dt>
        <dd>
          {img.width}×{img.height}px · {img.format} · {(img.size_bytes / 1024).toFixed(1)} KiB
        </dd>
        <dt>Status</dt>
        <dd>{img.status}</dd>
        <dt>Label</dt>
        <dd>
          {img.consensus_label ?? "–"}
          {img.agreement !== null && ` (agreement ${Math.round(img.agreement * 100)}%)`}
        </dd>
        <dt>Predicted</dt>
        <dd>
          {img.predicted_label ?? "no model yet"}
          {img.confidence !== null && ` (confidence ${Math.round(img.confidence * 100)}%)`}
        </dd>
        <dt>Uncertainty</dt>
        <dd>{img.uncertainty !== null ? img.uncertainty.toFixed(3) : "–"}</dd>
      </dl>
      <h3>Annotations</h3>
      {img.annotations.length === 0 ? (
        <p className="muted">None yet.</p>
      ) : (
        <ul className="annotations">
          {img.annotations.map((a) => (
            <li key={a.id}>
              <strong>{a.label}</strong> by {a.annotator}
              {a.source !== "manual" && <span className="muted"> ({a.source})</span>}
              <span className="muted small"> · {new Date(a.created_at).toLocaleString()}</span>
            </li>
          ))}
        </ul>
      )}
      <form className="resolve" onSubmit={resolve}>
        <label htmlFor="resolve-label">Set the final label</label>
        <div className="row">
          <select id="resolve-label" value={resolveTo} onChange={(e) => setResolveTo(e.target.value)} required>
            <option value="">choose…</option>
            {project.labels.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
          <button type="submit" className="btn" disabled={!resolveTo}>
            Resolve
          </button>
        </div>
        {message && <p role="status">{message}</p>}
        {error && <ErrorNote error={error} />}
      </form>
    </div>
  );
}
