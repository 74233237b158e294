// The grid view's page as React state (lib/gridSession.ts leases, decodes, renews and gives it
// back), and what its commands do: move the cursor, select, relabel, accept. Each command
// answers with the line the status bar shows.

import { useEffect, useState } from "react";

import { useLatest } from "../../hooks/useLatest";
import { api, type Project } from "../../lib/api";
import { type Classes, currentName } from "../../lib/classChanges";
import { type Accepted, type Direction, type GridAnswer, type GridPage, moveCursor, relabel, toggleSelected } from "../../lib/grid";
import { GridSession, type GridSource } from "../../lib/gridSession";
import type { Outbox } from "../../lib/outbox";
import { decodeImage, leavingWith, releaseLease, renewLease } from "./useTaskQueue";

function browserGridSource(projectId: number): GridSource {
  return {
    page: (size, ids, prefetch) =>
      api<GridAnswer>(`/api/projects/${projectId}/tasks/grid/`, {
        method: "POST",
        body: ids.length ? { size, images: ids } : prefetch ? { size, prefetch: true } : { size },
      }),
    renew: renewLease,
    release: (image) => releaseLease(image, false),
    preload: decodeImage,
    discard: (src) => URL.revokeObjectURL(src),
  };
}

export interface GridOptions {
  project: Project;
  outbox: Outbox;
  classes: Classes;
  ids: readonly number[];
  onNewLabel: () => void;
  onRefused: (reason: string, message: string, pagesDone: number) => void;
}

export interface GridState {
  session: GridSession | null;
  page: GridPage | null;
  move(direction: Direction, columns: number): void;
  /** Click: the cursor goes there; with Shift, the cell's selection toggles too. */
  point(index: number, select: boolean): void;
  select(): void; // Space: toggle the cursor cell's selection
  clear(): string | null; // Escape: clear the selection (null: there was none)
  label(name: string): string | null;
  accept(): string | null;
}

export function useGrid(options: GridOptions): GridState {
  const { project, outbox, classes, ids, onNewLabel, onRefused } = options;
  const [session, setSession] = useState<GridSession | null>(null);
  const [, setVersion] = useState(0);
  const [pagesDone, setPagesDone] = useState(0);
  const idsKey = ids.join(",");
  // The effect below makes the session once per project and selection; these it reads live.
  const submit = (labels: Accepted[]) => {
    for (const done of labels) {
      outbox.enqueue({ project: project.id, image: done.image, label: done.label, durationMs: done.durationMs, view: "grid" });
      onNewLabel();
    }
    setPagesDone((n) => n + 1);
  };
  const latest = useLatest({ onRefused, classes, pagesDone, submit });

  useEffect(() => {
    const created = new GridSession({
      source: browserGridSource(project.id),
      ids: idsKey ? idsKey.split(",").map(Number) : [],
      leaseSeconds: project.lease_seconds,
      isHandled: (image) => outbox.handled(image),
      isUnsent: (image) => outbox.hasPending(image),
      submit: (labels) => latest.current.submit(labels),
      name: (label) => currentName(label, latest.current.classes),
      onChange: () => setVersion((n) => n + 1),
      onRefused: (reason, message) => latest.current.onRefused(reason, message, latest.current.pagesDone),
    });
    setSession(created);
    created.start();
    return leavingWith(() => created.stop()); // the page's leases go back, a closing tab's too
  }, [project.id, project.lease_seconds, outbox, idsKey, latest]);

  const page = session?.page ?? null;
  // Commands read the session's page now, not this render's: two keys may beat a render.
  const live = () => session?.page ?? null;
  const update = (next: GridPage) => session?.update(next);
  const change = (how: (now: GridPage) => GridPage) => {
    const now = live();
    if (now) update(how(now));
  };

  function label(name: string): string | null {
    const now = live();
    if (!now) return null;
    const { page: next, changed } = relabel(now, name);
    update(next);
    const which = changed.map((index) => now.cells[index].task.image);
    return which.length === 1 ? `Image ${which[0]}: “${name}”.` : `${which.length} images: “${name}”.`;
  }

  function accept(): string | null {
    if (!session?.page) return null;
    const { labels, missing } = session.accept();
    if (missing.length > 0) {
      const count = missing.length === 1 ? "1 image has" : `${missing.length} images have`;
      return `${count} no label yet: press a class key on each (the cursor is on the first).`;
    }
    const changed = labels.filter((done) => done.changed).length;
    return `Page accepted: ${labels.length} labels${changed ? ` (${changed} changed)` : ""}.`;
  }

  return {
    session,
    page,
    move: (direction, columns) =>
      change((now) => ({ ...now, cursor: moveCursor(now.cursor, direction, columns, now.cells.length) })),
    point: (index, select) =>
      change((now) => (select ? { ...toggleSelected(now, index), cursor: index } : { ...now, cursor: index })),
    select: () => change((now) => toggleSelected(now, now.cursor)),
    clear() {
      const now = live();
      if (!now || now.selected.size === 0) return null;
      update({ ...now, selected: new Set() });
      return "Selection cleared.";
    },
    label,
    accept,
  };
}
