import { Link, NavLink, Outlet, useNavigate } from "react-router";

import { useAuth, useMe } from "../context/auth";
import { useOutbox, useOutboxVersion } from "../context/outbox";

export function Layout() {
  const me = useMe();
  const { logout } = useAuth();
  const navigate = useNavigate();
  const outbox = useOutbox();
  useOutboxVersion(outbox);

  async function onLogout() {
    await logout();
    navigate("/login");
  }

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand" aria-label="LabelLoop: all projects">
          <img src="/static/favicon.svg" alt="" width="22" height="22" />
          LabelLoop
        </Link>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Projects
          </NavLink>
          {me.is_staff && <a href="/admin/">Django admin</a>}
          <a href="/api/docs/">API</a>
        </nav>
        <div className="topbar-right">
          {outbox.size > 0 && (
            <span
              className={`badge ${outbox.offline ? "badge-warn" : "badge-info"}`}
              title="Labels saved in this browser and not yet accepted by the server"
            >
              {outbox.size} unsent
            </span>
          )}
          <span className="whoami">
            <span className="visually-hidden">Logged in as </span>
            {me.username}
          </span>
          <button type="button" className="btn btn-quiet" onClick={onLogout}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}
