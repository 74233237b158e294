// Grid labeling (issue 28): a page of alike images, each with a label the page starts from (the
// class the server proposes for the page, or a cell's own suggestion), a cursor, a selection.
// Everything here is pure: the page state in, the next page state out.

import type { Task } from "./api";

export const GRID_SIZE = 24; // cells asked for per page: 4 rows of 6 on a desktop
export const GRID_ROUTE_MAX_IDS = 200; // the grid endpoint takes at most this many image ids

/** A task of a grid page: a Task plus the model's confidence in its suggestion. */
export interface GridTask extends Task {
  confidence?: number | null;
}

/** POST /api/projects/{id}/tasks/grid/ */
export interface GridAnswer {
  grid: boolean;
  reason: GridReason | ""; // why there is no page ("" when there is one)
  message: string; // the reason in words a user can read
  proposed: string | null;
  min_confidence: number;
  tasks: GridTask[];
}

export const GRID_REASONS = ["suggestions_off", "no_model", "no_confident_page", "nothing_selected"] as const;
export type GridReason = (typeof GRID_REASONS)[number];

export interface GridCell {
  task: GridTask;
  src: string; // the decoded image (an object URL)
  width: number;
  height: number;
  initial: string | null; // the label the page gave it
  label: string | null; // its label now
}

export interface GridPage {
  proposed: string | null;
  cells: GridCell[];
  cursor: number; // index of the cell under the cursor
  selected: ReadonlySet<number>; // indexes of selected cells
}

/** A cell starts with its own suggestion: the proposed class when it agrees, else its own
 * (an exploration pick, a lasso image), or no label when it has none. */
export function initialLabel(task: GridTask): string | null {
  return task.suggestion ?? null;
}

/** A page as it first shows; `name` maps a class to its current name (after a rename). */
export function newPage(
  proposed: string | null,
  cells: Omit<GridCell, "initial" | "label">[],
  name: (label: string) => string | null = (label) => label,
): GridPage {
  return {
    proposed: proposed === null ? null : name(proposed),
    cells: cells.map((cell) => {
      const suggested = initialLabel(cell.task);
      const initial = suggested && name(suggested);
      return { ...cell, initial, label: initial };
    }),
    cursor: 0,
    selected: new Set(),
  };
}

export type Direction = "left" | "right" | "up" | "down";

/** The cursor after an arrow key, on a grid drawn `columns` wide; it stops at the edges. */
export function moveCursor(cursor: number, direction: Direction, columns: number, count: number): number {
  if (count === 0) return 0;
  const step = { left: -1, right: 1, up: -columns, down: columns }[direction];
  const next = cursor + step;
  if (next < 0 || next >= count) return cursor;
  // Left and right stay on the row.
  if ((direction === "left" || direction === "right") && Math.floor(next / columns) !== Math.floor(cursor / columns)) {
    return cursor;
  }
  return next;
}

export function toggleSelected(page: GridPage, index: number): GridPage {
  const selected = new Set(page.selected);
  if (selected.has(index)) selected.delete(index);
  else selected.add(index);
  return { ...page, selected };
}

/** A class key: the selected cells (or, with none selected, the cursor's) get the label. */
export function relabel(page: GridPage, label: string): { page: GridPage; changed: number[] } {
  const targets = page.selected.size > 0 ? [...page.selected] : [page.cursor];
  const chosen = new Set(targets.filter((index) => index < page.cells.length));
  const cells = page.cells.map((cell, index) => (chosen.has(index) ? { ...cell, label } : cell));
  return { page: { ...page, cells, selected: new Set() }, changed: [...chosen].sort((a, b) => a - b) };
}

export interface Accepted {
  image: number;
  label: string;
  durationMs: number; // the page's time on screen shared equally among its labels
  changed: boolean; // the annotator changed the label the page gave it
}

/** What Enter does: every cell's label, or the cells still without one (Enter is refused). */
export function acceptPage(page: GridPage, shownMs: number): { labels: Accepted[]; missing: number[] } {
  const missing = page.cells.flatMap((cell, index) => (cell.label === null ? [index] : []));
  if (missing.length > 0 || page.cells.length === 0) return { labels: [], missing };
  const each = Math.round(Math.max(0, shownMs) / page.cells.length);
  const labels = page.cells.map((cell) => ({
    image: cell.task.image,
    label: cell.label!,
    durationMs: each,
    changed: cell.label !== cell.initial,
  }));
  return { labels, missing };
}

/** The URL that opens images (a lasso's selection) as a grid to label. */
export function gridUrl(projectId: number, ids: readonly number[] = []): string {
  const base = `/projects/${projectId}/label?mode=grid`;
  return ids.length ? `${base}&ids=${ids.slice(0, GRID_ROUTE_MAX_IDS).join(",")}` : base;
}

/** The ids of `?ids=1,2,3`: positive integers, at most GRID_ROUTE_MAX_IDS, no repeats. */
export function parseIds(value: string | null): number[] {
  if (!value) return [];
  const ids = value.split(",").map((part) => Number(part.trim()));
  const valid = ids.filter((id) => Number.isInteger(id) && id > 0);
  return [...new Set(valid)].slice(0, GRID_ROUTE_MAX_IDS);
}

export type GridKey = { type: "move"; direction: Direction } | { type: "select" };

/** The keys only the grid has: arrows move the cursor, Space selects. */
export function gridKey(press: { key: string; ctrlKey?: boolean; metaKey?: boolean; altKey?: boolean }): GridKey | null {
  if (press.ctrlKey || press.metaKey || press.altKey) return null;
  const arrows: Record<string, Direction> = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down" };
  if (press.key in arrows) return { type: "move", direction: arrows[press.key] };
  if (press.key === " ") return { type: "select" };
  return null;
}

/** Single labels between two questions of the single view to the queue: is a page waiting? */
export const OFFER_EVERY = 25;

/** Whether the single view asks now: suggestions on, and a multiple of OFFER_EVERY labels. */
export function offerDue(labeled: number, suggestions: boolean): boolean {
  return suggestions && labeled > 0 && labeled % OFFER_EVERY === 0;
}

/** The status line's offer of a page the queue would serve now (its proposed class). */
export function offerText(proposed: string): string {
  return `The model is sure of a page of "${proposed}" images: press G to label them at once.`;
}
