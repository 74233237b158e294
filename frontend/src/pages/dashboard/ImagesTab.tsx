// Image browser: thumbnails with filters, and a detail panel (annotations, prediction,
// resolving a disagreement). `?ids=1,2,3` in the address (a lasso on the map) shows just those.

import { useCallback, useEffect, useRef, useState } from "react";
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

function query(show: Show, predicted: string, label: string, ids: string | null): URLSearchParams {
  const params = new URLSearchParams({ page_size: String(PAGE) });
  if (ids) params.set("ids", ids);
  if (show === "unlabeled") {
    params.append("status", "unlabeled");
    params.append("status", "partial");
  } else if (show === "labeled") {
    params.append("status", "labeled");
  } else if (show === "model_disagrees") {
    // Likely label errors: the active model predicts another class than the consensus,
    // its most confident disagreements first.
    params.append("status", "labeled");
    params.set("model_disagrees", "true");
    params.set("ordering", "-confidence");
  } else if (show === "disputed") {
    params.append("status", "disputed");
  } else if (show === "disagreement") {
    params.set("disagreement", "true");
  } else if (show === "uncertain") {
    // The queue's order is the acquisition score: the most informative images first.
    params.append("status", "unlabeled");
    params.append("status", "partial");
    params.set("ordering", "-priority");
  }
  if (predicted) params.set("predicted", predicted);
  if (label) params.set("label", label);
  return params;
}

export function ImagesTab({ project }: { project: Project }) {
  const [show, setShow] = useState<Show>("all");
  const [predicted, setPredicted] = useState("");
  const [label, setLabel] = useState("");
  const [images, setImages] = useState<ImageRow[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  const [search, setSearch] = useSearchParams();
  const ids = search.get("ids");

  // Each fetch's number: a slow answer to an older filter must not overwrite a newer one.
  const latest = useRef(0);
  const fetchPage = useCallback(
    async (url: string, append: boolean) => {
      const mine = ++latest.current;
      setLoading(true);
      try {
        const page = await api<Page<ImageRow>>(url);
        if (mine !== latest.current) return;
        setImages((old) => (append ? [...old, ...page.results] : page.results));
        setNext(page.next);
        setError(null);
      } catch (caught) {
        if (mine === latest.current) setError(asApiError(caught));
      } finally {
        if (mine === latest.current) setLoading(false);
      }
    },
    [],
  );

  useEffect(() => {
    setSelected(null);
    void fetchPage(`/api/projects/${project.id}/images/?${query(show, predicted, label, ids)}`, false);
  }, [project.id, show, predicted, label, ids, fetchPage]);

  return (
    <div className="browser">
      <div className="browser-main">
        <form className="filters" role="search" aria-label="Filter images" onSubmit={(e) => e.preventDefault()}>
          <label>
            Show
            <select value={show} onChange={(e) => setShow(e.target.value as Show)}>
              {SHOW_OPTIONS.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.title}
                </option>
              ))}
            </select>
          </label>
          <ClassFilter title="Predicted class" labels={project.labels} value={predicted} onChange={setPredicted} />
          <ClassFilter title="Label" labels={project.labels} value={label} onChange={setLabel} />
        </form>
        {ids && <MapSelection count={ids.split(",").length} onClear={() => setSearch({})} />}
        {error && <ErrorNote error={error} />}
        {!loading && images.length === 0 && !error && <p className="muted">No images match.</p>}
        <Thumbs images={images} selected={selected} onSelect={setSelected} loading={loading} />
        {next && (
          <button type="button" className="btn" onClick={() => fetchPage(next, true)} disabled={loading}>
            {loading ? "Loading…" : "Load more"}
          </button>
        )}
      </div>
      <aside className="card detail" aria-label="Image details">
        {selected === null ? (
          <p className="muted">Choose an image to see its labels and the model’s prediction.</p>
        ) : (
          <ImageDetailPanel key={selected} imageId={selected} project={project} onSelect={setSelected} />
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

function Thumbs({
  images,
  selected,
  onSelect,
  loading,
}: {
  images: ImageRow[];
  selected: number | null;
  onSelect: (id: number) => void;
  loading: boolean;
}) {
  return (
    <ul className="thumbs" aria-label="Images" aria-busy={loading}>
      {images.map((img) => (
        <li key={img.id}>
          <button
            type="button"
            className={`thumb${selected === img.id ? " selected" : ""}`}
            onClick={() => onSelect(img.id)}
            aria-pressed={selected === img.id}
            aria-label={`Image ${img.id}, ${img.status}${img.consensus_label ? `, label ${img.consensus_label}` : ""}${img.predicted_label ? `, predicted ${img.predicted_label}` : ""}`}
          >
            <img
              src={img.file_url}
              alt=""
              loading="lazy"
              className={Math.max(img.width, img.height) < 256 ? "pixelated" : undefined}
            />
            <span className={`thumb-tag status-${img.status}`}>
              {img.consensus_label ?? img.status}
            </span>
          </button>
        </li>
      ))}
    </ul>
  );
}
