// One row of a `.form-grid` form: the label in the first column; the control, with its help
// text under it when it has one, in the second. The control gets the id the label points at
// and, with help, an aria-describedby that points at the help (screen readers read it after
// the control's name).

import type { ReactNode } from "react";

export interface FieldControl {
  id: string;
  "aria-describedby"?: string;
}

export function Field({
  id,
  label,
  help,
  children,
}: {
  id: string;
  label: string;
  help?: ReactNode;
  children: (control: FieldControl) => ReactNode; // spread it on the input, select or textarea
}) {
  if (help === undefined) {
    return (
      <>
        <label htmlFor={id}>{label}</label>
        {children({ id })}
      </>
    );
  }
  const helpId = `${id}-help`;
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <div>
        {children({ id, "aria-describedby": helpId })}
        <p id={helpId} className="muted small">
          {help}
        </p>
      </div>
    </>
  );
}
