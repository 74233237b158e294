// The annotator view: one image, large; a key per class. Everything a keypress does is local
// (the label goes to the outbox, the next image is already decoded), so the next image shows
// at once; the network catches up in the background.

import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { Link, useParams } from "react-router";

import { Stage } from "../components/AnnotateStage";
import { ClassChangeNotice } from "../components/ClassChangeNotice";
import { ErrorNote } from "../components/ErrorNote";
import { KeysHelp } from "../components/KeysHelp";
import { useLatest } from "../hooks/useLatest";
import { useProject } from "../hooks/useResource";
import { useTitle } from "../hooks/useTitle";
import { api, apiRaw, type Project, type Task } from "../lib/api";
import { type Classes, classChanges, currentName } from "../lib/classChanges";
import { classKeys, hotkeyMap, type KeyAction, keyAction, keyCap } from "../lib/hotkeys";
import type { Outbox } from "../lib/outbox";
import { type QueueTask, TaskQueue, type TaskSource } from "../lib/taskQueue";
import { useOutbox, useOutboxVersion } from "../context/outbox";

const LOOKAHEAD = 8; // tasks kept leased and decoded ahead of the one on screen
const HISTORY = 20; // labels that Z can walk back through
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
  if (project.data.role !== "annotator" && project.data.role !== "admin") {
    return (
      <section className="page narrow">
        <h1>{project.data.name}</h1>
        <p>Your role in this project ({project.data.role}) cannot label images.</p>
      </section>
    );
  }
  return <Annotator key={project.data.id} project={project.data} reload={reload} />;
}

function browserSource(projectId: number): TaskSource {
  return {
    next: (count) =>
      api<Task[]>(`/api/projects/${projectId}/tasks/next/`, { method: "POST", body: { count } }),
    async renew(image) {
      const { status } = await apiRaw(`/api/tasks/${image}/renew/`, { method: "POST" });
      if (status === 200) return "ok";
      return status === 409 || status === 404 || status === 403 ? "lost" : "error";
    },
    async release(image) {
      await apiRaw(`/api/tasks/${image}/release/`, { method: "POST" });
    },
    async preload(task) {
      const response = await fetch(task.file_url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`image ${task.image}: HTTP ${response.status}`);
      const src = URL.createObjectURL(await response.blob());
      const image = new Image();
      image.src = src;
      try {
        await image.decode();
      } catch (error) {
        URL.revokeObjectURL(src);
        throw error;
      }
      return { src, width: image.naturalWidth, height: image.naturalHeight };
    },
    discard: (src) => URL.revokeObjectURL(src),
  };
}

interface SessionCount {
  count: number;
  startedAt: number; // ms since the epoch
}

/** Labels in this browser tab's session (kept across reloads, like the tab itself). */
function useSessionCount(projectId: number) {
  const key = `labelloop.session.${projectId}`;
  const [state, setState] = useState<SessionCount>(() => {
    try {
      const stored = JSON.parse(sessionStorage.getItem(key) ?? "null") as SessionCount | null;
      if (stored && typeof stored.count === "number") return stored;
    } catch {
      // a fresh count below
    }
    return { count: 0, startedAt: Date.now() };
  });
  const add = useCallback(() => {
    setState((old) => {
      const next = { ...old, count: old.count + 1 };
      sessionStorage.setItem(key, JSON.stringify(next));
      return next;
    });
  }, [key]);
  return { ...state, add };
}

function perHour(count: number, startedAt: number, now: number): string {
  const hours = (now - startedAt) / 3_600_000;
  if (count === 0 || hours < 1 / 60) return "–";
  return Math.round(count / hours).toLocaleString();
}

interface Done {
  task: QueueTask;
  label: string;
}

