// The grid view's keyboard: Enter accepts the page, arrows move the cursor, Space selects, a
// class key relabels the cursor's cell (or the selection), Esc clears the selection, G goes
// back to one image at a time, ? lists the keys. Keys typed into a form field stay with it.

import { type Dispatch, type SetStateAction, useEffect, useMemo } from "react";

import { useLatest } from "../../hooks/useLatest";
import { gridKey } from "../../lib/grid";
import { hotkeyMap, type KeyAction, keyAction } from "../../lib/hotkeys";
import type { GridState } from "./useGrid";

export interface GridKeysOptions {
  grid: GridState;
  labels: string[]; // the project's classes, in order: they decide the class keys
  helpOpen: boolean;
  setHelpOpen: Dispatch<SetStateAction<boolean>>;
  changePending: boolean; // a change to the classes not acknowledged yet (Esc dismisses it)
  keysPaused: boolean; // class keys wait until the annotator has read that change
  dismissChange: () => void;
  setStatus: Dispatch<SetStateAction<string>>;
  toSingle: () => void;
  columns: () => number; // how many cells a row has as the page is drawn now
}

export function useGridKeys(options: GridKeysOptions): (action: KeyAction) => void {
  const { grid, labels, setHelpOpen, setStatus } = options;
  const map = useMemo(() => hotkeyMap(labels), [labels]);

  function act(action: KeyAction) {
    const say = (line: string | null) => line !== null && setStatus(line);
    switch (action.type) {
      case "help":
        setHelpOpen((open) => !open);
        return;
      case "close":
        if (options.helpOpen) setHelpOpen(false);
        else if (options.changePending) options.dismissChange();
        else say(grid.clear());
        return;
      case "accept":
        say(grid.accept());
        return;
      case "grid":
        options.toSingle();
        return;
      case "label":
        if (options.keysPaused) say("Class keys are paused: the classes changed. Read the notice, then press Esc.");
        else say(grid.label(action.label));
        return;
      default:
        say("That key works one image at a time: press G for the single view.");
    }
  }

  const latest = useLatest({ act, map, overlay: options.helpOpen, grid, columns: options.columns });
  useEffect(() => {
    function onKeyDown(event: KeyboardEvent) {
      const target = event.target as HTMLElement | null;
      if (target?.closest("input, textarea, select, [contenteditable='true']")) return;
      if ((event.key === "Enter" || event.key === " ") && target?.closest("button, a")) return;
      const current = latest.current;
      const own = gridKey(event);
      if (own) {
        event.preventDefault();
        if (current.overlay) return;
        if (own.type === "move") current.grid.move(own.direction, current.columns());
        else current.grid.select();
        return;
      }
      const action = keyAction(event, current.map);
      if (!action) return;
      event.preventDefault();
      if (current.overlay && action.type !== "help" && action.type !== "close") return;
      current.act(action);
    }
    window.addEventListener("keydown", onKeyDown);
    return () => window.removeEventListener("keydown", onKeyDown);
  }, [latest]);

  return act;
}
