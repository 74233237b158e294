// The annotator's grid mode (issue 28): a page of alike images the server picked (or the
// images of a lasso on the map), each starting with the class proposed for the page. Enter
// accepts the page; the labels go to the outbox with view "grid", each with the page's time on
// screen divided by the number of images on it.

import { useMemo, useRef, useState } from "react";
import { Link } from "react-router";

import { ClassChangeNotice } from "../../components/ClassChangeNotice";
import { KeysHelp } from "../../components/KeysHelp";
import { useOutbox, useOutboxVersion } from "../../context/outbox";
import type { Project } from "../../lib/api";
import { classKeys } from "../../lib/hotkeys";
import { ContextStrip, type View } from "./ContextStrip";
import { GridView } from "./GridView";
import { ClassButtons, Counters, DroppedLabels, GridCommands, OutboxNotes } from "./Panel";
import { useClassChange } from "./useClassChange";
import { useDroppedLabels } from "./useDroppedLabels";
import { useGrid } from "./useGrid";
import { useGridKeys } from "./useGridKeys";
import { useSessionCount } from "./useSessionCount";
import { pendingFor } from "./useTaskQueue";

export interface GridAnnotatorProps {
  project: Project;
  reload: () => void;
  ids: readonly number[]; // images asked for by a lasso; empty: the queue's pick
  toSingle: (reason: string | null) => void; // G, or the server serves no grid (its reason)
  idsDone: () => void; // every image asked for is labeled: go on with the queue's pages
}

export function GridAnnotator({ project, reload, ids, toSingle, idsDone }: GridAnnotatorProps) {
  const outbox = useOutbox();
  useOutboxVersion(outbox);
  const [status, setStatus] = useState("");
  const [view, setView] = useState<View>({ zoom: 1, contrast: false });
  const [helpOpen, setHelpOpen] = useState(false);
  const session = useSessionCount(project.id);
  const keys = useMemo(() => classKeys(project.labels), [project.labels]);
  const { classes, change, acknowledge } = useClassChange(project);
  const grid = useGrid({
    project,
    outbox,
    classes,
    ids,
    onNewLabel: session.add,
    onRefused: (reason, message, pagesDone) => {
      if (ids.length > 0 && reason === "nothing_selected" && pagesDone > 0) idsDone();
      else toSingle(message || reason);
    },
  });
  const gridRef = useRef<HTMLDivElement>(null);
  const act = useGridKeys({
    grid,
    labels: project.labels,
    helpOpen,
    setHelpOpen,
    changePending: change !== null,
    keysPaused: change !== null && change.rebound.length > 0,
    dismissChange: () => {
      acknowledge();
      setStatus("");
    },
    setStatus,
    toSingle: () => toSingle(null),
    columns: () => columnsOf(gridRef.current),
  });
  const pending = pendingFor(outbox, project.id);
  const dropped = useDroppedLabels(outbox, project.id, reload);
  const cursorTask = grid.page?.cells[grid.page.cursor]?.task ?? null;

  return (
    <section className="annotate annotate-grid" aria-label={`Label images of ${project.name}, a page at a time`}>
      <div className="annotate-main">
        <header className="annotate-head">
          <h1><bdi>{project.name}</bdi></h1>
          <Link to="/" className="small">All projects</Link>
        </header>
        <ContextStrip project={project} task={cursorTask} view={view} setView={setView} />
        <GridView grid={grid} loading={grid.session?.loading ?? true} sending={grid.session?.sending ?? false} error={grid.session?.error ?? null} gridRef={gridRef} view={view} />
      </div>
      <aside className="annotate-panel" aria-label="Labeling controls">
        {change && <ClassChangeNotice change={change} onDismiss={() => act({ type: "close" })} />}
        <h2 id="classes-title">Classes</h2>
        <ClassButtons keys={keys} was={null} disabled={!grid.page} act={act} />
        <GridCommands act={act} select={grid.select} canAccept={!!grid.page} openHelp={() => setHelpOpen(true)} />
        <Counters session={session} pending={pending} offline={outbox.offline} ready={grid.page?.cells.length ?? 0} />
        <OutboxNotes outbox={outbox} pending={pending} />
        <p className="muted small">
          Check the page: press a class’s key to change the image under the cursor (arrows move
          it; <kbd>Space</kbd> or Shift-click selects several), then <kbd>Enter</kbd> accepts them all.
        </p>
        <p className="status-line" role="status" aria-live="polite">{status}</p>
        <DroppedLabels dropped={dropped} />
      </aside>
      {helpOpen && <KeysHelp keys={keys} suggestions onClose={() => setHelpOpen(false)} />}
    </section>
  );
}

/** Cells per row as the page is drawn (the CSS decides: 6 on a desktop, fewer on a phone). */
function columnsOf(element: HTMLElement | null): number {
  if (!element) return 1;
  const template = getComputedStyle(element).gridTemplateColumns;
  return Math.max(1, template.split(" ").filter((part) => part.trim() !== "").length);
}
