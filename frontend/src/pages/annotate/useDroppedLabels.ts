import { useEffect } from "react";

import type { Outbox } from "../../lib/outbox";

/** The last few labels of this project the server refused; their arrival re-reads the project. */
export function useDroppedLabels(outbox: Outbox, projectId: number, reload: () => void) {
  const droppedHere = outbox.dropped().filter((item) => item.project === projectId);
  // A label the server refused may name a class that is gone: re-read the classes at once.
  const droppedCount = droppedHere.length;
  useEffect(() => {
    if (droppedCount > 0) reload();
  }, [droppedCount, reload]);
  return droppedHere.slice(-3);
}
