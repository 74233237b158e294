import { describe, expect, it } from "vitest";

import { CLASS_KEYS, classKeys, hotkeyMap, keyAction, keyCap } from "./hotkeys";

const DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

describe("class hotkeys", () => {
  it("gives the first ten classes 1-9 then 0", () => {
    const labels = ["cat", "dog", "bird", "fish", "frog", "deer", "horse", "ship", "truck", "plane"];
    expect(classKeys(labels).map((c) => c.key)).toEqual([
      "1", "2", "3", "4", "5", "6", "7", "8", "9", "0",
    ]);
  });

  it("lets classes named by their own key keep it: on digits, 3 means 3", () => {
    expect(classKeys(DIGITS).map((c) => c.key)).toEqual(DIGITS);
    expect(hotkeyMap(DIGITS).get("3")).toBe("3");
    expect(classKeys(["A", "b", "7"]).map((c) => c.key)).toEqual(["a", "b", "7"]);
  });

  it("falls back to positions when any class cannot have its own name as key", () => {
    // "s" is the skip key; "10" is two characters; duplicates after lower-casing clash.
    expect(classKeys(["r", "s"]).map((c) => c.key)).toEqual(["1", "2"]);
    expect(classKeys(["g", "h"]).map((c) => c.key)).toEqual(["1", "2"]); // g: the grid, h: the map
    expect(classKeys(["9", "10"]).map((c) => c.key)).toEqual(["1", "2"]);
    expect(classKeys(["a", "A"]).map((c) => c.key)).toEqual(["1", "2"]);
  });

  it("continues with letters, never the command letters s, z, h, m and g", () => {
    const labels = Array.from({ length: 32 }, (_, i) => `class${i}`);
    const keys = classKeys(labels).map((c) => c.key);
    expect(keys.slice(10, 14)).toEqual(["a", "b", "c", "d"]);
    expect(keys.slice(15, 17)).toEqual(["f", "i"]);
    expect(keys).not.toContain("s");
    expect(keys).not.toContain("z");
    expect(keys).not.toContain("h");
    expect(keys).not.toContain("m");
    expect(keys).not.toContain("g");
    expect(new Set(keys).size).toBe(32);
  });

  it("leaves classes past the last key without one", () => {
    const labels = Array.from({ length: CLASS_KEYS.length + 2 }, (_, i) => `c${i}`);
    const keys = classKeys(labels);
    expect(keys.at(-1)).toEqual({ label: `c${CLASS_KEYS.length + 1}`, key: null });
    expect(hotkeyMap(labels).size).toBe(CLASS_KEYS.length);
  });

  it("maps a key to its class in the project's order", () => {
    const map = hotkeyMap(["cat", "dog", "bird"]);
    expect(map.get("1")).toBe("cat");
    expect(map.get("3")).toBe("bird");
    expect(map.get("4")).toBeUndefined();
  });
});

describe("keyAction", () => {
  const map = hotkeyMap(Array.from({ length: 12 }, (_, i) => `c${i}`));

  it("labels with a class key", () => {
    expect(keyAction({ key: "1" }, map)).toEqual({ type: "label", label: "c0" });
    expect(keyAction({ key: "0" }, map)).toEqual({ type: "label", label: "c9" });
    expect(keyAction({ key: "a" }, map)).toEqual({ type: "label", label: "c10" });
  });

  it("reads letters with Shift or Caps Lock the same", () => {
    expect(keyAction({ key: "B" }, map)).toEqual({ type: "label", label: "c11" });
    expect(keyAction({ key: "S" }, map)).toEqual({ type: "skip" });
  });

  it("knows the commands", () => {
    expect(keyAction({ key: "Enter" }, map)).toEqual({ type: "accept" });
    expect(keyAction({ key: "s" }, map)).toEqual({ type: "skip" });
    expect(keyAction({ key: "z" }, map)).toEqual({ type: "undo" });
    expect(keyAction({ key: "Backspace" }, map)).toEqual({ type: "undo" });
    expect(keyAction({ key: "?" }, map)).toEqual({ type: "help" });
    expect(keyAction({ key: "h" }, map)).toEqual({ type: "map" });
    expect(keyAction({ key: "H" }, map)).toEqual({ type: "map" });
    expect(keyAction({ key: "m" }, map)).toEqual({ type: "similar" });
    expect(keyAction({ key: "M" }, map)).toEqual({ type: "similar" });
    expect(keyAction({ key: "g" }, map)).toEqual({ type: "grid" });
    expect(keyAction({ key: "G" }, map)).toEqual({ type: "grid" });
    expect(keyAction({ key: "Escape" }, map)).toEqual({ type: "close" });
  });

  it("leaves browser shortcuts and held-down keys alone", () => {
    expect(keyAction({ key: "r", ctrlKey: true }, map)).toBeNull();
    expect(keyAction({ key: "1", metaKey: true }, map)).toBeNull();
    expect(keyAction({ key: "1", altKey: true }, map)).toBeNull();
    expect(keyAction({ key: "1", repeat: true }, map)).toBeNull();
  });

  it("ignores keys bound to nothing", () => {
    expect(keyAction({ key: "x" }, map)).toBeNull();
    expect(keyAction({ key: "ArrowLeft" }, map)).toBeNull();
    expect(keyAction({ key: "F5" }, map)).toBeNull();
  });
});

describe("keyCap", () => {
  it("shows letters in capitals and named keys as they are", () => {
    expect(keyCap("a")).toBe("A");
    expect(keyCap("1")).toBe("1");
    expect(keyCap("Enter")).toBe("Enter");
  });
});
