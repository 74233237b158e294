import { useRef } from "react";

/** The latest value in a ref, for event handlers registered once. */
export function useLatest<T>(value: T) {
  const ref = useRef(value);
  ref.current = value;
  return ref;
}
