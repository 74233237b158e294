// The annotator's keyboard: what each key (and its button) does, and the one window listener
// that turns key presses into those actions. Keys typed into a form field stay with it.

import { type Dispatch, type SetStateAction, useEffect, useMemo, useState } from "react";

import { useLatest } from "../../hooks/useLatest";
import { type ClassChange, type Classes, currentName } from "../../lib/classChanges";
import { hotkeyMap, type KeyAction, keyAction } from "../../lib/hotkeys";
import type { TaskQueue } from "../../lib/taskQueue";
import type { TaskQueueState } from "./useTaskQueue";

const RELEASE_WAIT_MS = 3000; // longest wait for the look-ahead's releases before the grid

/** Switch to the grid once the look-ahead's leases are back (RELEASE_WAIT_MS at most): the grid
 * leases a page of its own, and asked before, the server would hand those back as the ones
 * this annotator still holds. */
function releaseThenGrid(queue: TaskQueue, toGrid: () => void): void {
  const waited = new Promise((done) => setTimeout(done, RELEASE_WAIT_MS));
  void Promise.race([queue.releaseAll(), waited]).then(toGrid);
}

export interface AnnotatorKeysOptions {
  tasks: TaskQueueState;
  labels: string[]; // the project's classes, in order: they decide the class keys
  classes: Classes;
  suggestions: boolean; // the model's suggestion is shown (Enter accepts it)
  change: ClassChange | null; // a change to the classes not acknowledged yet
  dismissChange: () => void;
  setStatus: Dispatch<SetStateAction<string>>;
  toggleMap: () => void; // the activation map over the image (where suggestions show)
  toGrid: () => void; // G: a page of alike images instead
}

export interface AnnotatorKeys {
  act: (action: KeyAction) => void; // for the buttons that do what a key does
  helpOpen: boolean; // the list of keys is open
  setHelpOpen: Dispatch<SetStateAction<boolean>>;
  similarOf: number | null; // the image whose "more like this" is open
  setSimilarOf: Dispatch<SetStateAction<number | null>>;
}

export function useAnnotatorKeys(options: AnnotatorKeysOptions): AnnotatorKeys {
  const { tasks, labels, classes, suggestions, change, dismissChange, setStatus } = options;
  const { toggleMap, toGrid } = options;
  const [helpOpen, setHelpOpen] = useState(false);
  const [similarOf, setSimilarOf] = useState<number | null>(null);
  const map = useMemo(() => hotkeyMap(labels), [labels]);

  function act(action: KeyAction) {
    if (!tasks.queue) return;
    const task = tasks.queue.current();
    const say = (line: string | null) => line !== null && setStatus(line);
    switch (action.type) {
      case "help":
        setHelpOpen((open) => !open);
        return;
      case "close":
        if (helpOpen) setHelpOpen(false);
        else if (similarOf !== null) setSimilarOf(null);
        else if (change) dismissChange();
        return;
      case "similar":
        setSimilarOf((open) => (open !== null || !task ? null : task.image));
        return;
      case "undo":
        say(tasks.undo());
        return;
      case "map":
        if (suggestions) toggleMap();
        else setStatus("This project does not show the model’s view to annotators.");
        return;
      case "skip":
        say(tasks.skip());
        return;
      case "grid":
        if (tasks.queue) releaseThenGrid(tasks.queue, toGrid);
        return;
      case "accept": {
        if (!task) return;
        const suggested = task.suggestion && currentName(task.suggestion, classes);
        if (!suggestions || !suggested) {
          setStatus("There is no suggestion to accept.");
          return;
        }
        say(tasks.label(suggested));
        return;
      }
      case "label":
        say(tasks.label(action.label));
        return;
    }
  }

  const keysPaused = change !== null && change.rebound.length > 0;
  const overlay = helpOpen || similarOf !== null; // keys other than its own and Esc wait
  const latest = useLatest({ act, overlay, map, keysPaused });
  useEffect(() => {
    function onKeyDown(event: KeyboardEvent) {
      const target = event.target as HTMLElement | null;
      if (target?.closest("input, textarea, select, [contenteditable='true']")) return;
      // Enter and Space on a focused control belong to that control.
      if ((event.key === "Enter" || event.key === " ") && target?.closest("button, a")) return;
      const action = keyAction(event, latest.current.map);
      if (!action) return;
      event.preventDefault();
      const own = action.type === "help" || action.type === "similar" || action.type === "close";
      if (latest.current.overlay && !own) return;
      if (action.type === "label" && latest.current.keysPaused) {
        setStatus("Class keys are paused: the classes changed. Read the notice, then press Esc.");
        return;
      }
      latest.current.act(action);
    }
    window.addEventListener("keydown", onKeyDown);
    return () => window.removeEventListener("keydown", onKeyDown);
  }, [latest, setStatus]);

  return { act, helpOpen, setHelpOpen, similarOf, setSimilarOf };
}
