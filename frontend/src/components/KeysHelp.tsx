// The list of keys (opened with ?): a modal dialog that gives the focus back when it closes.

import { useEffect, useRef } from "react";

import { type ClassKey, keyCap } from "../lib/hotkeys";

export function KeysHelp({
  keys,
  suggestions,
  onClose,
}: {
  keys: ClassKey[];
  suggestions: boolean;
  onClose: () => void;
}) {
  const closeButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    closeButton.current?.focus();
    return () => before?.focus?.();
  }, []);

  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div
        className="modal"
        role="dialog"
        aria-modal="true"
        aria-labelledby="keys-title"
        onClick={(event) => event.stopPropagation()}
      >
        <h2 id="keys-title">Keyboard</h2>
        <div className="keys-columns">
          <table className="keys-table">
            <caption>Classes</caption>
            <tbody>
              {keys.map(({ label, key }) => (
                <tr key={label}>
                  <td>{key !== null ? <kbd>{keyCap(key)}</kbd> : <span className="muted">–</span>}</td>
                  <td>{label}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <CommandKeys suggestions={suggestions} />
          <GridKeys />
        </div>
        <p className="muted small">
          Labels are saved in this browser first and sent in the background; the “Unsent” count
          shows what the server has not confirmed yet. A label from the grid is recorded as such,
          with the page’s time on screen divided by the number of images accepted as its time.
        </p>
        <button ref={closeButton} type="button" className="btn btn-primary" onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  );
}

function CommandKeys({ suggestions }: { suggestions: boolean }) {
  return (
    <table className="keys-table">
      <caption>Commands</caption>
      <tbody>
        {suggestions && (
          <tr>
            <td>
              <kbd>Enter</kbd>
            </td>
            <td>Accept the model’s suggestion</td>
          </tr>
        )}
        {suggestions && (
          <tr>
            <td>
              <kbd>H</kbd>
            </td>
            <td>Show or hide what the model looked at (its activation map)</td>
          </tr>
        )}
        <tr>
          <td>
            <kbd>S</kbd>
          </td>
          <td>Skip (give the image back)</td>
        </tr>
        <tr>
          <td>
            <kbd>Z</kbd> <kbd>Backspace</kbd>
          </td>
          <td>Undo: back to the last image, to change its label</td>
        </tr>
        <tr>
          <td>
            <kbd>M</kbd>
          </td>
          <td>More like this: the images nearest to this one</td>
        </tr>
        <tr>
          <td>
            <kbd>G</kbd>
          </td>
          <td>Grid: label a page of alike images at once, or back to one at a time</td>
        </tr>
        <tr>
          <td>
            <kbd>?</kbd>
          </td>
          <td>Show or hide this list</td>
        </tr>
        <tr>
          <td>
            <kbd>Esc</kbd>
          </td>
          <td>Close</td>
        </tr>
      </tbody>
    </table>
  );
}

const GRID_KEYS: [string[], string][] = [
  [["Enter"], "Accept the page: every image with the label it shows"],
  [["←", "↑", "→", "↓"], "Move the cursor"],
  [["Class key"], "Change the label of the image under the cursor (or of the selected ones)"],
  [["Space"], "Select or unselect the image under the cursor (Shift-click selects too)"],
  [["Esc"], "Clear the selection"],
  [["G"], "Back to one image at a time"],
];

/** The keys of the grid mode (G): a page of images, the proposed class on top. */
function GridKeys() {
  return (
    <table className="keys-table" data-testid="grid-keys">
      <caption>Grid</caption>
      <tbody>
        {GRID_KEYS.map(([caps, what]) => (
          <tr key={what}>
            <td>
              {caps.map((cap) => (
                <kbd key={cap}>{cap}</kbd>
              ))}
            </td>
            <td>{what}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
