// The grid's page: the proposed class on top, then a cell per image with its current label,
// a mark when the annotator changed it, the cursor and the selection. The page shows once every
// image on it is decoded (data-ready="true"), so no cell pops in.

import type { RefObject } from "react";

import type { GridCell } from "../../lib/grid";
import type { View } from "./ContextStrip";
import type { GridState } from "./useGrid";

// Images smaller than this (pixels, either side) scale up with hard pixel edges, as in Stage.
const PIXELATED_BELOW = 256;

// A mouse click on a cell keeps keyboard focus where it was, so the next key still labels.
const keepFocus = (event: { preventDefault(): void }) => event.preventDefault();

export function GridView({
  grid,
  loading,
  sending,
  error,
  gridRef,
  view,
}: {
  grid: GridState;
  loading: boolean;
  sending: boolean; // the last page's labels are on their way: the next page waits for them
  error: string | null;
  gridRef: RefObject<HTMLDivElement | null>;
  view: View; // the context strip's zoom and contrast, for every cell
}) {
  const { page } = grid;
  const ready = page !== null && !loading;
  return (
    <div className="grid-stage">
      <p className="grid-proposed" data-testid="grid-proposed">
        {page?.proposed ? (
          <>
            Proposed: <strong className="grid-proposed-class">{page.proposed}</strong>{" "}
            <span className="muted small">every image starts with it; change the ones that are not</span>
          </>
        ) : page ? (
          <span className="muted">Each image starts with the model’s suggestion, if any.</span>
        ) : (
          <span aria-busy="true">
            {sending
              ? "Sending the page’s labels; the next page comes once the server has them…"
              : error
                ? `Cannot fetch a page (${error}) Retrying…`
                : "Fetching a page…"}
          </span>
        )}
      </p>
      <div
        ref={gridRef}
        className={`grid-page${view.contrast ? " contrast" : ""}`}
        data-testid="grid"
        data-proposed={page?.proposed ?? ""}
        data-ready={ready ? "true" : "false"}
        role="group"
        aria-label={page ? `A page of ${page.cells.length} images` : "Loading a page of images"}
      >
        {page?.cells.map((cell, index) => (
          <Cell
            key={cell.task.image}
            cell={cell}
            cursor={index === page.cursor}
            selected={page.selected.has(index)}
            zoom={view.zoom}
            onClick={(shift) => grid.point(index, shift)}
          />
        ))}
      </div>
    </div>
  );
}

function Cell({
  cell,
  cursor,
  selected,
  zoom,
  onClick,
}: {
  cell: GridCell;
  cursor: boolean;
  selected: boolean;
  zoom: number;
  onClick: (shift: boolean) => void;
}) {
  const changed = cell.label !== cell.initial;
  const small = Math.max(cell.width, cell.height) < PIXELATED_BELOW;
  const classes = ["grid-cell", cursor && "cursor", selected && "selected", changed && "changed"];
  return (
    <button
      type="button"
      className={classes.filter(Boolean).join(" ")}
      data-testid="grid-cell"
      data-image-id={cell.task.image}
      data-name={cell.task.name ?? ""}
      data-label={cell.label ?? ""}
      data-cursor={cursor ? "true" : "false"}
      aria-pressed={selected}
      aria-current={cursor ? "true" : undefined}
      aria-label={`Image ${cell.task.image}: ${cell.label ?? "no label"}${changed ? ", changed" : ""}`}
      title={cell.task.name}
      onMouseDown={keepFocus}
      onClick={(event) => onClick(event.shiftKey)}
    >
      <img
        src={cell.src}
        alt=""
        className={small ? "pixelated" : undefined}
        style={zoom !== 1 ? { transform: `scale(${zoom})` } : undefined}
        draggable={false}
      />
      <span className={`grid-label${cell.label === null ? " none" : ""}`}>{cell.label ?? "no label"}</span>
      {changed && (
        <span className="grid-mark" title={cell.initial ? `changed from “${cell.initial}”` : "labeled here"}>
          ✎
        </span>
      )}
    </button>
  );
}
