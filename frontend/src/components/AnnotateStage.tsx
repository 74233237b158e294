// The annotator view's image: the one on screen, or why there is none (loading, all done).

import type { ExplanationState } from "../hooks/useExplanation";
import { type Classes, currentName } from "../lib/classChanges";
import type { QueueTask, TaskQueue } from "../lib/taskQueue";
import { ExplanationNote, ExplanationOverlay } from "./ExplanationOverlay";

// Images smaller than this (in pixels, either side) are scaled up with hard pixel edges: a
// 28x28 digit blurred to 500 px is harder to read than its pixels.
const PIXELATED_BELOW = 256;

export function Stage({
  task,
  classes,
  queue,
  suggestions,
  labeledCount,
  pending,
  zoom = 1,
  contrast = false,
  map = null,
}: {
  task: QueueTask | null;
  classes: Classes;
  queue: TaskQueue | null;
  suggestions: boolean;
  labeledCount: number;
  pending: number;
  zoom?: number; // the view's magnification (the image centred, its edges cut)
  contrast?: boolean; // the view's stronger contrast
  map?: ExplanationState | null; // the activation map to lay over the image (key H)
}) {
  if (!queue || !task) return <NoTask queue={queue} labeledCount={labeledCount} pending={pending} />;
  const suggested = task.suggestion ? currentName(task.suggestion, classes) : null;
  const small =
    task.width !== null && Math.max(task.width, task.height ?? 0) < PIXELATED_BELOW;
  return (
    <figure className="stage-figure">
      <div className="stage">
        {task.src ? (
          <img
            src={task.src}
            alt={`Image ${task.image} to label`}
            className={small ? "pixelated" : undefined}
            style={zoom !== 1 || contrast ? { transform: `scale(${zoom})`, filter: contrast ? "contrast(1.8)" : undefined } : undefined}
            data-image-id={task.image}
            draggable={false}
          />
        ) : task.failed ? (
          <p>This image could not be loaded. Press S to skip it.</p>
        ) : (
          <p aria-busy="true">Loading image…</p>
        )}
        {task.src && map && <ExplanationOverlay imageId={task.image} state={map} />}
      </div>
      <figcaption>
        <span>Image {task.image}</span>
        {task.width !== null && (
          <span className="muted">
            {task.width}×{task.height}px
          </span>
        )}
        {task.previousLabel !== null && (
          <span className="badge badge-warn">Changing the label “{task.previousLabel}”</span>
        )}
        {suggestions && suggested && (
          <span className="badge badge-info">
            Model suggests “{suggested}” <kbd>Enter</kbd>
          </span>
        )}
        {map && <ExplanationNote state={map} />}
      </figcaption>
    </figure>
  );
}

/** Why there is no image on screen: still fetching, a failing fetch, or nothing left. */
function NoTask({
  queue,
  labeledCount,
  pending,
}: {
  queue: TaskQueue | null;
  labeledCount: number;
  pending: number;
}) {
  if (!queue || queue.loading) {
    return (
      <div className="stage stage-empty" aria-busy="true">
        <p>Fetching images…</p>
      </div>
    );
  }
  if (!queue.exhausted) {
    return (
      <div className="stage stage-empty" aria-busy="true">
        <p>
          {queue.error
            ? `Cannot fetch images (${queue.error}) Retrying…`
            : "Fetching images…"}
        </p>
      </div>
    );
  }
  return (
    <div className="stage stage-empty" data-testid="all-done">
      <div>
        <h2>All done</h2>
        <p>
          Nothing is left for you to label in this project right now
          {labeledCount > 0 ? ` (you labeled ${labeledCount} this session)` : ""}.
        </p>
        {queue.skipped.size > 0 && <p className="muted">{queue.skipped.size} skipped.</p>}
        {pending > 0 && <p className="muted">{pending} labels are still being sent…</p>}
      </div>
    </div>
  );
}
