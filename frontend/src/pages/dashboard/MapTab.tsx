// The embedding map: every image (a sample past 50,000) placed by its embedding (PCA to two
// dimensions, computed by the worker), coloured by label, prediction or uncertainty. Drawing a
// lasso around points selects them; the selection opens in the image browser.

import { type PointerEvent, useEffect, useMemo, useRef, useState } from "react";
import { useNavigate } from "react-router";

import { ErrorNote } from "../../components/ErrorNote";
import { useResource } from "../../hooks/useResource";
import { canLabel, type Project } from "../../lib/api";
import {
  classColour,
  type ColourMode,
  type EmbeddingMapAnswer,
  lassoSelect,
  MAP_SIZE,
  type Point,
  pointColour,
  toCanvas,
  uncertaintyColour,
} from "../../lib/embeddingMap";
import { GRID_ROUTE_MAX_IDS, gridUrl } from "../../lib/grid";

// Ids the image browser takes in one selection (the image list's `ids` filter caps it).
const OPEN_MAX = 1000;

export function MapTab({ project }: { project: Project }) {
  const map = useResource<EmbeddingMapAnswer>(`/api/projects/${project.id}/embedding-map/`);
  const [mode, setMode] = useState<ColourMode>("label");
  const [selected, setSelected] = useState<number[]>([]);
  const navigate = useNavigate();

  if (map.error?.status === 409) {
    return <p className="muted">{map.error.message}</p>;
  }
  if (map.error) return <ErrorNote error={map.error} />;
  if (!map.data) return <p aria-busy="true">Loading the map…</p>;
  const data = map.data;
  const ids = selected.map((n) => data.points.id[n]);
  const open = () => navigate(`/projects/${project.id}/admin/images?ids=${ids.slice(0, OPEN_MAX).join(",")}`);

  return (
    <div className="embedding-map">
      <div className="map-controls">
        <label>
          Colour by
          <select value={mode} onChange={(e) => setMode(e.target.value as ColourMode)}>
            <option value="label">Label</option>
            <option value="predicted">Prediction</option>
            <option value="uncertainty">Uncertainty</option>
          </select>
        </label>
        <p className="muted small">
          {data.sampled.toLocaleString()} of {data.total.toLocaleString()} images, by the{" "}
          {data.source.kind} {data.source.number}’s features ({data.method.toUpperCase()}, the two
          axes explain {Math.round((data.explained[0] + data.explained[1]) * 100)}% of the variance).
          Draw around points to select them.
        </p>
      </div>
      <div className="map-body">
        <MapCanvas data={data} mode={mode} selected={selected} onSelect={setSelected} />
        <Legend labels={data.labels} mode={mode} />
      </div>
      <p role="status" className="map-selection">
        {selected.length === 0 ? "Nothing selected." : `${selected.length.toLocaleString()} images selected.`}
        {selected.length > 0 && (
          <>
            {" "}
            <button type="button" className="btn btn-primary" onClick={open}>
              Open in the image browser
            </button>{" "}
            {canLabel(project.role) && (
              <>
                <button type="button" className="btn" onClick={() => navigate(gridUrl(project.id, ids))}>
                  Label as grid
                </button>{" "}
              </>
            )}
            <button type="button" className="btn btn-quiet" onClick={() => setSelected([])}>
              Clear
            </button>
            {selected.length > OPEN_MAX && <span className="muted small"> (the first {OPEN_MAX} open)</span>}
            {canLabel(project.role) && selected.length > GRID_ROUTE_MAX_IDS && (
              <span className="muted small"> (a grid takes the first {GRID_ROUTE_MAX_IDS})</span>
            )}
          </>
        )}
      </p>
    </div>
  );
}

