// The annotator view: one image, large; a key per class. Everything a keypress does is local
// (the label goes to the outbox, the next image is already decoded), so the next image shows
// at once; the network catches up in the background.

import { useEffect, useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";

import { Stage } from "../../components/AnnotateStage";
import { ClassChangeNotice } from "../../components/ClassChangeNotice";
import { ErrorNote } from "../../components/ErrorNote";
import { KeysHelp } from "../../components/KeysHelp";
import { SimilarDialog } from "../../components/SimilarImages";
import { useOutbox, useOutboxVersion } from "../../context/outbox";
import { useProject } from "../../hooks/useResource";
import { useTitle } from "../../hooks/useTitle";
import { canLabel, type Project } from "../../lib/api";
import { currentName } from "../../lib/classChanges";
import { classKeys } from "../../lib/hotkeys";
import { parseIds } from "../../lib/grid";
import { ContextStrip, type View } from "./ContextStrip";
import { GridAnnotator } from "./GridAnnotate";
import { useGridOffer } from "./useGridOffer";
import { ClassButtons, Commands, Counters, DroppedLabels, KeysTip, OutboxNotes } from "./Panel";
import { useAnnotatorKeys } from "./useAnnotatorKeys";
import { useDroppedLabels } from "./useDroppedLabels";
import { useClassChange } from "./useClassChange";
import { useSessionCount } from "./useSessionCount";
import { useAnnotatorMap } from "./useAnnotatorMap";
import { pendingFor, useTaskQueue } from "./useTaskQueue";

// The project (its classes) is re-read this often, and whenever the tab gets the focus back,
// so an admin's rename or new class reaches an annotator who keeps the page open all day.
const PROJECT_REFRESH_MS = 30_000;

export function Annotate() {
  const { projectId } = useParams();
  const project = useProject(projectId, PROJECT_REFRESH_MS);
  const { reload } = project;
  useTitle(project.data ? `Label · ${project.data.name}` : "Label");
  useEffect(() => {
    window.addEventListener("focus", reload);
    return () => window.removeEventListener("focus", reload);
  }, [reload]);
  // A failed re-read (offline, a server error) keeps the page as it is: labels go on into
  // the outbox. One that says the project is gone, or no longer this user's, ends the page.
  const status = project.error?.status;
  if (!project.data || status === 401 || status === 403 || status === 404) {
    if (project.error) return <ErrorNote error={project.error} page />;
    return <p className="page-loading">Loading…</p>;
  }
  if (!canLabel(project.data.role)) {
    return (
      <section className="page narrow">
        <h1>{project.data.name}</h1>
        <p>Your role in this project ({project.data.role}) cannot label images.</p>
      </section>
    );
  }
  return <Modes key={project.data.id} project={project.data} reload={reload} />;
}

/** One image at a time, or a page of them (`?mode=grid`, with `&ids=` from a lasso). */
function Modes({ project, reload }: { project: Project; reload: () => void }) {
  const [params, setParams] = useSearchParams();
  const [note, setNote] = useState(""); // why the grid gave way to the single view
  const ids = parseIds(params.get("ids"));
  if (params.get("mode") === "grid") {
    return (
      <GridAnnotator
        key={ids.join(",")}
        project={project}
        reload={reload}
        ids={ids}
        toSingle={(reason) => {
          setNote(reason ? `No grid now: ${reason} Press G to ask again.` : "");
          setParams({}, { replace: reason !== null }); // a refusal: Back skips the grid
        }}
        idsDone={() => {
          setNote("");
          setParams({ mode: "grid" });
        }}
      />
    );
  }
  const toGrid = () => {
    setNote("");
    setParams({ mode: "grid" });
  };
  return <Annotator project={project} reload={reload} note={note} toGrid={toGrid} />;
}

interface AnnotatorProps {
  project: Project;
  reload: () => void;
  note: string; // the first status line (why there is no grid)
  toGrid: () => void;
}

function Annotator({ project, reload, note, toGrid }: AnnotatorProps) {
  const outbox = useOutbox();
  useOutboxVersion(outbox);
  const [status, setStatus] = useState(note);
  const [view, setView] = useState<View>({ zoom: 1, contrast: false });
  const session = useSessionCount(project.id);
  const keys = useMemo(() => classKeys(project.labels), [project.labels]);
  const suggestions = project.show_suggestions === true;
  const { classes, change, acknowledge } = useClassChange(project);
  const dismissChange = () => {
    acknowledge();
    setStatus("");
  };
  const tasks = useTaskQueue(project, outbox, session.add);
  useGridOffer(project.id, suggestions, session.count, setStatus);
  const map = useAnnotatorMap(tasks.current?.image ?? null, suggestions);
  const { act, helpOpen, setHelpOpen, similarOf, setSimilarOf } = useAnnotatorKeys({
    tasks,
    labels: project.labels,
    classes,
    suggestions,
    change,
    dismissChange,
    setStatus,
    toggleMap: map.toggle,
    toGrid,
  });
  const pending = pendingFor(outbox, project.id);
  const dropped = useDroppedLabels(outbox, project.id, reload);
  const { current } = tasks;
  const was = current?.previousLabel ? currentName(current.previousLabel, classes) : null;
  const suggestedNow = current?.suggestion ? currentName(current.suggestion, classes) : null;

  return (
    <section className="annotate" aria-label={`Label images of ${project.name}`}>
      <div className="annotate-main">
        <header className="annotate-head">
          <h1><bdi>{project.name}</bdi></h1>
          <Link to="/" className="small">All projects</Link>
        </header>
        <ContextStrip project={project} task={current} view={view} setView={setView} />
        <Stage
          task={current}
          classes={classes}
          queue={tasks.queue}
          suggestions={suggestions}
          labeledCount={session.count}
          pending={pending}
          zoom={view.zoom} contrast={view.contrast}
          map={map.on ? map.state : null}
        />
      </div>

      <aside className="annotate-panel" aria-label="Labeling controls">
        {change && <ClassChangeNotice change={change} onDismiss={dismissChange} />}
        <h2 id="classes-title">Classes</h2>
        <ClassButtons keys={keys} was={was} disabled={!current?.src} act={act} />
        <Commands
          suggestions={suggestions}
          canAccept={!!suggestedNow}
          current={current}
          act={act}
          openHelp={() => setHelpOpen(true)}
        />
        <Counters session={session} pending={pending} offline={outbox.offline} ready={tasks.ready} />
        <OutboxNotes outbox={outbox} pending={pending} />
        <KeysTip suggestions={suggestions} />
        <p className="status-line" role="status" aria-live="polite">
          {status}
        </p>
        <DroppedLabels dropped={dropped} />
      </aside>

      {helpOpen && (
        <KeysHelp keys={keys} suggestions={suggestions} onClose={() => setHelpOpen(false)} />
      )}
      {similarOf !== null && <SimilarDialog imageId={similarOf} onClose={() => setSimilarOf(null)} />}
    </section>
  );
}
