import "./styles.css";

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Navigate, Route, Routes } from "react-router";

import { AuthProvider, RequireAuth } from "./auth";
import { Layout } from "./components/Layout";
import { OutboxProvider } from "./outboxContext";
import { Annotate } from "./pages/Annotate";
import { Dashboard } from "./pages/dashboard/Dashboard";
import { Login } from "./pages/Login";
import { NotFound } from "./pages/NotFound";
import { ProjectHome } from "./pages/ProjectHome";
import { Projects } from "./pages/Projects";

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
            <Route path="projects/:projectId/admin" element={<Dashboard />} />
            <Route path="projects/:projectId/admin/:tab" element={<Dashboard />} />
            <Route path="*" element={<NotFound />} />
          </Route>
        </Routes>
      </AuthProvider>
    </BrowserRouter>
  </StrictMode>,
);
