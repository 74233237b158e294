// The activation map over an image: a transparent PNG stacked on the same grid cell as the
// image, fitted the same way (object-fit: contain), so it lies exactly on the picture.

import type { ExplanationState } from "../hooks/useExplanation";

export function ExplanationOverlay({
  imageId,
  state,
}: {
  imageId: number;
  state: ExplanationState;
}) {
  if (!state.explanation) return null;
  return (
    <img
      src={state.explanation.src}
      alt=""
      aria-hidden="true"
      className="cam-overlay"
      data-testid="cam-overlay"
      data-image-id={imageId}
      draggable={false}
    />
  );
}

/** One line on what the overlay shows (or why it does not yet). */
export function ExplanationNote({ state }: { state: ExplanationState }) {
  if (state.loading) return <span className="badge badge-info">Drawing the map…</span>;
  if (state.error) return <span className="badge badge-error">Map: {state.error}</span>;
  const shown = state.explanation;
  if (!shown) return null;
  return (
    <span className="badge badge-info" data-testid="cam-note">
      Map of “{shown.label}” ({Math.round(shown.probability * 100)}%, v{shown.version})
    </span>
  );
}
