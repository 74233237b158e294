// The shortcut check of the active model: for the images it is surest about in each class,
// how much of its activation map lies on the image's border. A model that learned a watermark,
// a frame or a corner mark instead of the object puts its evidence there (training/explain.py).

import type { ModelVersion, ShortcutCheck as Check } from "../../lib/api";
import { pct } from "./format";

export function ShortcutCheck({ active }: { active: ModelVersion | null }) {
  const check = active?.metrics?.shortcut_check ?? null;
  return (
    <section className="card" aria-labelledby="shortcut-title" data-testid="shortcut-check">
      <h2 id="shortcut-title">Shortcut check{active ? ` (v${active.number})` : ""}</h2>
      {!check ? (
        <p className="muted">
          {active ? "Not measured for this version." : "No model yet."}
        </p>
      ) : (
        <CheckResult check={check} />
      )}
    </section>
  );
}

function CheckResult({ check }: { check: Check }) {
  const rows = Object.entries(check.per_class);
  const band = pct(check.band);
  return (
    <>
      {check.flagged.length > 0 ? (
        <p className="note note-warn" role="alert" data-testid="shortcut-flag">
          Possible shortcut in {check.flagged.map((c) => `“${c}”`).join(", ")}: the model’s
          evidence for its surest images lies on the image border. Look at their maps (image
          browser) for a watermark, frame or background that gives the class away.
        </p>
      ) : (
        <p className="muted" data-testid="shortcut-ok">
          No class flagged: the evidence lies inside the images.
        </p>
      )}
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Class</th>
            <th scope="col" className="num">Images</th>
            <th scope="col" className="num">On the border</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([label, row]) => (
            <tr key={label} className={row.flagged ? "row-flagged" : undefined}>
              <th scope="row">{label}</th>
              <td className="num">{row.images}</td>
              <td className="num">
                {pct(row.border_share)} {row.flagged && <span className="badge badge-warn">flagged</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small">
        The share of each class’s activation-map mass on the outer {band} of the image, median
        over the images the model is surest of. An even spread puts{" "}
        {pct(1 - (1 - 2 * check.band) ** 2)} there; a class is flagged above{" "}
        {pct(check.threshold)}.
      </p>
    </>
  );
}
