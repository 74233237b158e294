// The annotator view: one image, large; a key per class. Everything a keypress does is local
// (the label goes to the outbox, the next image is already decoded), so the next image shows
// at once; the network catches up in the background.

import { useEffect, useMemo, useState } from "react";
import { Link, useParams } from "react-router";

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
import type { Outbox } from "../../lib/outbox";
import { ContextStrip, type View } from "./ContextStrip";
import { ClassButtons, Commands, Counters, DroppedLabels, KeysTip, OutboxNotes } from "./Panel";
import { useAnnotatorKeys } from "./useAnnotatorKeys";
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
  return <Annotator key={project.data.id} project={project.data} reload={reload} />;
}

/** The last few labels of this project the server refused; their arrival re-reads the project. */
function useDroppedLabels(outbox: Outbox, projectId: number, reload: () => void) {
  const droppedHere = outbox.dropped().filter((item) => item.project === projectId);
  // A label the server refused may name a class that is gone: re-read the classes at once.
  const droppedCount = droppedHere.length;
  useEffect(() => {
    if (droppedCount > 0) reload();
  }, [droppedCount, reload]);
  return droppedHere.slice(-3);
}

function Annotator({ project, reload }: { project: Project; reload: () => void }) {
  const outbox = useOutbox();
  useOutboxVersion(outbox);
  const [status, setStatus] = useState("");
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
          <Link to="/" className="small">
            All projects
          </Link>
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
