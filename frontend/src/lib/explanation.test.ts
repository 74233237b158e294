import { afterEach, describe, expect, it, vi } from "vitest";

import {
  explanationHeaders,
  explanationPath,
  fetchExplanation,
  retryAfterSeconds,
} from "./explanation";

describe("explanation answers", () => {
  it("asks for the active version unless one is named", () => {
    expect(explanationPath(7)).toBe("/api/images/7/explanation/");
    expect(explanationPath(7, 3)).toBe("/api/images/7/explanation/?version=3");
  });

  it("reads the class, probability and version from the headers", () => {
    const headers = new Headers({
      "X-Explained-Class": encodeURIComponent("chat noir"),
      "X-Explained-Probability": "0.973100",
      "X-Model-Version": "4",
      "X-Border-Share": "0.1200",
    });
    expect(explanationHeaders(headers)).toEqual({
      label: "chat noir",
      probability: 0.9731,
      version: 4,
      borderShare: 0.12,
    });
  });

  it("waits as Retry-After says, within reason", () => {
    expect(retryAfterSeconds(new Headers({ "Retry-After": "2" }))).toBe(2);
    expect(retryAfterSeconds(new Headers({ "Retry-After": "600" }))).toBe(10);
    expect(retryAfterSeconds(new Headers())).toBe(1);
    expect(retryAfterSeconds(new Headers({ "Retry-After": "soon" }))).toBe(1);
  });
});

describe("fetchExplanation", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it("comes back after a 202 and returns the PNG with what it explains", async () => {
    vi.useFakeTimers();
    const answers = [
      new Response(JSON.stringify({ status: "pending" }), {
        status: 202,
        headers: { "Retry-After": "1" },
      }),
      new Response(new Blob([new Uint8Array([137, 80, 78, 71])]), {
        status: 200,
        headers: { "X-Explained-Class": "7", "X-Explained-Probability": "0.5", "X-Model-Version": "2" },
      }),
    ];
    const fetch = vi.fn(async () => answers.shift() as Response);
    vi.stubGlobal("fetch", fetch);
    vi.stubGlobal("URL", { ...URL, createObjectURL: () => "blob:map" });
    const pending = fetchExplanation(5);
    await vi.advanceTimersByTimeAsync(1000);
    const explanation = await pending;
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(explanation).toMatchObject({ src: "blob:map", label: "7", probability: 0.5, version: 2 });
  });

  it("throws the API's error", async () => {
    const body = { error: { code: "suggestions_hidden", message: "not here" } };
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify(body), { status: 403 }));
    await expect(fetchExplanation(5)).rejects.toMatchObject({
      status: 403,
      code: "suggestions_hidden",
    });
  });
});