function MapCanvas({
  data,
  mode,
  selected,
  onSelect,
}: {
  data: EmbeddingMapAnswer;
  mode: ColourMode;
  selected: number[];
  onSelect: (positions: number[]) => void;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [lasso, setLasso] = useState<Point[] | null>(null);
  const chosen = useMemo(() => new Set(selected), [selected]);

  useEffect(() => {
    const context = canvas.current?.getContext("2d");
    if (context) draw(context, data, mode, chosen, lasso);
  }, [data, mode, chosen, lasso]);

  // In the map's own units (MAP_SIZE across), whatever size the page draws the canvas at.
  function at(event: PointerEvent<HTMLCanvasElement>): Point {
    const box = event.currentTarget.getBoundingClientRect();
    const scale = MAP_SIZE / (box.width || MAP_SIZE);
    return [(event.clientX - box.left) * scale, (event.clientY - box.top) * scale];
  }
  // The lasso's points as they come (events outrun renders); the state only redraws it.
  const drawing = useRef<Point[] | null>(null);
  function down(event: PointerEvent<HTMLCanvasElement>) {
    event.currentTarget.setPointerCapture?.(event.pointerId);
    drawing.current = [at(event)];
    setLasso(drawing.current);
  }
  function move(event: PointerEvent<HTMLCanvasElement>) {
    if (!drawing.current) return;
    drawing.current = [...drawing.current, at(event)];
    setLasso(drawing.current);
  }
  function up() {
    if (drawing.current) onSelect(lassoSelect(data.points.x, data.points.y, drawing.current));
    drawing.current = null;
    setLasso(null);
  }

  const dpr = window.devicePixelRatio || 1;
  return (
    <canvas
      ref={canvas}
      className="map-canvas"
      width={MAP_SIZE * dpr}
      height={MAP_SIZE * dpr}
      style={{ width: MAP_SIZE, height: MAP_SIZE }}
      role="img"
      aria-label={`Map of ${data.sampled} images, coloured by ${mode}`}
      onPointerDown={down}
      onPointerMove={move}
      onPointerUp={up}
    />
  );
}

function draw(
  context: CanvasRenderingContext2D,
  data: EmbeddingMapAnswer,
  mode: ColourMode,
  chosen: Set<number>,
  lasso: Point[] | null,
) {
  const dpr = window.devicePixelRatio || 1;
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
  context.clearRect(0, 0, MAP_SIZE, MAP_SIZE);
  const { x, y } = data.points;
  const size = x.length > 10_000 ? 2 : 4;
  for (let n = 0; n < x.length; n++) {
    const [cx, cy] = toCanvas(x[n], y[n]);
    context.fillStyle = pointColour(mode, n, data.points);
    context.fillRect(cx - size / 2, cy - size / 2, size, size);
    if (chosen.has(n)) {
      context.strokeStyle = "#0f172a";
      context.strokeRect(cx - size / 2 - 1, cy - size / 2 - 1, size + 2, size + 2);
    }
  }
  if (lasso && lasso.length > 1) {
    context.strokeStyle = "#1d4ed8";
    context.setLineDash([4, 3]);
    context.beginPath();
    context.moveTo(...lasso[0]);
    for (const point of lasso.slice(1)) context.lineTo(...point);
    context.closePath();
    context.stroke();
    context.setLineDash([]);
  }
}

function Legend({ labels, mode }: { labels: string[]; mode: ColourMode }) {
  if (mode === "uncertainty") {
    return (
      <ul className="map-legend" aria-label="Legend">
        {[0, 0.5, 1].map((u) => (
          <li key={u}>
            <span className="swatch" style={{ background: uncertaintyColour(u) }} /> {u === 0 ? "sure" : u === 1 ? "unsure" : "0.5"}
          </li>
        ))}
        <li>
          <span className="swatch" style={{ background: uncertaintyColour(null) }} /> no prediction
        </li>
      </ul>
    );
  }
  return (
    <ul className="map-legend" aria-label="Legend">
      {labels.map((label, i) => (
        <li key={label}>
          <span className="swatch" style={{ background: classColour(i) }} /> {label}
        </li>
      ))}
      <li>
        <span className="swatch" style={{ background: classColour(-1) }} /> {mode === "label" ? "no label" : "no prediction"}
      </li>
    </ul>
  );
}
