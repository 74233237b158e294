// The project's classes, and how they changed since the annotator last acknowledged them: an
// admin's rename or new class shows as a notice until acknowledged (Esc or its button).

import { useCallback, useMemo, useState } from "react";

import type { Project } from "../../lib/api";
import { type ClassChange, type Classes, classChanges } from "../../lib/classChanges";

export function useClassChange(project: Project): {
  classes: Classes;
  change: ClassChange | null;
  acknowledge: () => void;
} {
  const { labels, label_renames: renames } = project;
  const classes = useMemo<Classes>(() => ({ labels, renames: renames ?? [] }), [labels, renames]);
  // The classes as the annotator last saw them; a change shows until acknowledged.
  const [acknowledged, setAcknowledged] = useState<Classes>(classes);
  const change = useMemo(() => classChanges(acknowledged, classes), [acknowledged, classes]);
  const acknowledge = useCallback(() => setAcknowledged(classes), [classes]);
  return { classes, change, acknowledge };
}
