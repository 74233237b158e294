// One image in the image browser: its facts, its annotations, the model's prediction (and, on
// demand, its activation map over the image), the images most like it, setting the final label
// where annotators disagree, and (admins) making it a gold question.

import { type FormEvent, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { Options } from "../../components/Options";
import { SimilarImages } from "../../components/SimilarImages";
import { useResource } from "../../hooks/useResource";
import { api, type ApiError, asApiError, type ImageDetail, type Project } from "../../lib/api";
import { DetailImage } from "./DetailImage";

export function ImageDetailPanel({
  imageId,
  project,
  onSelect,
}: {
  imageId: number;
  project: Project;
  onSelect: (id: number) => void; // open another image (a similar one) in the panel
}) {
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
      <h2>
        Image {img.id}
        {img.gold_label && (
          <span className="badge badge-gold" data-testid="gold-badge">
            Gold: {img.gold_label}
          </span>
        )}
      </h2>
      <DetailImage img={img} project={project} />
      <Facts img={img} />
      <MoreLikeThis imageId={img.id} onSelect={onSelect} />
      <h3>Annotations</h3>
      <Annotations annotations={img.annotations} />
      <form className="resolve" onSubmit={resolve}>
        <label htmlFor="resolve-label">Set the final label</label>
        <div className="row">
          <select id="resolve-label" value={resolveTo} onChange={(e) => setResolveTo(e.target.value)} required>
            <option value="">choose…</option>
            <Options values={project.labels} />
          </select>
          <button type="submit" className="btn" disabled={!resolveTo}>
            {img.consensus_label ? "Override the label" : "Label it"}
          </button>
        </div>
        {message && <p role="status">{message}</p>}
        {error && <ErrorNote error={error} />}
      </form>
      {project.role === "admin" && img.gold_label !== undefined && (
        <GoldQuestion img={img} project={project} onChanged={detail.reload} />
      )}
    </div>
  );
}

/** "More like this": the image's nearest neighbours, shown on request (one query each). */
function MoreLikeThis({ imageId, onSelect }: { imageId: number; onSelect: (id: number) => void }) {
  const [open, setOpen] = useState(false);
  return (
    <section aria-label="More like this">
      <button type="button" className="btn" aria-expanded={open} onClick={() => setOpen((o) => !o)}>
        {open ? "Hide similar images" : "More like this"}
      </button>
      {open && <SimilarImages imageId={imageId} onPick={onSelect} />}
    </section>
  );
}

/** Mark the image as a gold question with its known answer, or unmark it (POST/DELETE .../gold/). */
function GoldQuestion({ img, project, onChanged }: { img: ImageDetail; project: Project; onChanged: () => void }) {
  const [answer, setAnswer] = useState(img.gold_label ?? img.consensus_label ?? "");
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  async function call(method: "POST" | "DELETE", done: string) {
    try {
      await api(`/api/images/${img.id}/gold/`, method === "POST" ? { method, body: { label: answer } } : { method });
      setError(null);
      setMessage(done);
      onChanged();
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  function mark(event: FormEvent) {
    event.preventDefault();
    void call("POST", `Marked as a gold question: “${answer}”.`);
  }

  return (
    <form className="resolve gold" onSubmit={mark} aria-labelledby="gold-title">
      <h3 id="gold-title">Gold question</h3>
      <p className="muted small">
        A gold question has a known answer. Annotators get it among their tasks without being told;
        their answers measure their accuracy and never become labels.
      </p>
      <label htmlFor="gold-label">Known answer</label>
      <div className="row">
        <select id="gold-label" value={answer} onChange={(e) => setAnswer(e.target.value)} required>
          <option value="">choose…</option>
          <Options values={project.labels} />
        </select>
        <button type="submit" className="btn" disabled={!answer || answer === img.gold_label}>
          {img.gold_label ? "Change answer" : "Mark as gold"}
        </button>
        {img.gold_label && (
          <button type="button" className="btn btn-quiet" onClick={() => void call("DELETE", "No longer a gold question.")}>
            Unmark gold
          </button>
        )}
      </div>
      {message && <p role="status">{message}</p>}
      {error && <ErrorNote error={error} />}
    </form>
  );
}

function Facts({ img }: { img: ImageDetail }) {
  return (
    <dl className="facts">
      <dt>File</dt>
      <dd title={img.original_name}>
        <bdi>{img.original_name}</bdi>
      </dd>
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
  );
}

function Annotations({ annotations }: { annotations: ImageDetail["annotations"] }) {
  if (annotations.length === 0) return <p className="muted">None yet.</p>;
  return (
    <ul className="annotations">
      {annotations.map((a) => (
        <li key={a.id}>
          <strong>{a.label}</strong> by {a.annotator}
          {a.source !== "manual" && <span className="muted"> ({a.source})</span>}
          <span className="muted small"> · {new Date(a.created_at).toLocaleString()}</span>
        </li>
      ))}
    </ul>
  );
}
