import { NavLink, useParams } from "react-router";

import { ErrorNote } from "../../components/ErrorNote";
import { useProject } from "../../hooks/useResource";
import { canReview, type Role } from "../../lib/api";
import { useTitle } from "../../hooks/useTitle";
import { NotFound } from "../NotFound";
import { ExportTab } from "./ExportTab";
import { ImagesTab } from "./ImagesTab";
import { MapTab } from "./MapTab";
import { Members } from "./Members";
import { ModelTab } from "./ModelTab";
import { OverviewTab } from "./OverviewTab";
import { ReviewTab } from "./ReviewTab";
import { SettingsTab } from "./SettingsTab";
import { UploadTab } from "./UploadTab";
import { WebhooksTab } from "./WebhooksTab";

// Who sees each tab: admins all of them; reviewers the overview and the review queue.
const TABS = [
  { id: "overview", title: "Overview", roles: ["admin", "reviewer"] },
  { id: "review", title: "Review", roles: ["admin", "reviewer"] },
  { id: "model", title: "Model", roles: ["admin"] },
  { id: "images", title: "Images", roles: ["admin"] },
  { id: "map", title: "Map", roles: ["admin"] },
  { id: "upload", title: "Upload", roles: ["admin"] },
  { id: "members", title: "Members", roles: ["admin"] },
  { id: "export", title: "Export", roles: ["admin"] },
  { id: "webhooks", title: "Webhooks", roles: ["admin"] },
  { id: "settings", title: "Settings", roles: ["admin"] },
] as const satisfies readonly { id: string; title: string; roles: readonly Role[] }[];

function tabsFor(role: Role | null) {
  return TABS.filter((t) => role !== null && (t.roles as readonly Role[]).includes(role));
}

export function Dashboard() {
  const { projectId, tab = "overview" } = useParams();
  const project = useProject(projectId);
  const tabs = tabsFor(project.data?.role ?? null);
  const known = TABS.find((t) => t.id === tab);
  const current = tabs.find((t) => t.id === tab) ?? TABS[0];
  useTitle(project.data ? `${known ? current.title : "Not found"} · ${project.data.name}` : "Dashboard");

  if (project.error) return <ErrorNote error={project.error} page />;
  if (!project.data) return <p className="page-loading">Loading…</p>;
  const p = project.data;
  if (!known) return <NotFound />; // a mistyped tab is not the overview
  if (!canReview(p.role)) {
    return (
      <section className="page narrow">
        <h1>{p.name}</h1>
        <p>The dashboard is for project admins and reviewers. Your role here is {p.role ?? "none"}.</p>
      </section>
    );
  }

  return (
    <section className="page dashboard">
      <header className="dashboard-head">
        <div>
          <h1>
            <bdi>{p.name}</bdi>
          </h1>
          <p className="muted small">
            {p.image_count.toLocaleString()} images · {p.labels.length} classes · strategy{" "}
            {p.strategy}
          </p>
        </div>
        <NavLink className="btn" to={`/projects/${p.id}/label`}>
          Label images
        </NavLink>
      </header>
      <nav className="tabs" aria-label="Dashboard sections">
        {tabs.map((t) => (
          <NavLink
            key={t.id}
            to={`/projects/${p.id}/admin/${t.id}`}
            className={({ isActive }) => (isActive || (t.id === "overview" && tab === "overview") ? "tab active" : "tab")}
            aria-current={t.id === current.id ? "page" : undefined}
          >
            {t.title}
          </NavLink>
        ))}
      </nav>
      <div className="tab-body">
        {current.id === "overview" && <OverviewTab project={p} />}
        {current.id === "review" && <ReviewTab project={p} />}
        {current.id === "model" && <ModelTab project={p} />}
        {current.id === "images" && <ImagesTab project={p} />}
        {current.id === "map" && <MapTab project={p} />}
        {current.id === "upload" && <UploadTab project={p} onUploaded={project.reload} />}
        {current.id === "members" && <Members project={p} />}
        {current.id === "export" && <ExportTab project={p} />}
        {current.id === "webhooks" && <WebhooksTab project={p} />}
        {current.id === "settings" && <SettingsTab project={p} onSaved={project.reload} />}
      </div>
    </section>
  );
}
