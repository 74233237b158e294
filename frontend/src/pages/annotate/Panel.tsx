// The parts of the annotator's side panel: a button per class, the commands, the counters, and
// what the outbox has to say (offline, storage refused, labels the server did not take).

import { type ReactNode, useEffect, useState } from "react";

import { type ClassKey, type KeyAction, keyCap } from "../../lib/hotkeys";
import type { DroppedItem, Outbox } from "../../lib/outbox";
import type { QueueTask } from "../../lib/taskQueue";

// A mouse click on a button keeps keyboard focus where it was, so the next key still labels.
const keepFocus = (event: { preventDefault(): void }) => event.preventDefault();

export function ClassButtons({
  keys,
  was,
  disabled,
  act,
}: {
  keys: ClassKey[];
  was: string | null; // the label the task on screen had before an undo
  disabled: boolean;
  act: (action: KeyAction) => void;
}) {
  return (
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
          onMouseDown={keepFocus}
          onClick={() => act({ type: "label", label })}
          disabled={disabled}
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
  );
}

/** A command's button: keyboard focus stays where it was, and the key is shown beside it. */
function CommandButton({
  cap,
  shortcuts,
  onClick,
  disabled,
  primary,
  title,
  children,
}: {
  cap: string; // the key shown
  shortcuts: string; // aria-keyshortcuts
  onClick: () => void;
  disabled?: boolean;
  primary?: boolean;
  title?: string;
  children: ReactNode;
}) {
  return (
    <button
      type="button"
      className={primary ? "btn btn-primary" : "btn"}
      onMouseDown={keepFocus}
      onClick={onClick}
      disabled={disabled}
      aria-keyshortcuts={shortcuts}
      title={title}
    >
      {children} <kbd aria-hidden="true">{cap}</kbd>
    </button>
  );
}

export function Commands({
  suggestions,
  canAccept,
  current,
  act,
  openHelp,
}: {
  suggestions: boolean;
  canAccept: boolean; // the task on screen has a suggestion
  current: QueueTask | null;
  act: (action: KeyAction) => void;
  openHelp: () => void;
}) {
  return (
    <div className="toolbar" role="group" aria-label="Commands">
      {suggestions && (
        <CommandButton
          cap="Enter"
          shortcuts="Enter"
          onClick={() => act({ type: "accept" })}
          disabled={!canAccept}
        >
          Accept suggestion
        </CommandButton>
      )}
      <CommandButton cap="S" shortcuts="S" onClick={() => act({ type: "skip" })} disabled={!current}>
        Skip
      </CommandButton>
      <CommandButton cap="Z" shortcuts="Z Backspace" onClick={() => act({ type: "undo" })}>
        Undo
      </CommandButton>
      <CommandButton
        cap="M"
        shortcuts="M"
        onClick={() => act({ type: "similar" })}
        disabled={!current}
      >
        More like this
      </CommandButton>
      <CommandButton
        cap="G"
        shortcuts="G"
        onClick={() => act({ type: "grid" })}
        title="Label a page of alike images at once"
      >
        Grid
      </CommandButton>
      <button type="button" className="btn" onClick={openHelp} aria-keyshortcuts="?">
        Keys <kbd aria-hidden="true">?</kbd>
      </button>
    </div>
  );
}

/** The grid's commands: accept the page, back to one image at a time, the keys. */
export function GridCommands({
  act,
  select,
  canAccept,
  openHelp,
}: {
  act: (action: KeyAction) => void;
  select: () => void; // what Space does (for touch screens)
  canAccept: boolean; // a page is on screen
  openHelp: () => void;
}) {
  return (
    <div className="toolbar" role="group" aria-label="Commands">
      <CommandButton
        cap="Enter"
        shortcuts="Enter"
        onClick={() => act({ type: "accept" })}
        disabled={!canAccept}
        primary
      >
        Accept page
      </CommandButton>
      <CommandButton
        cap="Space"
        shortcuts="Space"
        onClick={select}
        disabled={!canAccept}
        title="Select or unselect the image under the cursor: a class then labels every selected image"
      >
        Select
      </CommandButton>
      <CommandButton cap="G" shortcuts="G" onClick={() => act({ type: "grid" })}>
        One at a time
      </CommandButton>
      <button type="button" className="btn" onClick={openHelp} aria-keyshortcuts="?">
        Keys <kbd aria-hidden="true">?</kbd>
      </button>
    </div>
  );
}

function perHour(count: number, startedAt: number, now: number): string {
  const hours = (now - startedAt) / 3_600_000;
  if (count === 0 || hours < 1 / 60) return "–";
  return Math.round(count / hours).toLocaleString();
}

export function Counters({
  session,
  pending,
  offline,
  ready,
}: {
  session: { count: number; startedAt: number };
  pending: number; // labels not yet accepted by the server
  offline: boolean;
  ready: number; // tasks whose image is decoded
}) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 10_000);
    return () => window.clearInterval(timer);
  }, []);
  return (
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
            className={`badge ${pending === 0 ? "badge-ok" : offline ? "badge-warn" : "badge-info"}`}
            data-testid="pending-count"
            title={offline ? "Offline: labels are saved here and sent when the server answers" : undefined}
          >
            {pending}
          </span>
        </dd>
      </div>
      <div title="Images leased to you and already loaded: they show the moment you press a key">
        <dt>Ready (loaded ahead)</dt>
        <dd data-testid="ready-count">{ready}</dd>
      </div>
    </dl>
  );
}

export function OutboxNotes({ outbox, pending }: { outbox: Outbox; pending: number }) {
  return (
    <>
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
    </>
  );
}

export function DroppedLabels({ dropped }: { dropped: DroppedItem[] }) {
  if (dropped.length === 0) return null;
  return (
    <ul className="dropped" aria-label="Labels the server did not take">
      {dropped.map((item) => (
        <li key={item.clientId}>
          Image {item.image} (“{item.label}”): {item.reason}
        </li>
      ))}
    </ul>
  );
}

/** The keys worth knowing first; "?" lists them all. */
export function KeysTip({ suggestions }: { suggestions: boolean }) {
  return (
    <p className="muted small">
      Press a class’s key to label the image and move on. <kbd>S</kbd> skips, <kbd>Z</kbd> goes
      back to change the last label,{" "}
      {suggestions && (
        <>
          <kbd>H</kbd> shows what the model looked at,{" "}
        </>
      )}
      <kbd>M</kbd> shows images like this one, <kbd>G</kbd> labels a page of alike images at
      once, <kbd>?</kbd> lists every key.
    </p>
  );
}
