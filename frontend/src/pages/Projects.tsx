import { type FormEvent, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { ErrorNote } from "../components/ErrorNote";
import { useMe } from "../context/auth";
import { useResource } from "../hooks/useResource";
import { useTitle } from "../hooks/useTitle";
import { api, type ApiError, asApiError, canLabel, type Project } from "../lib/api";

type Sort = "name" | "recent" | "images" | "progress";

const SORTS: { value: Sort; title: string }[] = [
  { value: "name", title: "Name" },
  { value: "recent", title: "Newest first" },
  { value: "images", title: "Most images" },
  { value: "progress", title: "Least labeled first" },
];

function progressOf(project: Project): number {
  return project.image_count > 0 ? (project.labeled_count ?? 0) / project.image_count : 0;
}

const COMPARE: Record<Sort, (a: Project, b: Project) => number> = {
  name: (a, b) => a.name.localeCompare(b.name),
  recent: (a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? "") || b.id - a.id,
  images: (a, b) => b.image_count - a.image_count,
  progress: (a, b) => progressOf(a) - progressOf(b),
};

export function shownProjects(projects: Project[], search: string, sort: Sort): Project[] {
  const term = search.trim().toLowerCase();
  const matching = term
    ? projects.filter((p) => `${p.name} ${p.description ?? ""}`.toLowerCase().includes(term))
    : projects;
  return [...matching].sort(COMPARE[sort]);
}

export function Projects() {
  useTitle("Projects");
  const me = useMe();
  const projects = useResource<Project[]>("/api/projects/");
  const [params, setParams] = useSearchParams();
  const search = params.get("q") ?? "";
  const sort = (SORTS.find((s) => s.value === params.get("sort"))?.value ?? "name") as Sort;
  const setParam = (key: string, value: string) =>
    setParams(
      (old) => {
        const next = new URLSearchParams(old);
        if (value) next.set(key, value);
        else next.delete(key);
        return next;
      },
      { replace: true },
    );
  const shown = projects.data ? shownProjects(projects.data, search, sort) : [];

  return (
    <section className="page">
      <h1>Projects</h1>
      {projects.error && <ErrorNote error={projects.error} />}
      {projects.loading && !projects.data && <p aria-busy="true">Loading…</p>}
      {projects.data && projects.data.length === 0 && (
        <p className="muted">
          You are not a member of any project yet. Ask a project admin to add you.
        </p>
      )}
      {projects.data && projects.data.length > 0 && (
        <form className="filters" role="search" aria-label="Find projects" onSubmit={(e) => e.preventDefault()}>
          <label>
            Search
            <input type="search" value={search} onChange={(e) => setParam("q", e.target.value)} placeholder="name or description" />
          </label>
          <label>
            Sort by
            <select value={sort} onChange={(e) => setParam("sort", e.target.value === "name" ? "" : e.target.value)}>
              {SORTS.map((s) => (
                <option key={s.value} value={s.value}>
                  {s.title}
                </option>
              ))}
            </select>
          </label>
          <p className="muted small" role="status" data-testid="project-count">
            {shown.length} of {projects.data.length} projects
          </p>
        </form>
      )}
      <ul className="project-list">
        {shown.map((project) => (
          <ProjectCard key={project.id} project={project} />
        ))}
      </ul>
      {me.is_staff && <CreateProject />}
    </section>
  );
}

function ProjectCard({ project }: { project: Project }) {
  const labeled = project.labeled_count ?? 0;
  const percent = Math.round(progressOf(project) * 100);
  return (
    <li className="card project-card">
      <div className="project-info">
        <h2>
          <bdi>{project.name}</bdi>
        </h2>
        {project.description && (
          <p className="muted">
            <bdi>{project.description}</bdi>
          </p>
        )}
        <p className="small muted">
          {project.image_count.toLocaleString()} images · {project.labels.length} classes · your
          role: <strong>{project.role ?? "none"}</strong>
        </p>
        {project.image_count > 0 && (
          <p className="small project-progress">
            <progress max={100} value={percent} aria-label={`Labeled: ${percent}%`} />
            <span>
              {labeled.toLocaleString()} labeled ({percent}%)
            </span>
          </p>
        )}
      </div>
      <div className="actions">
        {canLabel(project.role) && (
          <Link className="btn btn-primary" to={`/projects/${project.id}/label`}>
            Label
            <span className="visually-hidden"> {project.name}</span>
          </Link>
        )}
        {project.role === "admin" && (
          <Link className="btn" to={`/projects/${project.id}/admin`}>
            Dashboard
            <span className="visually-hidden"> of {project.name}</span>
          </Link>
        )}
        {project.role === "reviewer" && (
          <Link className="btn" to={`/projects/${project.id}/admin/review`}>
            Review labels
            <span className="visually-hidden"> of {project.name}</span>
          </Link>
        )}
      </div>
    </li>
  );
}

function CreateProject() {
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [classes, setClasses] = useState("");
  const [error, setError] = useState<ApiError | null>(null);

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const labels = classes
      .split(/[\n,]/)
      .map((label) => label.trim())
      .filter(Boolean);
    try {
      const project = await api<Project>("/api/projects/", {
        method: "POST",
        body: { name, labels },
      });
      navigate(`/projects/${project.id}/admin/upload`);
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  return (
    <details className="card create-project">
      <summary>New project</summary>
      <form onSubmit={onSubmit} className="form-grid">
        <label htmlFor="new-name">Name</label>
        <input id="new-name" value={name} onChange={(e) => setName(e.target.value)} required />
        <label htmlFor="new-classes">Classes</label>
        <textarea
          id="new-classes"
          rows={3}
          placeholder="cat, dog, bird (commas or one per line)"
          value={classes}
          onChange={(e) => setClasses(e.target.value)}
          required
        />
        <div />
        <div>
          <button type="submit" className="btn btn-primary">
            Create project
          </button>
          {error && <ErrorNote error={error} />}
        </div>
      </form>
    </details>
  );
}
