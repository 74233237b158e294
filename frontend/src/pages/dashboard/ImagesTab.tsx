// Image browser: thumbnails with filters (kept in the URL: a reload or a shared link shows the
// same images), a match count, search by file name or id, arrow-key navigation, and a detail
// panel (annotations, prediction, the images most like it, setting the label). `?ids=1,2,3`
// in the address (a lasso on the map) shows just those.

import { type KeyboardEvent, useCallback, useEffect, useRef, useState } from "react";
import { useSearchParams } from "react-router";

import { ErrorNote } from "../../components/ErrorNote";
import { Options } from "../../components/Options";
import { api, type ApiError, asApiError, type ImageRow, type Page, type Project } from "../../lib/api";
import { ImageDetailPanel } from "./ImageDetail";

type Show = "all" | "unlabeled" | "labeled" | "disputed" | "disagreement" | "uncertain" | "model_disagrees";

const SHOW_OPTIONS: { value: Show; title: string }[] = [
  { value: "all", title: "All images" },
  { value: "unlabeled", title: "Unlabeled (and needing more labels)" },
  { value: "labeled", title: "Labeled" },
  { value: "disputed", title: "Disputed" },
  { value: "disagreement", title: "Annotators disagree" },
  { value: "uncertain", title: "Most uncertain first" },
  { value: "model_disagrees", title: "Model disagrees with the label" },
];

const PAGE = 60; // thumbnails per page
const SEARCH_DELAY_MS = 300; // typing pauses this long before the search runs

export interface Filters {
  show: Show;
  predicted: string;
  label: string;
  search: string;
  ids: string; // a selection made on the map: comma-separated image ids, "" for none
}

export function query({ show, predicted, label, search, ids }: Filters): URLSearchParams {
  const params = new URLSearchParams({ page_size: String(PAGE), with_count: "true" });
  if (ids) params.set("ids", ids);
  if (show === "unlabeled" || show === "uncertain") {
    params.append("status", "unlabeled");
    params.append("status", "partial");
  } else if (show === "labeled" || show === "model_disagrees") {
    params.append("status", "labeled");
  } else if (show === "disputed") {
    params.append("status", "disputed");
  } else if (show === "disagreement") {
    params.set("disagreement", "true");
  }
  if (show === "model_disagrees") {
    // Likely label errors: the model predicts another class, its surest disagreements first.
    params.set("model_disagrees", "true");
    params.set("ordering", "-confidence");
  } else if (show === "uncertain") {
    // By the model's uncertainty itself (the queue's priority mixes in diversity).
    params.set("ordering", "-uncertainty");
  }
  if (predicted) params.set("predicted", predicted);
  if (label) params.set("label", label);
  if (search.trim()) params.set("search", search.trim());
  return params;
}

/** The filters as the URL has them (?show=&predicted=&label=&q=&ids=&image=). */
function useUrlFilters() {
  const [params, setParams] = useSearchParams();
  const shown = params.get("show") as Show | null;
  const filters: Filters = {
    show: SHOW_OPTIONS.some((o) => o.value === shown) ? (shown as Show) : "all",
    predicted: params.get("predicted") ?? "",
    label: params.get("label") ?? "",
    search: params.get("q") ?? "",
    ids: params.get("ids") ?? "",
  };
  const selected = Number(params.get("image")) || null;
  const set = useCallback(
    (changes: Record<string, string | null>) =>
      setParams(
        (old) => {
          const next = new URLSearchParams(old);
          for (const [key, value] of Object.entries(changes)) {
            if (value) next.set(key, value);
            else next.delete(key);
          }
          return next;
        },
        { replace: true },
      ),
    [setParams],
  );
  return { filters, selected, set };
}

