// Says what an admin changed in the classes while the annotator was labeling. When a key now
// means another class, the annotator view ignores class keys until this is acknowledged (Esc
// or the button): a finger that pressed 3 for "3" a second ago must not label "2" unnoticed.

import { keyCap } from "../lib/hotkeys";
import type { ClassChange } from "../lib/classChanges";

function quoted(names: readonly string[]): string {
  return names.map((name) => `“${name}”`).join(", ");
}

export function ClassChangeNotice({
  change,
  onDismiss,
}: {
  change: ClassChange;
  onDismiss: () => void;
}) {
  const locked = change.rebound.length > 0;
  return (
    <div
      className={`note class-change ${locked ? "note-warn" : "note-info"}`}
      role="alert"
      data-testid="class-change"
    >
      <p>
        <strong>The classes changed</strong> while you were labeling.
      </p>
      <ul>
        {change.renamed.map(([old, now]) => (
          <li key={`r-${old}`}>
            “{old}” is now “{now}”.
          </li>
        ))}
        {change.added.length > 0 && <li>New: {quoted(change.added)}.</li>}
        {change.removed.length > 0 && <li>Removed: {quoted(change.removed)}.</li>}
      </ul>
      {locked && (
        <p>
          These keys now label another class:{" "}
          {change.rebound.map((key) => (
            <kbd key={key}>{keyCap(key)}</kbd>
          ))}
          . Class keys are paused until you have read the buttons: press <kbd>Esc</kbd>.
        </p>
      )}
      <button type="button" className="btn" onClick={onDismiss}>
        {locked ? "Go on labeling" : "OK"} <kbd aria-hidden="true">Esc</kbd>
      </button>
    </div>
  );
}
