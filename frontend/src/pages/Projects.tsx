import { type FormEvent, useState } from "react";
import { Link, useNavigate } from "react-router";

import { ErrorNote } from "../components/ErrorNote";
import { useMe } from "../context/auth";
import { useResource } from "../hooks/useResource";
import { useTitle } from "../hooks/useTitle";
import { api, type ApiError, asApiError, canLabel, type Project } from "../lib/api";

export function Projects() {
  useTitle("Projects");
  const me = useMe();
  const projects = useResource<Project[]>("/api/projects/");

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
      <ul className="project-list">
        {projects.data?.map((project) => (
          <li key={project.id} className="card project-card">
            <div>
              <h2>{project.name}</h2>
              {project.description && <p className="muted">{project.description}</p>}
              <p className="small muted">
                {project.image_count.toLocaleString()} images · {project.labels.length} classes ·
                your role: <strong>{project.role ?? "none"}</strong>
              </p>
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
        ))}
      </ul>
      {me.is_staff && <CreateProject />}
    </section>
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
