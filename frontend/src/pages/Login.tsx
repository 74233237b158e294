import { type FormEvent, useEffect, useRef, useState } from "react";
import { Navigate, useNavigate, useSearchParams } from "react-router";

import { useAuth } from "../context/auth";
import { asApiError } from "../lib/api";

/** Only same-site paths: ?next=https://evil.example must not become an open redirect. */
function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function Login() {
  const { me, checked, login } = useAuth();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const userField = useRef<HTMLInputElement>(null);
  const next = safeNext(params.get("next"));

  useEffect(() => {
    document.title = "Log in · LabelLoop";
    userField.current?.focus();
  }, []);

  if (checked && me) return <Navigate to={next} replace />;

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username, password);
      navigate(next, { replace: true });
    } catch (caught) {
      setError(asApiError(caught).message);
      setBusy(false);
    }
  }

  return (
    <main className="login-page" id="main">
      <form className="login-card" onSubmit={onSubmit} aria-labelledby="login-title">
        <h1 id="login-title">
          <img src="/static/favicon.svg" alt="" width="28" height="28" /> LabelLoop
        </h1>
        <p className="muted">Log in to label images or run a project.</p>
        <label htmlFor="username">Username</label>
        <input
          id="username"
          ref={userField}
          name="username"
          autoComplete="username"
          value={username}
          onChange={(event) => setUsername(event.target.value)}
          required
        />
        <label htmlFor="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          required
        />
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
        <p className="muted small">
          Staff: the Django admin is at <a href="/admin/">/admin/</a>.
        </p>
      </form>
    </main>
  );
}
