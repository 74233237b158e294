// The annotator's keyboard: class keys 1-9, 0, then letters; the rest are commands.
//
// Letters that are commands (s = skip, z = undo, h = the heat map, m = more like this, g = the
// grid on and off) are
// never given to a class, so a project with many classes never shadows a command. Classes
// past the last free key get no hotkey (their button still works).

export const COMMAND_KEYS = {
  accept: "Enter",
  skip: "s",
  undo: "z",
  map: "h", // the model's activation map over the image, on and off
  similar: "m", // the images most like this one
  grid: "g", // grid labeling (a page of alike images) on and off
  help: "?",
} as const;

const DIGIT_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];
const RESERVED_LETTERS: ReadonlySet<string> = new Set([
  COMMAND_KEYS.skip,
  COMMAND_KEYS.undo,
  COMMAND_KEYS.map,
  COMMAND_KEYS.similar,
  COMMAND_KEYS.grid,
]);
const LETTER_KEYS = "abcdefghijklmnopqrstuvwxyz"
  .split("")
  .filter((letter) => !RESERVED_LETTERS.has(letter));

/** Every key a class can have, in the order classes get them. */
export const CLASS_KEYS: readonly string[] = [...DIGIT_KEYS, ...LETTER_KEYS];

export interface ClassKey {
  label: string;
  key: string | null; // null: more classes than keys
}

/**
 * The hotkey of each class, in the project's class order: 1-9, 0, then letters.
 *
 * One exception: when every class is named by a single character that can be a class key
 * (digits 0-9, letters a-z), each class gets its own name as its key. On MNIST, pressing 3
 * must mean "3", not the fourth class (which is "3" shifted by one: a trap, not a shortcut).
 */
export function classKeys(labels: readonly string[]): ClassKey[] {
  const names = labels.map((label) => label.toLowerCase());
  const selfNamed =
    names.length > 0 &&
    names.every((name) => name.length === 1 && CLASS_KEYS.includes(name)) &&
    new Set(names).size === names.length;
  return labels.map((label, index) => ({
    label,
    key: selfNamed ? names[index] : (CLASS_KEYS[index] ?? null),
  }));
}

/** key -> class label, for looking a keypress up. */
export function hotkeyMap(labels: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const { label, key } of classKeys(labels)) {
    if (key !== null) map.set(key, label);
  }
  return map;
}

export type KeyAction =
  | { type: "label"; label: string }
  | { type: "accept" }
  | { type: "skip" }
  | { type: "undo" }
  | { type: "map" }
  | { type: "similar" }
  | { type: "grid" }
  | { type: "help" }
  | { type: "close" };

/** The fields of a KeyboardEvent that decide what a keypress means. */
export interface KeyPress {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
  repeat?: boolean;
}

/**
 * What a keypress means, or null when the annotator view should leave it alone (browser
 * shortcuts such as Ctrl+R, held-down keys, keys bound to nothing).
 */
export function keyAction(press: KeyPress, map: Map<string, string>): KeyAction | null {
  if (press.ctrlKey || press.metaKey || press.altKey || press.repeat) return null;
  const key = press.key;
  if (key === COMMAND_KEYS.help) return { type: "help" };
  if (key === "Escape") return { type: "close" };
  if (key === COMMAND_KEYS.accept) return { type: "accept" };
  if (key === "Backspace") return { type: "undo" };
  // Letters work with Caps Lock or Shift too.
  const lower = key.length === 1 ? key.toLowerCase() : key;
  if (lower === COMMAND_KEYS.undo) return { type: "undo" };
  if (lower === COMMAND_KEYS.skip) return { type: "skip" };
  if (lower === COMMAND_KEYS.map) return { type: "map" };
  if (lower === COMMAND_KEYS.similar) return { type: "similar" };
  if (lower === COMMAND_KEYS.grid) return { type: "grid" };
  const label = map.get(lower);
  return label === undefined ? null : { type: "label", label };
}

/** How a key is shown on a button or in the help: "1", "A", "Enter". */
export function keyCap(key: string): string {
  return key.length === 1 ? key.toUpperCase() : key;
}
