import { describe, expect, it } from "vitest";

import { classChanges, currentName } from "./classChanges";

const DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

describe("class changes while the annotator view is open", () => {
  it("is null when nothing changed", () => {
    const classes = { labels: ["cat", "dog"], renames: [] };
    expect(classChanges(classes, { labels: ["cat", "dog"], renames: [] })).toBeNull();
  });

  it("names a rename, and no key moves when classes have positional keys", () => {
    const before = { labels: ["cat", "dog"], renames: [["x", "y"]] as [string, string][] };
    const after = {
      labels: ["kitty", "dog"],
      renames: [["x", "y"], ["cat", "kitty"]] as [string, string][],
    };
    expect(classChanges(before, after)).toEqual({
      renamed: [["cat", "kitty"]],
      added: [],
      removed: [],
      rebound: [],
    });
  });

  it("finds every digit key rebound when a digit class is renamed to a word", () => {
    const after = {
      labels: DIGITS.map((d) => (d === "3" ? "three" : d)),
      renames: [["3", "three"]] as [string, string][],
    };
    const change = classChanges({ labels: DIGITS, renames: [] }, after)!;
    expect(change.renamed).toEqual([["3", "three"]]);
    // Key 1 meant "1" and now means "0" (the first class); key 0 meant "0" and now means "9".
    expect(change.rebound).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  });

  it("names added and removed classes, and a key that now means another class", () => {
    const change = classChanges(
      { labels: ["cat", "junk", "dog"], renames: [] },
      { labels: ["cat", "dog", "bird"], renames: [] },
    )!;
    expect(change.added).toEqual(["bird"]);
    expect(change.removed).toEqual(["junk"]);
    expect(change.rebound).toEqual(["2", "3"]); // 2: junk -> dog, 3: dog -> bird
  });

  it("is null after a rename there and back", () => {
    const before = { labels: ["cat"], renames: [] };
    const after = {
      labels: ["cat"],
      renames: [["cat", "kitty"], ["kitty", "cat"]] as [string, string][],
    };
    expect(classChanges(before, after)).toBeNull();
  });

  it("does not call a key rebound when its removed class leaves it unbound", () => {
    const change = classChanges(
      { labels: ["cat", "dog"], renames: [] },
      { labels: ["cat"], renames: [] },
    )!;
    expect(change).toEqual({ renamed: [], added: [], removed: ["dog"], rebound: [] });
  });
});

describe("the class a name the page holds means now", () => {
  const classes = {
    labels: ["kitty", "dog", "cat"],
    renames: [["cat", "kitty"]] as [string, string][],
  };

  it("follows renames, unless a class of that name exists again", () => {
    expect(currentName("kitty", classes)).toBe("kitty");
    expect(currentName("cat", classes)).toBe("cat"); // a class added later under the old name
    expect(currentName("dog", classes)).toBe("dog");
    expect(currentName("cat", { labels: ["kitty"], renames: classes.renames })).toBe("kitty");
  });

  it("is null for a class that is gone", () => {
    expect(currentName("bird", classes)).toBeNull();
  });
});
