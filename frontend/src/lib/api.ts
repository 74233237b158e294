// The REST API from the browser: same origin, session cookie, CSRF header on writes.
// Errors always arrive as {"error": {"code", "message", "details"}} (DESIGN.md §5).

export class ApiError extends Error {
  constructor(
    readonly status: number, // 0: no answer (network down, request aborted)
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** What a catch block caught, as an ApiError: itself, or anything else thrown as status 0. */
export function asApiError(caught: unknown): ApiError {
  return caught instanceof ApiError ? caught : new ApiError(0, "error", String(caught));
}

type Listener = () => void;
const onlineListeners = new Set<Listener>();
const unauthorizedListeners = new Set<Listener>();

/** Called after any answer from the server: the network works (the outbox retries at once). */
export function onServerReachable(listener: Listener): () => void {
  onlineListeners.add(listener);
  return () => onlineListeners.delete(listener);
}

/** Called on a 401: the session ended. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function csrfToken(): string {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export interface RequestOptions {
  method?: string;
  body?: unknown; // JSON-encoded unless FormData
  signal?: AbortSignal;
  keepalive?: boolean; // the request outlives the page (sent while the tab closes)
}

/** The raw answer: status and parsed body, errors included. Network failure gives status 0. */
export async function apiRaw(
  path: string,
  options: RequestOptions = {},
): Promise<{ status: number; body: unknown; headers: Headers | null }> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  let body: BodyInit | undefined;
  if (options.body instanceof FormData) {
    body = options.body;
  } else if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers["X-CSRFToken"] = csrfToken();
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body,
      credentials: "same-origin",
      signal: options.signal,
      keepalive: options.keepalive,
    });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    return { status: 0, body: null, headers: null };
  }
  for (const listener of onlineListeners) listener();
  if (response.status === 401) for (const listener of unauthorizedListeners) listener();
  let parsed: unknown = null;
  if (response.status !== 204) {
    const text = await response.text();
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

export interface ErrorBody {
  error?: { code?: string; message?: string; details?: unknown };
}

export function errorOf(status: number, body: unknown): ApiError {
  if (status === 0) return new ApiError(0, "network", "The server cannot be reached.");
  const error = (body as ErrorBody | null)?.error;
  return new ApiError(
    status,
    error?.code ?? `http_${status}`,
    error?.message ?? `The server answered ${status}.`,
    error?.details ?? null,
  );
}

/** JSON from the API, or an ApiError. */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const { status, body } = await apiRaw(path, options);
  if (status >= 200 && status < 300) return body as T;
  throw errorOf(status, body);
}

/** Like api(), but null for a 404: for endpoints that may not exist yet on this server. */
export async function apiOptional<T>(path: string): Promise<T | null> {
  try {
    return await api<T>(path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/** Multipart upload with progress (fetch cannot report upload progress; XHR can). */
export function uploadWithProgress<T>(
  path: string,
  form: FormData,
  onProgress: (fraction: number) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.withCredentials = true;
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onerror = () => reject(errorOf(0, null));
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        body = xhr.responseText;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body as T);
      } else {
        reject(errorOf(xhr.status, body));
      }
    };
    xhr.send(form);
  });
}

// --- The shapes the views use (DESIGN.md §5 and the API's serializers) ---
import type { BackboneRef } from "./backboneTypes";
export type { Backbone, BackboneRef, Probe, ProbeScore } from "./backboneTypes";

export type Role = "admin" | "reviewer" | "annotator" | "viewer";

/** Who may review suspect labels and see annotator quality: reviewers and admins. */
export function canReview(role: Role | null | undefined): boolean {
  return role === "admin" || role === "reviewer";
}

/** Who may label images: everyone from annotator up. */
export function canLabel(role: Role | null | undefined): boolean {
  return role === "annotator" || canReview(role);
}

export interface Me {
  username: string;
  is_staff: boolean;
}

export interface Project {
  id: number;
  name: string;
  slug: string;
  description: string;
  labels: string[];
  /** Every class rename, oldest first, as [old, new]. */
  label_renames?: [string, string][];
  input_size: number;
  input_channels: number;
  annotations_per_image: number;
  strategy: string;
  retrain_every: number;
  exploration_fraction: number;
  lease_seconds: number;
  show_suggestions?: boolean;
  // Label quality (issue 27); absent on a server from before it.
  consensus_method?: ConsensusMethod;
  gold_rate?: number; // 0..0.5: share of tasks that are gold questions
  gold_alert_accuracy?: number; // 0..1: gold accuracy below this is flagged
  // Rounds also learn from a sample of the unlabeled pool (issue 25); absent on a server from before it.
  semi_supervised?: boolean;
  image_count: number;
  labeled_count?: number | null; // in the project list only
  role: Role | null;
  created_at?: string;
}

