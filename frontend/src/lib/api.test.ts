import { describe, expect, it } from "vitest";

import { ApiError, asApiError } from "./api";

describe("asApiError", () => {
  it("passes an ApiError through as itself", () => {
    const error = new ApiError(409, "lease_lost", "Your lease on image 7 ended.");
    expect(asApiError(error)).toBe(error);
  });

  it("turns anything else thrown into a status-0 error that keeps its text", () => {
    const error = asApiError(new TypeError("Failed to fetch"));
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 0, code: "error", message: "TypeError: Failed to fetch" });
    expect(asApiError("plain text").message).toBe("plain text");
  });
});
