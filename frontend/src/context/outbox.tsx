// One outbox per logged-in user for the whole app: labels keep going out while the annotator
// looks at another page, and the header shows how many are still unsent.

import { createContext, type ReactNode, useContext, useEffect, useState, useSyncExternalStore } from "react";

import { apiRaw, type ErrorBody, onServerReachable } from "../lib/api";
import { annotationBody, classifyResponse, Outbox, type OutboxItem, type SendOutcome } from "../lib/outbox";
import { useMe } from "./auth";

const OutboxContext = createContext<Outbox | null>(null);

async function sendAnnotation(item: OutboxItem): Promise<SendOutcome> {
  const { status, body } = await apiRaw("/api/annotations/", {
    method: "POST",
    body: annotationBody(item),
  });
  const error = (body as ErrorBody | null)?.error;
  const details = error?.details as { retry_after_seconds?: number } | null | undefined;
  return classifyResponse(
    status,
    error?.code ?? null,
    error?.message ?? "",
    details?.retry_after_seconds ?? null,
  );
}

export function OutboxProvider({ children }: { children: ReactNode }) {
  const me = useMe();
  const [outbox, setOutbox] = useState<Outbox | null>(null);

  useEffect(() => {
    const box = new Outbox({
      storage: window.localStorage,
      key: `labelloop.outbox.v1.${me.username}`,
      send: sendAnnotation,
    });
    setOutbox(box);
    box.kick(); // whatever a previous page left unsent
    const offReachable = onServerReachable(() => box.networkBack());
    const online = () => box.kick();
    const visible = () => document.visibilityState === "visible" && box.networkBack();
    window.addEventListener("online", online);
    document.addEventListener("visibilitychange", visible);
    return () => {
      offReachable();
      window.removeEventListener("online", online);
      document.removeEventListener("visibilitychange", visible);
      box.dispose();
    };
  }, [me.username]);

  if (!outbox) return null;
  return <OutboxContext.Provider value={outbox}>{children}</OutboxContext.Provider>;
}

export function useOutbox(): Outbox {
  const outbox = useContext(OutboxContext);
  if (!outbox) throw new Error("useOutbox outside OutboxProvider");
  return outbox;
}

/** Re-render on every outbox change. */
export function useOutboxVersion(outbox: Outbox): number {
  return useSyncExternalStore(
    (notify) => outbox.subscribe(notify),
    () => outbox.version,
  );
}
