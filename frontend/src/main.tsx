import "./styles.css";

import { lazy, StrictMode, Suspense } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Navigate, Route, Routes } from "react-router";

import { Layout } from "./components/Layout";
import { AuthProvider, RequireAuth } from "./context/auth";
import { OutboxProvider } from "./context/outbox";
import { Annotate } from "./pages/annotate/Annotate";
import { Login } from "./pages/Login";
import { NotFound } from "./pages/NotFound";
import { ProjectHome } from "./pages/ProjectHome";
import { Projects } from "./pages/Projects";

// The dashboard (and Chart.js with it) loads only for admins who open it: the annotator's
// page stays small.
const Dashboard = lazy(() =>
  import("./pages/dashboard/Dashboard").then((module) => ({ default: module.Dashboard })),
);
const dashboard = (
  <Suspense fallback={<p className="page-loading">Loading…</p>}>
    <Dashboard />
  </Suspense>
);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <BrowserRouter>
      <AuthProvider>
        <Routes>
          <Route path="/login" element={<Login />} />
          <Route
            element={
              <RequireAuth>
                <OutboxProvider>
                  <Layout />
                </OutboxProvider>
              </RequireAuth>
            }
          >
            <Route index element={<Projects />} />
            <Route path="projects" element={<Navigate to="/" replace />} />
            <Route path="projects/:projectId" element={<ProjectHome />} />
            <Route path="projects/:projectId/label" element={<Annotate />} />
            <Route path="projects/:projectId/admin" element={dashboard} />
            <Route path="projects/:projectId/admin/:tab" element={dashboard} />
            <Route path="*" element={<NotFound />} />
          </Route>
        </Routes>
      </AuthProvider>
    </BrowserRouter>
  </StrictMode>,
);
