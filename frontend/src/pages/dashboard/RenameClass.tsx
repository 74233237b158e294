// Renaming a class that is in use (POST /api/projects/{id}/labels/rename/): part of Settings.

import { type FormEvent, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { Options } from "../../components/Options";
import { api, type ApiError, asApiError, type Project } from "../../lib/api";

export function RenameClass({
  project,
  onRenamed,
}: {
  project: Project;
  onRenamed: (renamed: [string, string]) => void;
}) {
  const [from, setFrom] = useState(project.labels[0] ?? "");
  const [to, setTo] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const current = project.labels.includes(from) ? from : (project.labels[0] ?? "");

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    const name = to.trim();
    try {
      await api<Project>(`/api/projects/${project.id}/labels/rename/`, {
        method: "POST",
        body: { old: current, new: name },
      });
      setError(null);
      setDone(`Renamed “${current}” to “${name}”.`);
      setFrom(name);
      setTo("");
      onRenamed([current, name]);
    } catch (caught) {
      setDone(null);
      setError(asApiError(caught));
    }
  }

  return (
    <form className="rename-class" onSubmit={onSubmit} aria-labelledby="rename-title">
      <h3 id="rename-title">Rename a class</h3>
      <p className="muted small" id="rename-help">
        Its labels, consensus and predictions take the new name at once; trained models keep
        working under it, no retrain needed. It keeps its place in the list; annotators with the
        page open are told, and warned when a key now means another class.
      </p>
      <div className="row">
        <label htmlFor="r-from" className="visually-hidden">
          Class to rename
        </label>
        <select
          id="r-from"
          value={current}
          onChange={(e) => {
            setFrom(e.target.value);
            setDone(null);
          }}
        >
          <Options values={project.labels} />
        </select>
        <label htmlFor="r-to" className="visually-hidden">
          New name
        </label>
        <input
          id="r-to"
          placeholder="new name"
          value={to}
          maxLength={100}
          onChange={(e) => {
            setTo(e.target.value);
            setDone(null);
          }}
          aria-describedby="rename-help"
          required
        />
        <button type="submit" className="btn">
          Rename
        </button>
      </div>
      {done && <p role="status">{done}</p>}
      {error && <ErrorNote error={error} />}
    </form>
  );
}
