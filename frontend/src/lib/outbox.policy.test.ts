import { describe, expect, it } from "vitest";

import { backoffDelay, classifyResponse, uuid4 } from "./outbox";

describe("backoffDelay", () => {
  it("doubles after each failure, with jitter between half and all of the step", () => {
    const policy = { baseMs: 500, maxMs: 15_000 };
    expect(backoffDelay(1, policy, () => 0)).toBe(250);
    expect(backoffDelay(1, policy, () => 1)).toBe(500);
    expect(backoffDelay(2, policy, () => 1)).toBe(1000);
    expect(backoffDelay(4, policy, () => 1)).toBe(4000);
  });

  it("never waits longer than the ceiling", () => {
    expect(backoffDelay(30, { baseMs: 500, maxMs: 15_000 }, () => 1)).toBe(15_000);
    expect(backoffDelay(1000, { baseMs: 500, maxMs: 15_000 }, () => 0.999)).toBeLessThanOrEqual(
      15_000,
    );
  });
});

describe("classifyResponse", () => {
  it("counts 200 (a replay) and 201 as sent", () => {
    expect(classifyResponse(201).kind).toBe("sent");
    expect(classifyResponse(200).kind).toBe("sent");
  });

  it("retries when the network or the server failed", () => {
    expect(classifyResponse(0)).toMatchObject({ kind: "retry", offline: true });
    for (const status of [401, 408, 500, 502, 503, 504]) {
      expect(classifyResponse(status).kind).toBe("retry");
    }
  });

  it("honours the server's retry-after on 429", () => {
    expect(classifyResponse(429, "throttled", "slow down", 7)).toMatchObject({
      kind: "retry",
      retryAfterMs: 7000,
    });
  });

  it("drops what sending again cannot fix, keeping the reason", () => {
    expect(classifyResponse(409, "not_needed", "already labeled")).toEqual({
      kind: "drop",
      error: "already labeled",
      code: "not_needed",
    });
    for (const status of [400, 403, 404]) expect(classifyResponse(status).kind).toBe("drop");
  });
});

describe("uuid4", () => {
  it("makes version-4 UUIDs the server accepts", () => {
    expect(uuid4()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
