// What changed in a project's classes while an annotator had the page open: an admin renamed,
// added or removed a class. The annotator view re-reads the project and says so, because a
// class key can change its meaning (renaming "3" to "three" on MNIST turns the digit keys from
// "each class's own name" into "1-9, 0 in class order", so 1 would then mean "0").

import { classKeys } from "./hotkeys";

export interface Classes {
  labels: readonly string[];
  renames: readonly (readonly [string, string])[]; // [old, new], oldest first
}

export interface ClassChange {
  renamed: [string, string][]; // [name on screen before, name now]
  added: string[];
  removed: string[];
  /** Keys that meant one class before and another (or none) now. */
  rebound: string[];
}

/** `name` after the renames ([old, new] pairs, oldest first): the server's follow_renames. */
function followRenames(name: string, renames: Classes["renames"]): string {
  let current = name;
  for (const [old, renamed] of renames) if (current === old) current = renamed;
  return current;
}

/**
 * The class a name means now: itself while a class has that name, else the name renames gave
 * it, else null (the class was removed). The server's label_resolve, for names the page
 * holds from before (a task's suggestion, the label being changed).
 */
export function currentName(name: string, classes: Classes): string | null {
  if (classes.labels.includes(name)) return name;
  const renamed = followRenames(name, classes.renames);
  return classes.labels.includes(renamed) ? renamed : null;
}

/** What changed between `before` and `after` (the same project, re-read); null: nothing. */
export function classChanges(before: Classes, after: Classes): ClassChange | null {
  // Renames are append-only: the ones after `before` was read are the tail.
  const since = after.renames.slice(before.renames.length);
  const now = new Map<string, string | null>(); // name before -> name now (null: removed)
  for (const label of before.labels) {
    const renamed = followRenames(label, since);
    now.set(label, after.labels.includes(renamed) ? renamed : null);
  }
  const renamed: [string, string][] = [];
  const removed: string[] = [];
  for (const [old, name] of now) {
    if (name === null) removed.push(old);
    else if (name !== old) renamed.push([old, name]);
  }
  const kept = new Set(now.values());
  const added = after.labels.filter((label) => !kept.has(label));

  const keyBefore = new Map(classKeys(before.labels).map(({ label, key }) => [key, label]));
  const keyAfter = new Map(classKeys(after.labels).map(({ label, key }) => [key, label]));
  const rebound: string[] = [];
  for (const [key, label] of keyBefore) {
    if (key === null) continue;
    if ((keyAfter.get(key) ?? null) !== now.get(label)) rebound.push(key);
  }
  if (renamed.length + added.length + removed.length + rebound.length === 0) return null;
  return { renamed, added, removed, rebound };
}
