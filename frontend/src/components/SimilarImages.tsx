// "More like this": an image's nearest neighbours by embedding (GET /api/images/{id}/similar/),
// with their labels and the model's predictions. In the image browser a neighbour opens in
// the detail panel (onPick); in the annotator they are shown only.

import { useEffect, useRef } from "react";

import { useResource } from "../hooks/useResource";
import type { ImageRow } from "../lib/api";
import { ErrorNote } from "./ErrorNote";

/** GET /api/images/{id}/similar/: the image's nearest neighbours by embedding. */
export interface SimilarAnswer {
  image: number;
  k: number;
  method: "hnsw" | "exact";
  source: { kind: "backbone" | "model"; number: number };
  results: (ImageRow & { distance: number })[];
}

export const SIMILAR_K = 12;

export function SimilarImages({ imageId, onPick }: { imageId: number; onPick?: (id: number) => void }) {
  const answer = useResource<SimilarAnswer>(`/api/images/${imageId}/similar/?k=${SIMILAR_K}`);
  if (answer.error) return <ErrorNote error={answer.error} />;
  if (!answer.data) return <p aria-busy="true">Finding similar images…</p>;
  const { results, source } = answer.data;
  if (results.length === 0) return <p className="muted">No other image has an embedding yet.</p>;
  return (
    <>
      <p className="muted small">
        Nearest first, by the {source.kind === "backbone" ? "backbone" : "model"} {source.number}’s
        features.
      </p>
      <ul className="thumbs similar" aria-label={`Images like image ${imageId}`}>
        {results.map((img) => {
          const label = img.consensus_label ?? img.status;
          const predicted = img.predicted_label
            ? `predicted ${img.predicted_label}${img.confidence !== null ? ` (${Math.round(img.confidence * 100)}%)` : ""}`
            : "no prediction";
          const name = `Image ${img.id}, ${label}, ${predicted}, distance ${img.distance.toFixed(3)}`;
          const body = (
            <>
              <img src={img.file_url} alt="" loading="lazy" className="pixelated" />
              <span className={`thumb-tag status-${img.status}`}>{label}</span>
              <span className="thumb-pred" aria-hidden="true">
                {img.predicted_label ?? "–"}
              </span>
            </>
          );
          return (
            <li key={img.id} title={name}>
              {onPick ? (
                <button type="button" className="thumb" aria-label={name} onClick={() => onPick(img.id)}>
                  {body}
                </button>
              ) : (
                <div className="thumb" role="img" aria-label={name}>
                  {body}
                </div>
              )}
            </li>
          );
        })}
      </ul>
    </>
  );
}

/** The annotator's "more like this" (key M): a modal dialog over the image being labeled. */
export function SimilarDialog({ imageId, onClose }: { imageId: number; onClose: () => void }) {
  const closeButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    closeButton.current?.focus();
    return () => before?.focus?.();
  }, []);
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div
        className="modal similar-modal"
        role="dialog"
        aria-modal="true"
        aria-labelledby="similar-title"
        onClick={(event) => event.stopPropagation()}
      >
        <h2 id="similar-title">More like this</h2>
        <SimilarImages imageId={imageId} />
        <button ref={closeButton} type="button" className="btn btn-primary" onClick={onClose}>
          Close <kbd aria-hidden="true">Esc</kbd>
        </button>
      </div>
    </div>
  );
}
