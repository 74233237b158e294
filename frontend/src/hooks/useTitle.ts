import { useEffect } from "react";

/** The browser tab's title: the page's, then the product's. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · LabelLoop` : "LabelLoop";
  }, [title]);
}
