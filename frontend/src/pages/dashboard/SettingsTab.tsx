// Settings: classes, queue and learning settings, members.

import { type FormEvent, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { useResource } from "../../hooks/useResource";
import { api, type ApiError, asApiError, type Member, type Project, type Role } from "../../lib/api";

const STRATEGIES: { value: string; title: string }[] = [
  { value: "diverse", title: "Uncertainty + diversity (robust default)" },
  { value: "margin", title: "Smallest margin" },
  { value: "least_confidence", title: "Least confidence" },
  { value: "entropy", title: "Entropy" },
  { value: "bald", title: "BALD (MC dropout)" },
  { value: "random", title: "Random order" },
];

const ROLES: Role[] = ["admin", "annotator", "viewer"];

interface Form {
  name: string;
  description: string;
  labels: string;
  annotations_per_image: string;
  strategy: string;
  retrain_every: string;
  exploration_fraction: string;
  lease_seconds: string;
  show_suggestions: boolean;
}

function formOf(p: Project): Form {
  return {
    name: p.name,
    description: p.description,
    labels: p.labels.join("\n"),
    annotations_per_image: String(p.annotations_per_image),
    strategy: p.strategy,
    retrain_every: String(p.retrain_every),
    exploration_fraction: String(p.exploration_fraction),
    lease_seconds: String(p.lease_seconds),
    show_suggestions: p.show_suggestions ?? false,
  };
}

export function SettingsTab({ project, onSaved }: { project: Project; onSaved: () => void }) {
  return (
    <div className="grid-2">
      <ProjectSettings project={project} onSaved={onSaved} />
      <Members project={project} />
    </div>
  );
}

function ProjectSettings({ project, onSaved }: { project: Project; onSaved: () => void }) {
  const [form, setForm] = useState<Form>(() => formOf(project));
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(false);
  const set = <K extends keyof Form>(key: K, value: Form[K]) => {
    setForm((old) => ({ ...old, [key]: value }));
    setSaved(false);
  };

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    const original = formOf(project);
    const body: Record<string, unknown> = {};
    if (form.name !== original.name) body.name = form.name;
    if (form.description !== original.description) body.description = form.description;
    if (form.labels !== original.labels) {
      body.labels = form.labels
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
    }
    for (const key of ["annotations_per_image", "retrain_every", "lease_seconds"] as const) {
      if (form[key] !== original[key]) body[key] = Number.parseInt(form[key], 10);
    }
    if (form.exploration_fraction !== original.exploration_fraction) {
      body.exploration_fraction = Number.parseFloat(form.exploration_fraction);
    }
    if (form.strategy !== original.strategy) body.strategy = form.strategy;
    if (project.show_suggestions !== undefined && form.show_suggestions !== original.show_suggestions) {
      body.show_suggestions = form.show_suggestions;
    }
    try {
      if (Object.keys(body).length) {
        await api(`/api/projects/${project.id}/`, { method: "PATCH", body });
        onSaved();
      }
      setSaved(true);
      setError(null);
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  return (
    <section className="card" aria-labelledby="settings-title">
      <h2 id="settings-title">Project settings</h2>
      <form className="form-grid" onSubmit={onSubmit}>
        <label htmlFor="s-name">Name</label>
        <input id="s-name" value={form.name} onChange={(e) => set("name", e.target.value)} required />

        <label htmlFor="s-description">Description</label>
        <textarea id="s-description" rows={2} value={form.description} onChange={(e) => set("description", e.target.value)} />

        <label htmlFor="s-labels">Classes</label>
        <div>
          <textarea
            id="s-labels"
            rows={Math.min(12, Math.max(4, project.labels.length))}
            value={form.labels}
            onChange={(e) => set("labels", e.target.value)}
            aria-describedby="s-labels-help"
            required
          />
          <p id="s-labels-help" className="muted small">
            One per line, in order: keys 1-9, 0, then letters (classes all named by one digit or
            letter are their own keys). A class that has labels cannot be removed; rename it below
            instead.
          </p>
        </div>

        <label htmlFor="s-overlap">Labels per image</label>
        <div>
          <input
            id="s-overlap"
            type="number"
            min={1}
            max={15}
            value={form.annotations_per_image}
            onChange={(e) => set("annotations_per_image", e.target.value)}
            aria-describedby="s-overlap-help"
          />
          <p id="s-overlap-help" className="muted small">
            Overlap: how many annotators label each image; the majority is the label.
          </p>
        </div>

        <label htmlFor="s-strategy">Strategy</label>
        <div>
          <select
            id="s-strategy"
            value={form.strategy}
            onChange={(e) => set("strategy", e.target.value)}
            aria-describedby="s-strategy-help"
          >
            {STRATEGIES.map((s) => (
              <option key={s.value} value={s.value}>
                {s.title}
              </option>
            ))}
          </select>
          <p id="s-strategy-help" className="muted small">
            Which images come first. A new strategy re-orders the queue when saved: the active model
            re-scores it (an activation run), no retraining.
          </p>
        </div>

        <label htmlFor="s-retrain">Retrain every</label>
        <div>
          <input
            id="s-retrain"
            type="number"
            min={0}
            value={form.retrain_every}
            onChange={(e) => set("retrain_every", e.target.value)}
            aria-describedby="s-retrain-help"
          />
          <p id="s-retrain-help" className="muted small">New labels between automatic runs; 0 turns them off.</p>
        </div>

        <label htmlFor="s-exploration">Exploration fraction</label>
        <div>
          <input
            id="s-exploration"
            type="number"
            min={0}
            max={1}
            step={0.01}
            value={form.exploration_fraction}
            onChange={(e) => set("exploration_fraction", e.target.value)}
            aria-describedby="s-exploration-help"
          />
          <p id="s-exploration-help" className="muted small">
            Share of tasks drawn at random: keeps the accuracy estimate honest.
          </p>
        </div>

        <label htmlFor="s-lease">Lease (seconds)</label>
        <input
          id="s-lease"
          type="number"
          min={10}
          max={86400}
          value={form.lease_seconds}
          onChange={(e) => set("lease_seconds", e.target.value)}
        />

        {project.show_suggestions !== undefined && (
          <>
            <span />
            <label className="checkbox">
              <input
                type="checkbox"
                checked={form.show_suggestions}
                onChange={(e) => set("show_suggestions", e.target.checked)}
              />
              Show the model’s suggestion to annotators (Enter accepts it). Off by default:
              suggestions anchor annotators.
            </label>
          </>
        )}

        <span />
        <div className="row">
          <button type="submit" className="btn btn-primary">
            Save settings
          </button>
          {saved && <span role="status">Saved.</span>}
        </div>
      </form>
      {error && <ErrorNote error={error} />}
      <RenameClass
        project={project}
        onRenamed={(renamed) => {
          // The classes box shows the new name (keeping any other unsaved edits to it).
          const [from, to] = renamed;
          setForm((old) => ({
            ...old,
            labels: old.labels
              .split("\n")
              .map((l) => (l.trim() === from ? to : l))
              .join("\n"),
          }));
          setSaved(false);
          onSaved();
        }}
      />
    </section>
  );
}

function RenameClass({
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
          {project.labels.map((l) => (
            <option key={l} value={l}>
              {l}
            </option>
          ))}
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

function Members({ project }: { project: Project }) {
  const members = useResource<Member[]>(`/api/projects/${project.id}/members/`);
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<Role>("annotator");
  const [error, setError] = useState<ApiError | null>(null);

  async function call(run: () => Promise<unknown>) {
    try {
      await run();
      setError(null);
      members.reload();
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  const setMember = (name: string, newRole: Role) =>
    call(() =>
      api(`/api/projects/${project.id}/members/`, {
        method: "POST",
        body: { username: name, role: newRole },
      }),
    );

  async function onAdd(event: FormEvent) {
    event.preventDefault();
    await setMember(username.trim(), role);
    setUsername("");
  }

  return (
    <section className="card" aria-labelledby="members-title">
      <h2 id="members-title">Members</h2>
      {members.error && <ErrorNote error={members.error} />}
      <table className="table">
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            <th scope="col">
              <span className="visually-hidden">Remove</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {members.data?.map((m) => (
            <tr key={m.username}>
              <th scope="row">{m.username}</th>
              <td>
                <select
                  aria-label={`Role of ${m.username}`}
                  value={m.role}
                  onChange={(e) => setMember(m.username, e.target.value as Role)}
                >
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </td>
              <td>
                <button
                  type="button"
                  className="btn btn-quiet btn-small"
                  onClick={() =>
                    call(() =>
                      api(`/api/projects/${project.id}/members/?username=${encodeURIComponent(m.username)}`, {
                        method: "DELETE",
                      }),
                    )
                  }
                >
                  Remove<span className="visually-hidden"> {m.username}</span>
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="row add-member" onSubmit={onAdd}>
        <label htmlFor="m-username" className="visually-hidden">
          Username to add
        </label>
        <input
          id="m-username"
          placeholder="username"
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          required
        />
        <label htmlFor="m-role" className="visually-hidden">
          Role
        </label>
        <select id="m-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <button type="submit" className="btn">
          Add member
        </button>
      </form>
      {error && <ErrorNote error={error} />}
    </section>
  );
}
