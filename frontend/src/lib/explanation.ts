// Class-activation maps: GET /api/images/{id}/explanation/?version= answers 202 while a worker
// draws the map (come back after Retry-After seconds), then the map as a PNG with the class it
// explains in headers (docs/api.md, "Explanations").

import { errorOf } from "./api";

export interface Explanation {
  src: string; // an object URL of the PNG: revoke it when done
  label: string; // the class the map explains (the model's prediction)
  probability: number; // the model's probability of that class
  version: number; // the model version that drew it
  borderShare: number; // the share of the map's mass in the image's border band
}

// Polls at most this many times (a worker draws a batch in well under a second; a missing
// worker is a 503 after LABELLOOP_PREDICT_TIMEOUT, which ends the wait sooner).
const MAX_POLLS = 60;

export function explanationPath(imageId: number, version?: number | null): string {
  const query = version ? `?version=${version}` : "";
  return `/api/images/${imageId}/explanation/${query}`;
}

/** What the headers of a 200 say about the map. */
export function explanationHeaders(headers: Headers): Omit<Explanation, "src"> {
  const number = (name: string) => Number(headers.get(name) ?? "NaN");
  return {
    label: decodeURIComponent(headers.get("X-Explained-Class") ?? ""),
    probability: number("X-Explained-Probability"),
    version: number("X-Model-Version"),
    borderShare: number("X-Border-Share"),
  };
}

/** Seconds to wait before asking again, from a 202's Retry-After (1 when absent or odd). */
export function retryAfterSeconds(headers: Headers): number {
  const seconds = Number(headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 10) : 1;
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

/** The map of an image by a version (the active one by default), once a worker drew it. */
export async function fetchExplanation(
  imageId: number,
  options: { version?: number | null; signal?: AbortSignal } = {},
): Promise<Explanation> {
  const path = explanationPath(imageId, options.version);
  for (let poll = 0; poll < MAX_POLLS; poll++) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { Accept: "image/png, application/json" },
      signal: options.signal,
    });
    if (response.status === 202) {
      await pause(retryAfterSeconds(response.headers) * 1000, options.signal);
      continue;
    }
    if (response.ok) {
      const src = URL.createObjectURL(await response.blob());
      return { src, ...explanationHeaders(response.headers) };
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    throw errorOf(response.status, body);
  }
  throw errorOf(503, { error: { message: "No worker drew the map; try again later." } });
}
