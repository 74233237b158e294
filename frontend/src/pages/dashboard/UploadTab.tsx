// Upload: drop files or zips (or choose them), optional label manifest, progress, and the
// server's answer for every file.

import { useRef, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import {
  type ApiError,
  asApiError,
  type Project,
  type UploadReport,
  type UploadResult,
  uploadWithProgress,
} from "../../lib/api";

// One request stays under the server's limits (LABELLOOP_MAX_UPLOAD_FILES, default 1000 parts)
// and short enough that a failure costs little; a big zip goes alone.
const BATCH_FILES = 200;
const BATCH_BYTES = 64 * 1024 * 1024;

function batches(files: File[]): File[][] {
  const out: File[][] = [];
  let current: File[] = [];
  let bytes = 0;
  for (const file of files) {
    if (current.length && (current.length >= BATCH_FILES || bytes + file.size > BATCH_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length) out.push(current);
  return out;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

interface UploadRequest {
  path: string; // the project's images endpoint
  files: File[];
  manifest: File | null; // labels: CSV or JSON
  layout: "flat" | "imagefolder";
}

/** Send the files in batches; `onResults` gets every result so far, `onProgress` the share of bytes sent. */
async function uploadInBatches(
  { path, files, manifest, layout }: UploadRequest,
  onProgress: (fraction: number) => void,
  onResults: (results: UploadResult[]) => void,
): Promise<void> {
  const total = files.reduce((sum, f) => sum + f.size, 0) || 1;
  let done = 0;
  const all: UploadResult[] = [];
  for (const batch of batches(files)) {
    const form = new FormData();
    for (const file of batch) form.append("files", file, file.name);
    if (manifest) form.append("labels", manifest, manifest.name);
    form.append("layout", layout);
    const size = batch.reduce((sum, f) => sum + f.size, 0);
    const report = await uploadWithProgress<UploadReport>(path, form, (fraction) =>
      onProgress((done + fraction * size) / total),
    );
    done += size;
    all.push(...report.results);
    onResults([...all]);
  }
}

export function UploadTab({ project, onUploaded }: { project: Project; onUploaded: () => void }) {
  const [files, setFiles] = useState<File[]>([]);
  const [manifest, setManifest] = useState<File | null>(null);
  const [layout, setLayout] = useState<"flat" | "imagefolder">("flat");
  const [progress, setProgress] = useState<number | null>(null);
  const [results, setResults] = useState<UploadResult[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  async function upload() {
    setError(null);
    setResults([]);
    setProgress(0);
    try {
      const path = `/api/projects/${project.id}/images/`;
      await uploadInBatches({ path, files, manifest, layout }, setProgress, setResults);
      setFiles([]);
      onUploaded();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setProgress(null);
    }
  }

  return (
    <div className="grid-2 upload">
      <section className="card" aria-labelledby="upload-title">
        <h2 id="upload-title">Add images</h2>
        <Dropzone onFiles={(added) => setFiles((old) => [...old, ...added])} />
        {files.length > 0 && <ChosenFiles files={files} onClear={() => setFiles([])} />}
        <div className="form-grid">
          <label htmlFor="upload-manifest">Labels (optional)</label>
          <input
            id="upload-manifest"
            type="file"
            accept=".csv,.json,text/csv,application/json"
            onChange={(event) => setManifest(event.target.files?.[0] ?? null)}
            aria-describedby="manifest-help"
          />
          <span />
          <span id="manifest-help" className="muted small">
            CSV <code>filename,label</code> or JSON <code>{'{"a.png": "cat"}'}</code>; labeled
            images count as ground truth.
          </span>
          <label htmlFor="upload-layout">Layout</label>
          <select id="upload-layout" value={layout} onChange={(e) => setLayout(e.target.value as "flat" | "imagefolder")}>
            <option value="flat">Flat: labels from the manifest, if any</option>
            <option value="imagefolder">Image folder: each file’s folder is its label</option>
          </select>
        </div>
        <div className="row">
          <button type="button" className="btn btn-primary" onClick={upload} disabled={!files.length || progress !== null}>
            Upload
          </button>
          {progress !== null && (
            <progress max={100} value={Math.round(progress * 100)} aria-label="Upload progress">
              {Math.round(progress * 100)}%
            </progress>
          )}
        </div>
        {error && <ErrorNote error={error} />}
      </section>
      <UploadResults results={results} />
    </div>
  );
}

function Dropzone({ onFiles }: { onFiles: (files: File[]) => void }) {
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  return (
    <div
      className={`dropzone${dragging ? " dragging" : ""}`}
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(event) => {
        event.preventDefault();
        setDragging(false);
        onFiles(Array.from(event.dataTransfer.files));
      }}
      data-testid="dropzone"
    >
      <p>
        Drop images or zip archives here, or{" "}
        <button type="button" className="btn btn-small" onClick={() => fileInput.current?.click()}>
          choose files
        </button>
      </p>
      <p className="muted small">PNG, JPEG, WebP, BMP, GIF, TIFF, and zips of them.</p>
      <input
        ref={fileInput}
        id="upload-files"
        type="file"
        multiple
        accept="image/*,.zip,application/zip"
        className="visually-hidden"
        tabIndex={-1} // the "choose files" button is its keyboard way in
        aria-label="Images or zip archives to upload"
        onChange={(event) => {
          onFiles(Array.from(event.target.files ?? []));
          event.target.value = "";
        }}
      />
    </div>
  );
}

function ChosenFiles({ files, onClear }: { files: File[]; onClear: () => void }) {
  return (
    <div>
      <p>
        {files.length} file{files.length === 1 ? "" : "s"},{" "}
        {formatBytes(files.reduce((s, f) => s + f.size, 0))}{" "}
        <button type="button" className="btn btn-quiet btn-small" onClick={onClear}>
          Clear
        </button>
      </p>
      <ul className="file-list">
        {files.slice(0, 8).map((f, i) => (
          <li key={`${f.name}-${i}`}>{f.name}</li>
        ))}
        {files.length > 8 && <li className="muted">and {files.length - 8} more</li>}
      </ul>
    </div>
  );
}

function UploadResults({ results }: { results: UploadResult[] | null }) {
  const count = (status: UploadResult["status"]) => results?.filter((r) => r.status === status).length ?? 0;
  return (
    <section className="card" aria-labelledby="results-title" aria-live="polite">
      <h2 id="results-title">Results</h2>
      {!results || results.length === 0 ? (
        <p className="muted">Each file’s outcome shows here after an upload.</p>
      ) : (
        <>
          <p data-testid="upload-summary">
            <span className="badge badge-ok">{count("created")} created</span>{" "}
            <span className="badge badge-info">{count("duplicate")} duplicate</span>{" "}
            <span className={`badge ${count("rejected") ? "badge-error" : "badge-info"}`}>
              {count("rejected")} rejected
            </span>
          </p>
          <div className="results-scroll">
            <table className="table" data-testid="upload-results">
              <thead>
                <tr>
                  <th scope="col">File</th>
                  <th scope="col">Result</th>
                  <th scope="col">Label</th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {[...results]
                  .sort((a, b) => Number(b.status === "rejected") - Number(a.status === "rejected"))
                  .map((r, i) => (
                    <tr key={`${r.name}-${i}`} className={`result-${r.status}`}>
                      <td>{r.name}</td>
                      <td>{r.status}</td>
                      <td>{r.label ?? ""}</td>
                      <td>{r.reason ?? ""}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
