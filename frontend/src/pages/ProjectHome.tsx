import { Navigate, useParams } from "react-router";

import { ErrorNote } from "../components/ErrorNote";
import { useProject } from "../hooks/useResource";

/** /projects/:id goes where the caller's role works: admins to the dashboard. */
export function ProjectHome() {
  const { projectId } = useParams();
  const project = useProject(projectId);
  if (project.error) return <ErrorNote error={project.error} page />;
  if (!project.data) return <p className="page-loading">Loading…</p>;
  const target = project.data.role === "admin" ? "admin" : "label";
  return <Navigate to={`/projects/${projectId}/${target}`} replace />;
}
