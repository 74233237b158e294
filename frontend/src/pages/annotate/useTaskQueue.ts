// The annotator's queue as React state: tasks leased and their images decoded ahead of the one
// on screen (lib/taskQueue.ts does the leasing and prefetching), and what labeling, skipping
// and undoing do to it. Each command answers with the line the status bar shows.

import { useEffect, useLayoutEffect, useRef, useState } from "react";

import { api, apiRaw, type Project, type Task } from "../../lib/api";
import type { Outbox } from "../../lib/outbox";
import { type Preloaded, type QueueTask, type RenewResult, TaskQueue, type TaskSource } from "../../lib/taskQueue";

const LOOKAHEAD = 8; // tasks kept leased and decoded ahead of the one on screen
const HISTORY = 20; // labels that Z can walk back through

/** Fetch an image and decode it, so that showing it needs neither network nor decoding. */
export async function decodeImage(task: Task): Promise<Preloaded> {
  const response = await fetch(task.file_url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`image ${task.image}: HTTP ${response.status}`);
  const src = URL.createObjectURL(await response.blob());
  const image = new Image();
  image.src = src;
  try {
    await image.decode();
  } catch (error) {
    URL.revokeObjectURL(src);
    throw error;
  }
  return { src, width: image.naturalWidth, height: image.naturalHeight };
}

/** Give a lease back: a skip (not served to me again for a while), or just the lease. Sent
 * with keepalive, so that the releases of a closing tab still arrive. */
export async function releaseLease(image: number, skip = true): Promise<void> {
  await apiRaw(`/api/tasks/${image}/release/`, { method: "POST", body: { skip }, keepalive: true });
}

/** An effect's cleanup that calls `leave` (give the leases back): when the effect ends (the
 * user went to another page of the app) or the tab closes, reloads or goes to another site
 * (pagehide). A page the browser brings back from its back-forward cache is reloaded: its
 * leases were given back. */
export function leavingWith(leave: () => void): () => void {
  const restored = (event: PageTransitionEvent) => {
    if (event.persisted) window.location.reload();
  };
  window.addEventListener("pagehide", leave);
  window.addEventListener("pageshow", restored);
  return () => {
    window.removeEventListener("pagehide", leave);
    window.removeEventListener("pageshow", restored);
    leave();
  };
}

export async function renewLease(image: number): Promise<RenewResult> {
  const { status } = await apiRaw(`/api/tasks/${image}/renew/`, { method: "POST" });
  if (status === 200) return "ok";
  return status === 409 || status === 404 || status === 403 ? "lost" : "error";
}

function browserSource(projectId: number): TaskSource {
  return {
    next: (count) =>
      api<Task[]>(`/api/projects/${projectId}/tasks/next/`, { method: "POST", body: { count } }),
    renew: renewLease,
    release: (image, skip) => releaseLease(image, skip),
    preload: decodeImage,
    discard: (src) => URL.revokeObjectURL(src),
  };
}

/** Labels of this project still in the outbox (their leases are still held). */
export function pendingFor(outbox: Outbox, projectId: number): number {
  return outbox.pending().filter((item) => item.project === projectId).length;
}

interface Done {
  task: QueueTask;
  label: string;
}

export interface TaskQueueState {
  queue: TaskQueue | null; // null until the first effect has made it
  current: QueueTask | null; // the task on screen
  ready: number; // tasks whose image is decoded
  /** Label the task on screen and show the next; null: there is no task on screen. */
  label(name: string): string | null;
  /** Skip the task on screen; null: there is no task on screen. */
  skip(): string | null;
  /** Bring the last labeled task back on screen, to change its label. */
  undo(): string;
}

export function useTaskQueue(project: Project, outbox: Outbox, onNewLabel: () => void): TaskQueueState {
  const [queue, setQueue] = useState<TaskQueue | null>(null);
  const [, setVersion] = useState(0);
  const labeledHere = useRef(new Set<number>());
  const history = useRef<Done[]>([]);
  const shownAt = useRef(performance.now());

  useEffect(() => {
    const created = new TaskQueue({
      source: browserSource(project.id),
      lookahead: LOOKAHEAD,
      lowWater: LOOKAHEAD - 2,
      leaseSeconds: project.lease_seconds,
      pendingCount: () => pendingFor(outbox, project.id),
      isHandled: (image) => labeledHere.current.has(image) || outbox.handled(image),
      onChange: () => setVersion((n) => n + 1),
    });
    setQueue(created);
    created.start();
    // Leaving the annotator (another page of the app, or the tab closing) gives back the leases
    // of the images not labeled, at once, instead of after lease_seconds.
    return leavingWith(() => created.releaseAll());
  }, [project.id, project.lease_seconds, outbox]);

  const current = queue?.current() ?? null;
  const ready = queue ? queue.tasks.filter((task) => task.src !== null).length : 0;

  // The clock for duration_ms starts when the image is on screen, not when it was leased.
  useLayoutEffect(() => {
    shownAt.current = performance.now();
  }, [current?.image, current?.src]);

  function label(name: string): string | null {
    const task = queue?.current();
    if (!queue || !task) return null;
    if (!task.src) return "The image is still loading.";
    const durationMs = Math.round(performance.now() - shownAt.current);
    const entry = { project: project.id, image: task.image, label: name, durationMs };
    let said: string;
    if (task.previousLabel !== null) {
      outbox.relabel(entry);
      said = `Image ${task.image}: “${task.previousLabel}” changed to “${name}”.`;
      task.previousLabel = null;
    } else {
      outbox.enqueue(entry);
      onNewLabel();
      said = `Image ${task.image}: “${name}”.`;
    }
    labeledHere.current.add(task.image);
    history.current.push({ task, label: name });
    if (history.current.length > HISTORY) {
      const old = history.current.shift()!;
      if (old.task.src && !queue.tasks.includes(old.task)) URL.revokeObjectURL(old.task.src);
    }
    queue.take();
    return said;
  }

  function skip(): string | null {
    const task = queue?.current();
    if (!queue || !task) return null;
    queue.skip();
    return `Skipped image ${task.image}.`;
  }

  function undo(): string {
    const last = history.current.pop();
    if (!last) return "Nothing to undo.";
    last.task.previousLabel = last.label;
    queue?.putBack(last.task);
    return `Undo: image ${last.task.image} was “${last.label}”. Press its new class.`;
  }

  return { queue, current, ready, label, skip, undo };
}