function Annotator({ project, reload }: { project: Project; reload: () => void }) {
  const outbox = useOutbox();
  useOutboxVersion(outbox);
  const [queue, setQueue] = useState<TaskQueue | null>(null);
  const [, setVersion] = useState(0);
  const [helpOpen, setHelpOpen] = useState(false);
  const [status, setStatus] = useState("");
  const [now, setNow] = useState(() => Date.now());
  const labeledHere = useRef(new Set<number>());
  const history = useRef<Done[]>([]);
  const shownAt = useRef(performance.now());
  const session = useSessionCount(project.id);
  const keys = useMemo(() => classKeys(project.labels), [project.labels]);
  const map = useMemo(() => hotkeyMap(project.labels), [project.labels]);
  const suggestions = project.show_suggestions === true;
  const { labels, label_renames: renames } = project;
  const classes = useMemo<Classes>(() => ({ labels, renames: renames ?? [] }), [labels, renames]);
  // The classes as the annotator last saw them; a change shows until acknowledged.
  const [acknowledged, setAcknowledged] = useState<Classes>(classes);
  const change = useMemo(() => classChanges(acknowledged, classes), [acknowledged, classes]);
  const acknowledge = useCallback(() => setAcknowledged(classes), [classes]);

  useEffect(() => {
    const created = new TaskQueue({
      source: browserSource(project.id),
      lookahead: LOOKAHEAD,
      lowWater: LOOKAHEAD - 2,
      leaseSeconds: project.lease_seconds,
      pendingCount: () => pendingFor(outbox, project.id),
      isHandled: (image) => labeledHere.current.has(image) || outbox.handled(image),
      onChange: () => setVersion((n) => n + 1),
    });
    setQueue(created);
    created.start();
    return () => created.stop();
  }, [project.id, project.lease_seconds, outbox]);

  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 10_000);
    return () => window.clearInterval(timer);
  }, []);

  const current = queue?.current() ?? null;
  const ready = queue ? queue.tasks.filter((task) => task.src !== null).length : 0;

  // The clock for duration_ms starts when the image is on screen, not when it was leased.
  useLayoutEffect(() => {
    shownAt.current = performance.now();
  }, [current?.image, current?.src]);

  const act = useCallback(
    (action: KeyAction) => {
      if (!queue) return;
      const task = queue.current();
      switch (action.type) {
        case "help":
          setHelpOpen((open) => !open);
          return;
        case "close":
          if (helpOpen) setHelpOpen(false);
          else if (change) {
            acknowledge();
            setStatus("");
          }
          return;
        case "undo": {
          const last = history.current.pop();
          if (!last) {
            setStatus("Nothing to undo.");
            return;
          }
          last.task.previousLabel = last.label;
          queue.putBack(last.task);
          setStatus(`Undo: image ${last.task.image} was “${last.label}”. Press its new class.`);
          return;
        }
        case "skip":
          if (!task) return;
          queue.skip();
          setStatus(`Skipped image ${task.image}.`);
          return;
        case "accept": {
          if (!task) return;
          const suggested = task.suggestion && currentName(task.suggestion, classes);
          if (!suggestions || !suggested) {
            setStatus("There is no suggestion to accept.");
            return;
          }
          label(suggested);
          return;
        }
        case "label":
          label(action.label);
          return;
      }

      function label(name: string) {
        if (!queue || !task) return;
        if (!task.src) {
          setStatus("The image is still loading.");
          return;
        }
        const durationMs = Math.round(performance.now() - shownAt.current);
        const entry = { project: project.id, image: task.image, label: name, durationMs };
        if (task.previousLabel !== null) {
          outbox.relabel(entry);
          setStatus(`Image ${task.image}: “${task.previousLabel}” changed to “${name}”.`);
          task.previousLabel = null;
        } else {
          outbox.enqueue(entry);
          session.add();
          setStatus(`Image ${task.image}: “${name}”.`);
        }
        labeledHere.current.add(task.image);
        history.current.push({ task, label: name });
        if (history.current.length > HISTORY) {
          const old = history.current.shift()!;
          if (old.task.src && !queue.tasks.includes(old.task)) URL.revokeObjectURL(old.task.src);
        }
        queue.take();
      }
    },
    [queue, outbox, project.id, session, suggestions, classes, change, acknowledge, helpOpen],
  );

  const keysPaused = change !== null && change.rebound.length > 0;
  const latest = useLatest({ act, helpOpen, map, keysPaused });
  useEffect(() => {
    function onKeyDown(event: KeyboardEvent) {
      const target = event.target as HTMLElement | null;
      if (target?.closest("input, textarea, select, [contenteditable='true']")) return;
      // Enter and Space on a focused control belong to that control.
      if ((event.key === "Enter" || event.key === " ") && target?.closest("button, a")) return;
      const action = keyAction(event, latest.current.map);
      if (!action) return;
      event.preventDefault();
      if (latest.current.helpOpen && action.type !== "help" && action.type !== "close") return;
      if (action.type === "label" && latest.current.keysPaused) {
        setStatus("Class keys are paused: the classes changed. Read the notice, then press Esc.");
        return;
      }
      latest.current.act(action);
    }
    window.addEventListener("keydown", onKeyDown);
    return () => window.removeEventListener("keydown", onKeyDown);
  }, [latest]);

  const pending = pendingFor(outbox, project.id);
  const droppedHere = outbox.dropped().filter((item) => item.project === project.id);
  const dropped = droppedHere.slice(-3);
  // A label the server refused may name a class that is gone: re-read the classes at once.
  const droppedCount = droppedHere.length;
  useEffect(() => {
    if (droppedCount > 0) reload();
  }, [droppedCount, reload]);
  const was = current?.previousLabel ? currentName(current.previousLabel, classes) : null;
  const suggestedNow = current?.suggestion ? currentName(current.suggestion, classes) : null;

  return (
    <section className="annotate" aria-label={`Label images of ${project.name}`}>
      <div className="annotate-main">
        <header className="annotate-head">
          <h1>{project.name}</h1>
          <Link to="/" className="small">
            All projects
          </Link>
        </header>
        <Stage
          task={current}
          classes={classes}
          queue={queue}
          suggestions={suggestions}
          labeledCount={session.count}
          pending={pending}
        />
      </div>

      <aside className="annotate-panel" aria-label="Labeling controls">
        {change && (
          <ClassChangeNotice
            change={change}
            onDismiss={() => {
              acknowledge();
              setStatus("");
            }}
          />
        )}
        <h2 id="classes-title">Classes</h2>
        <div
          className={`class-grid${keys.every((k) => k.key === k.label.toLowerCase()) ? " compact" : ""}`}
          role="group"
          aria-labelledby="classes-title"
        >
          {keys.map(({ label, key }) => (
            <button
              key={label}
              type="button"
              className={`class-button${was === label ? " was" : ""}`}
              onMouseDown={(event) => event.preventDefault()} // keep keyboard focus where it was
              onClick={() => act({ type: "label", label })}
              disabled={!current?.src}
              aria-keyshortcuts={key ?? undefined}
            >
              {key !== null && key === label.toLowerCase() ? (
                // Named by its own key (digits, letters): the name is the key cap.
                <kbd className="kbd-large">{label}</kbd>
              ) : (
                <>
                  {key !== null && <kbd aria-hidden="true">{keyCap(key)}</kbd>}
                  <span className="class-name">{label}</span>
                </>
              )}
            </button>
          ))}
        </div>

        <div className="toolbar" role="group" aria-label="Commands">
          {suggestions && (
            <button
              type="button"
              className="btn"
              onMouseDown={(event) => event.preventDefault()}
              onClick={() => act({ type: "accept" })}
              disabled={!suggestedNow}
              aria-keyshortcuts="Enter"
            >
              Accept suggestion <kbd aria-hidden="true">Enter</kbd>
            </button>
          )}
          <button
            type="button"
            className="btn"
            onMouseDown={(event) => event.preventDefault()}
            onClick={() => act({ type: "skip" })}
            disabled={!current}
            aria-keyshortcuts="S"
          >
            Skip <kbd aria-hidden="true">S</kbd>
          </button>
          <button
            type="button"
            className="btn"
            onMouseDown={(event) => event.preventDefault()}
            onClick={() => act({ type: "undo" })}
            aria-keyshortcuts="Z Backspace"
          >
            Undo <kbd aria-hidden="true">Z</kbd>
          </button>
          <button
            type="button"
            className="btn"
            onClick={() => setHelpOpen(true)}
            aria-keyshortcuts="?"
          >
            Keys <kbd aria-hidden="true">?</kbd>
          </button>
        </div>

        <dl className="counters">
          <div>
            <dt>Labeled this session</dt>
            <dd data-testid="session-count">{session.count}</dd>
          </div>
          <div>
            <dt>Per hour</dt>
            <dd>{perHour(session.count, session.startedAt, now)}</dd>
          </div>
          <div>
            <dt>Unsent</dt>
            <dd>
              <span
                className={`badge ${pending === 0 ? "badge-ok" : outbox.offline ? "badge-warn" : "badge-info"}`}
                data-testid="pending-count"
                title={outbox.offline ? "Offline: labels are saved here and sent when the server answers" : undefined}
              >
                {pending}
              </span>
            </dd>
          </div>
          <div>
            <dt>Ready</dt>
            <dd data-testid="ready-count">{ready}</dd>
          </div>
        </dl>
        {outbox.offline && pending > 0 && (
          <p className="note note-warn">
            The server cannot be reached. Keep labeling: labels are saved in this browser and sent
            when it answers.
          </p>
        )}
        {outbox.persistError && (
          <p className="note note-warn" role="alert">
            This browser refused to store labels ({outbox.persistError}); do not close the tab
            until “Unsent” is 0.
          </p>
        )}
        <p className="muted small">
          Press a class’s key to label the image and move on. <kbd>S</kbd> skips,{" "}
          <kbd>Z</kbd> goes back to change the last label, <kbd>?</kbd> lists every key.
        </p>
        <p className="status-line" role="status" aria-live="polite">
          {status}
        </p>
        {dropped.length > 0 && (
          <ul className="dropped" aria-label="Labels the server did not take">
            {dropped.map((item) => (
              <li key={item.clientId}>
                Image {item.image} (“{item.label}”): {item.reason}
              </li>
            ))}
          </ul>
        )}
      </aside>

      {helpOpen && (
        <KeysHelp keys={keys} suggestions={suggestions} onClose={() => setHelpOpen(false)} />
      )}
    </section>
  );
}

function pendingFor(outbox: Outbox, projectId: number): number {
  return outbox.pending().filter((item) => item.project === projectId).length;
}
