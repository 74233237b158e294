// The annotator's context: how far the project is, how many labels until the model's next
// round, which model suggests (if any), the file on screen, and view controls (zoom,
// contrast) that change how the image shows, never the image.

import { useResource } from "../../hooks/useResource";
import type { Project, Stats, Task } from "../../lib/api";

const STATS_REFRESH_MS = 30_000; // the strip's figures are re-read this often

export interface View {
  zoom: number; // 1, 2 or 4
  contrast: boolean; // stronger contrast (CSS filter), for faint images
}

export const ZOOMS = [1, 2, 4];

export function ContextStrip({
  project,
  task,
  view,
  setView,
}: {
  project: Project;
  task: Pick<Task, "name"> | null; // the image on screen (in the grid: under the cursor)
  view: View;
  setView: (view: View) => void;
}) {
  const stats = useResource<Stats>(`/api/projects/${project.id}/stats/`, STATS_REFRESH_MS).data;
  const total = stats?.images.total ?? project.image_count;
  const labeled = stats?.images.by_status?.labeled ?? 0;
  const percent = total > 0 ? Math.round((100 * labeled) / total) : 0;
  const next = stats?.next_round;
  const model = stats?.active_model;
  return (
    <div className="context-strip" role="group" aria-label="Project context" data-testid="context-strip">
      <span className="context-item" data-testid="context-progress">
        <progress max={100} value={percent} aria-hidden="true" />
        {labeled.toLocaleString()} of {total.toLocaleString()} labeled ({percent}%)
      </span>
      {next && (
        <span className="context-item" data-testid="context-next-round">
          next model round in {next.labels_until.toLocaleString()} label{next.labels_until === 1 ? "" : "s"}
        </span>
      )}
      <span className="context-item" data-testid="context-model">
        {model ? `model v${model.version}` : "no model yet"}
      </span>
      {task?.name && (
        <span className="context-item context-file" data-testid="context-file" title={task.name}>
          <bdi>{task.name}</bdi>
        </span>
      )}
      <span className="context-item view-controls">
        <button
          type="button"
          className="btn btn-small"
          onMouseDown={(e) => e.preventDefault()}
          onClick={() => setView({ ...view, zoom: ZOOMS[(ZOOMS.indexOf(view.zoom) + 1) % ZOOMS.length] })}
          aria-label={`Zoom: ${view.zoom}×, change`}
        >
          Zoom {view.zoom}×
        </button>
        <button
          type="button"
          className="btn btn-small"
          onMouseDown={(e) => e.preventDefault()}
          onClick={() => setView({ ...view, contrast: !view.contrast })}
          aria-pressed={view.contrast}
        >
          Contrast
        </button>
      </span>
    </div>
  );
}