function useImagePages(projectId: number, filters: Filters) {
  const [images, setImages] = useState<ImageRow[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [count, setCount] = useState<number | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  // Each fetch's number: a slow answer to an older filter must not overwrite a newer one.
  const latest = useRef(0);
  const fetchPage = useCallback(async (url: string, append: boolean) => {
    const mine = ++latest.current;
    setLoading(true);
    try {
      const page = await api<Page<ImageRow> & { count?: number }>(url);
      if (mine !== latest.current) return;
      setImages((old) => (append ? [...old, ...page.results] : page.results));
      setNext(page.next);
      if (!append) setCount(page.count ?? null);
      setError(null);
    } catch (caught) {
      if (mine === latest.current) setError(asApiError(caught));
    } finally {
      if (mine === latest.current) setLoading(false);
    }
  }, []);
  const key = query(filters).toString();
  useEffect(() => {
    void fetchPage(`/api/projects/${projectId}/images/?${key}`, false);
  }, [projectId, key, fetchPage]);
  return { images, next, count, loading, error, more: () => next && fetchPage(next, true) };
}

export function ImagesTab({ project }: { project: Project }) {
  const { filters, selected, set } = useUrlFilters();
  const pages = useImagePages(project.id, filters);
  const { images, loading, error, count } = pages;
  const select = (id: number | null) => set({ image: id === null ? null : String(id) });
  const detail = useRef<HTMLElement>(null);
  // On a phone the details are under the grid: a tap brings them into view.
  const showDetail = (id: number) => {
    select(id);
    if (window.matchMedia("(max-width: 720px)").matches) detail.current?.scrollIntoView({ block: "start" });
  };
  const change = (key: string, value: string) => set({ [key]: value, image: null });

  return (
    <div className="browser">
      <div className="browser-main">
        <form className="filters" role="search" aria-label="Filter images" onSubmit={(e) => e.preventDefault()}>
          <label>
            Show
            <select value={filters.show} onChange={(e) => change("show", e.target.value === "all" ? "" : e.target.value)}>
              {SHOW_OPTIONS.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.title}
                </option>
              ))}
            </select>
          </label>
          <ClassFilter title="Predicted class" labels={project.labels} value={filters.predicted} onChange={(v) => change("predicted", v)} />
          <ClassFilter title="Label" labels={project.labels} value={filters.label} onChange={(v) => change("label", v)} />
          <SearchBox value={filters.search} onChange={(v) => change("q", v)} />
        </form>
        {filters.ids && (
          <MapSelection count={filters.ids.split(",").length} onClear={() => set({ ids: null, image: null })} />
        )}
        <p className="muted small" role="status" data-testid="match-count">
          {count === null ? "" : `${count.toLocaleString()} image${count === 1 ? "" : "s"} match`}
          {images.length > 0 && " · ←/→ move between images"}
        </p>
        {error && <ErrorNote error={error} />}
        {!loading && images.length === 0 && !error && <p className="muted">No images match.</p>}
        <Thumbs images={images} selected={selected} onSelect={select} onPick={showDetail} loading={loading} />
        {pages.next && (
          <button type="button" className="btn" onClick={() => void pages.more()} disabled={loading}>
            {loading ? "Loading…" : "Load more"}
          </button>
        )}
      </div>
      <aside className="card detail" aria-label="Image details" ref={detail}>
        {selected === null ? (
          <p className="muted">Choose an image to see its labels and the model’s prediction.</p>
        ) : (
          <ImageDetailPanel key={selected} imageId={selected} project={project} onSelect={select} />
        )}
      </aside>
    </div>
  );
}

/** The browser shows a selection made on the map (`?ids=`): say so, and undo it. */
function MapSelection({ count, onClear }: { count: number; onClear: () => void }) {
  return (
    <p className="note" role="status">
      Showing the {count} images selected on the map.{" "}
      <button type="button" className="btn btn-quiet" onClick={onClear}>
        Show all
      </button>
    </p>
  );
}

/** Search by file name or id; the URL changes once typing pauses. */
function SearchBox({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  const [text, setText] = useState(value);
  const latest = useRef(onChange);
  useEffect(() => {
    latest.current = onChange;
  });
  useEffect(() => {
    if (text === value) return;
    const timer = window.setTimeout(() => latest.current(text), SEARCH_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [text, value]);
  return (
    <label>
      Search
      <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="file name or id" />
    </label>
  );
}

/** A filter by class: any, or one of the project's classes. */
function ClassFilter({
  title,
  labels,
  value,
  onChange,
}: {
  title: string;
  labels: string[];
  value: string; // "": any class
  onChange: (value: string) => void;
}) {
  return (
    <label>
      {title}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">any</option>
        <Options values={labels} />
      </select>
    </label>
  );
}

// Keys that move the selection in the grid, by how many places.
const MOVES: Record<string, number> = { ArrowRight: 1, ArrowDown: 1, j: 1, ArrowLeft: -1, ArrowUp: -1, k: -1 };

function Thumbs({
  images,
  selected,
  onSelect,
  onPick,
  loading,
}: {
  images: ImageRow[];
  selected: number | null;
  onSelect: (id: number) => void; // the arrow keys
  onPick: (id: number) => void; // a click or tap
  loading: boolean;
}) {
  const list = useRef<HTMLUListElement>(null);
  function onKeyDown(event: KeyboardEvent) {
    const step = MOVES[event.key];
    if (!step || images.length === 0) return;
    event.preventDefault();
    const at = images.findIndex((img) => img.id === selected);
    const to = Math.min(images.length - 1, Math.max(0, at < 0 ? 0 : at + step));
    onSelect(images[to].id);
    list.current?.querySelectorAll<HTMLButtonElement>("button.thumb")[to]?.focus();
  }
  return (
    <ul className="thumbs" aria-label="Images" aria-busy={loading} ref={list} onKeyDown={onKeyDown}>
      {images.map((img) => (
        <li key={img.id}>
          <button
            type="button"
            className={`thumb${selected === img.id ? " selected" : ""}`}
            onClick={() => onPick(img.id)}
            aria-pressed={selected === img.id}
            data-uncertainty={img.uncertainty ?? ""}
            aria-label={`Image ${img.id}, ${img.status}${img.consensus_label ? `, label ${img.consensus_label}` : ""}${img.predicted_label ? `, predicted ${img.predicted_label}` : ""}`}
          >
            <img
              src={img.file_url}
              alt=""
              loading="lazy"
              className={Math.max(img.width, img.height) < 256 ? "pixelated" : undefined}
            />
            <span className={`thumb-tag status-${img.status}`}>
              <bdi>{img.consensus_label ?? img.status}</bdi>
            </span>
            {img.predicted_label && (
              <span className="thumb-pred" data-testid="thumb-predicted" title="the model’s prediction">
                → <bdi>{img.predicted_label}</bdi>
              </span>
            )}
          </button>
        </li>
      ))}
    </ul>
  );
}
