// Session auth: the SPA logs in through POST /api/auth/login/ (Django sets the session cookie)
// and asks GET /api/auth/me/ who is logged in (401: nobody).

import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { Navigate, useLocation } from "react-router";

import { api, ApiError, type Me, onUnauthorized } from "../lib/api";

interface AuthState {
  me: Me | null;
  checked: boolean; // the first /api/auth/me/ has answered
  login(username: string, password: string): Promise<Me>;
  logout(): Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

/**
 * Django writes who is logged in into the page (<script id="labelloop-me">): null when nobody.
 * undefined when the page did not come from Django (`npm run dev`): then ask the API.
 */
function userFromPage(): Me | null | undefined {
  const script = document.getElementById("labelloop-me");
  if (!script) return undefined;
  try {
    return JSON.parse(script.textContent ?? "null") as Me | null;
  } catch {
    return undefined;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [initial] = useState(userFromPage);
  const [me, setMe] = useState<Me | null>(initial ?? null);
  const [checked, setChecked] = useState(initial !== undefined);

  useEffect(() => {
    let live = true;
    if (initial === undefined) {
      api<Me>("/api/auth/me/")
        .then((who) => live && setMe(who))
        .catch((error) => {
          if (!(error instanceof ApiError) || error.status !== 401) console.warn(error);
        })
        .finally(() => live && setChecked(true));
    }
    const off = onUnauthorized(() => setMe(null));
    return () => {
      live = false;
      off();
    };
  }, [initial]);

  const login = useCallback(async (username: string, password: string) => {
    const who = await api<Me>("/api/auth/login/", {
      method: "POST",
      body: { username, password },
    });
    setMe(who);
    return who;
  }, []);

  const logout = useCallback(async () => {
    await api("/api/auth/logout/", { method: "POST" });
    setMe(null);
  }, []);

  return (
    <AuthContext.Provider value={{ me, checked, login, logout }}>{children}</AuthContext.Provider>
  );
}

export function useAuth(): AuthState {
  const state = useContext(AuthContext);
  if (!state) throw new Error("useAuth outside AuthProvider");
  return state;
}

/** The logged-in user; only inside RequireAuth. */
export function useMe(): Me {
  const { me } = useAuth();
  if (!me) throw new Error("useMe outside RequireAuth");
  return me;
}

export function RequireAuth({ children }: { children: ReactNode }) {
  const { me, checked } = useAuth();
  const location = useLocation();
  if (!checked) return <p className="page-loading">Loading…</p>;
  if (!me) {
    const next = location.pathname + location.search;
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />;
  }
  return <>{children}</>;
}
