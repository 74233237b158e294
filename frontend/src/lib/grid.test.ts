import { describe, expect, it } from "vitest";

import {
  acceptPage,
  GRID_ROUTE_MAX_IDS,
  gridKey,
  gridUrl,
  type GridTask,
  moveCursor,
  newPage,
  OFFER_EVERY,
  offerDue,
  offerText,
  parseIds,
  relabel,
  toggleSelected,
} from "./grid";

function task(image: number, suggestion: string | null, exploration = false): GridTask {
  const file_url = `/api/images/${image}/file/`;
  return { image, file_url, lease_expires: "", suggestion, exploration, confidence: 0.9 };
}
const cell = (t: GridTask) => ({ task: t, src: `blob:${t.image}`, width: 28, height: 28 });

describe("a grid page", () => {
  it("starts each cell from its own suggestion: the proposed class, another, or none", () => {
    const page = newPage("7", [cell(task(1, "7")), cell(task(2, "1", true)), cell(task(3, null))]);
    expect(page.cells.map((c) => c.label)).toEqual(["7", "1", null]);
    expect(page.cursor).toBe(0);
    expect(page.selected.size).toBe(0);
  });

  it("follows a class rename for the proposed class and each cell", () => {
    const page = newPage("3", [cell(task(1, "3"))], (label) => (label === "3" ? "three" : label));
    expect(page.proposed).toBe("three");
    expect(page.cells[0].label).toBe("three");
  });

  it("relabels the cell under the cursor, or every selected cell (and clears the selection)", () => {
    const page = newPage("7", [1, 2, 3, 4].map((n) => cell(task(n, "7"))));
    const one = relabel({ ...page, cursor: 2 }, "1");
    expect(one.page.cells.map((c) => c.label)).toEqual(["7", "7", "1", "7"]);
    expect(one.changed).toEqual([2]);

    const selected = toggleSelected(toggleSelected(toggleSelected(page, 0), 3), 0);
    expect([...selected.selected]).toEqual([3]);
    const many = relabel(toggleSelected(selected, 1), "4");
    expect(many.page.cells.map((c) => c.label)).toEqual(["7", "4", "7", "4"]);
    expect(many.changed).toEqual([1, 3]);
    expect(many.page.selected.size).toBe(0);
  });

  it("accepts every cell with the page's time shared equally, marking the changed ones", () => {
    const page = relabel(newPage("7", [1, 2, 3, 4].map((n) => cell(task(n, "7")))), "1").page;
    const { labels, missing } = acceptPage(page, 4001);
    expect(missing).toEqual([]);
    expect(labels).toEqual([
      { image: 1, label: "1", durationMs: 1000, changed: true },
      { image: 2, label: "7", durationMs: 1000, changed: false },
      { image: 3, label: "7", durationMs: 1000, changed: false },
      { image: 4, label: "7", durationMs: 1000, changed: false },
    ]);
  });

  it("refuses Enter while a cell has no label, and says which", () => {
    const page = newPage("7", [cell(task(1, "7")), cell(task(2, null)), cell(task(3, null))]);
    expect(acceptPage(page, 1000)).toEqual({ labels: [], missing: [1, 2] });
    const fixed = relabel(relabel({ ...page, cursor: 1 }, "2").page, "2");
    expect(acceptPage({ ...fixed.page, cursor: 2 }, 1000).missing).toEqual([2]);
  });
});

describe("the grid's cursor", () => {
  // 10 cells, 4 columns: rows [0..3] [4..7] [8, 9]
  it("moves by one across a row and by a row up and down", () => {
    expect(moveCursor(5, "right", 4, 10)).toBe(6);
    expect(moveCursor(5, "left", 4, 10)).toBe(4);
    expect(moveCursor(5, "down", 4, 10)).toBe(9);
    expect(moveCursor(5, "up", 4, 10)).toBe(1);
  });

  it("stops at the edges instead of wrapping", () => {
    expect(moveCursor(3, "right", 4, 10)).toBe(3);
    expect(moveCursor(4, "left", 4, 10)).toBe(4);
    expect(moveCursor(1, "up", 4, 10)).toBe(1);
    expect(moveCursor(6, "down", 4, 10)).toBe(6); // no cell below
    expect(moveCursor(9, "right", 4, 10)).toBe(9);
  });

  it("maps the grid's own keys: arrows and Space, not with modifiers", () => {
    expect(gridKey({ key: "ArrowDown" })).toEqual({ type: "move", direction: "down" });
    expect(gridKey({ key: " " })).toEqual({ type: "select" });
    expect(gridKey({ key: "ArrowLeft", altKey: true })).toBeNull();
    expect(gridKey({ key: "3" })).toBeNull();
  });
});

describe("grid URLs and answers", () => {
  it("opens a lasso's selection as a grid, at most the endpoint's 200 ids", () => {
    expect(gridUrl(4)).toBe("/projects/4/label?mode=grid");
    expect(gridUrl(4, [7, 9])).toBe("/projects/4/label?mode=grid&ids=7,9");
    const many = Array.from({ length: 300 }, (_, i) => i + 1);
    expect(parseIds(new URL(`http://x${gridUrl(4, many)}`).searchParams.get("ids"))).toHaveLength(
      GRID_ROUTE_MAX_IDS,
    );
  });

  it("reads ids from the URL, dropping what is not an image id", () => {
    expect(parseIds("3,1,x,-2,3,2.5, 8")).toEqual([3, 1, 8]);
    expect(parseIds(null)).toEqual([]);
  });

});

describe("the single view's offer of a grid", () => {
  it("asks every OFFER_EVERY labels, and only with suggestions on", () => {
    expect(offerDue(0, true)).toBe(false);
    expect(offerDue(OFFER_EVERY - 1, true)).toBe(false);
    expect(offerDue(OFFER_EVERY, true)).toBe(true);
    expect(offerDue(2 * OFFER_EVERY, true)).toBe(true);
    expect(offerDue(OFFER_EVERY, false)).toBe(false);
  });

  it("names the class and the key", () => {
    expect(offerText("7")).toContain('"7"');
    expect(offerText("7")).toContain("press G");
  });
});