export interface Task {
  image: number;
  file_url: string;
  name?: string; // the file name it was uploaded as
  lease_expires: string;
  suggestion: string | null;
  exploration: boolean;
}

export type ImageStatus = "unlabeled" | "partial" | "disputed" | "labeled";

export interface ImageRow {
  id: number;
  original_name: string;
  width: number;
  height: number;
  format: string;
  mode: string;
  size_bytes: number;
  status: ImageStatus;
  priority: number;
  annotation_count: number;
  consensus_label: string | null;
  agreement: number | null;
  predicted_label: string | null;
  confidence: number | null;
  uncertainty: number | null;
  file_url: string;
  created_at: string;
}

export type ConsensusMethod = "weighted" | "majority";

export interface ImageDetail extends ImageRow {
  gold_label?: string | null; // admins only: the gold question's answer; null: not gold
  annotations: {
    id: number;
    label: string;
    annotator: string;
    source: string;
    duration_ms: number | null;
    created_at: string;
  }[];
}

export interface Page<T> {
  next: string | null;
  previous: string | null;
  results: T[];
}

export interface LearningPoint {
  version?: number;
  labels: number;
  accuracy: number | null;
  random_slice_accuracy?: number | null; // set when the evaluation used the random slice
  val_source?: string | null;
  val_images?: number | null; // the held-out labels the accuracy was measured on
  accuracy_interval?: [number, number] | null; // its 95% (Wilson) interval
}

export interface Stats {
  images: { total: number; by_status: Record<ImageStatus, number> };
  annotations: { total: number };
  class_balance: Record<string, number>;
  annotators: { username: string; annotations: number; last_hour: number; last_24h: number }[];
  agreement: {
    per_annotator: Record<string, { labels_with_consensus: number; agreement: number }>;
    per_class: Record<string, number | null>;
  };
  // From the active-learning loop (labeling/learning/selectors.py).
  learning_curve?: LearningPoint[];
  active_model?: {
    version: number;
    accuracy: number | null;
    val_images?: number | null;
    accuracy_interval?: [number, number] | null;
  } | null;
  uncertainty_histogram?: unknown; // [{from, to, images}]; other shapes are read too
  next_round?: { every: number; labels_until: number } | null; // null: automatic rounds off
  runs_in_progress?: number;
}

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface TrainingRun {
  id: number;
  status: RunStatus;
  stage: string | null;
  progress: number | null;
  trigger: string | null;
  lane?: "main" | "background"; // background: backbone pretraining and imports, beside rounds
  labels_snapshot: number | null;
  metrics: Record<string, unknown> | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  model_version: number | null;
  // A queued run: why it waits (its place in the lane's line, what runs); null otherwise.
  wait?: {
    reason: "project_busy" | "worker_busy" | "no_worker" | "starting";
    position: number;
    ahead: number;
    running_elsewhere: number;
    waited_seconds: number;
    message: string;
  } | null;
}

export interface ModelVersion {
  id: number;
  number: number;
  metrics: {
    accuracy?: number | null;
    per_class?: Record<string, unknown> | null;
    confusion?: number[][] | null;
    classes?: string[] | null; // the model's classes, the confusion matrix's order
    ece?: number | null;
    n_val?: number | null; // the held-out labels the accuracy was measured on
    trained?: string | null; base_version?: number | null; // a head, or fine-tuned from v...
    shortcut_check?: ShortcutCheck | null; // where its evidence lies (training/explain.py)
  } | null;
  labels_used: number | null;
  created_at: string;
  is_active: boolean;
  backbone?: BackboneRef | null; // the backbone its head was fitted on; null: from scratch
}

/** Per class, the share of the activation-map mass of its surest images on the border band. */
export interface ShortcutCheck {
  band: number; // the border band's width, a fraction of the side on each edge
  threshold: number; // a class is flagged above this median share
  per_class: Record<
    string,
    { images: number; border_share: number; mean_confidence: number; flagged: boolean }
  >;
  flagged: string[];
  max_border_share: number | null;
}

export interface UploadResult {
  name: string;
  status: "created" | "duplicate" | "rejected";
  reason: string | null;
  image: number | null;
  sha256: string | null;
  label: string | null;
}

export interface UploadReport {
  summary: Record<string, number>;
  results: UploadResult[];
}

export interface Member {
  username: string;
  role: Role;
  created_at: string;
}

/** A list endpoint may answer a plain list or a page; both become a list. */
export function listOf<T>(body: T[] | Page<T> | null): T[] {
  if (body === null) return [];
  return Array.isArray(body) ? body : body.results;
}
