// The model tab's Backbone panel: the current backbone in one line, its probe score and loss
// curve, the older ones folded away, and (admins) pretraining, importing weights and the
// background run's progress (BackboneActions.tsx). Formatting: backboneFormat.ts.

import { ErrorNote } from "../../components/ErrorNote";
import type { Backbone, Project } from "../../lib/api";
import { BackboneActions } from "./BackboneActions";
import { describeBackbone, lossPoints, probeHistory, probeText } from "./backboneFormat";
import { useBackbones } from "./useBackbones";

const CURVE = { width: 240, height: 48 }; // px: a sparkline, the trend is what matters

export function BackbonePanel({ project }: { project: Project }) {
  const state = useBackbones(project);
  const { backbones, loadError } = state;
  const [current, ...older] = backbones ?? [];
  const missing = loadError?.status === 404; // a server from before backbones
  return (
    <section className="card span-2" aria-labelledby="backbone-title">
      <h2 id="backbone-title">Backbone</h2>
      {loadError && !missing && <ErrorNote error={loadError} />}
      {missing ? (
        <p className="muted">Backbones are not available on this server yet.</p>
      ) : current ? (
        <CurrentBackbone backbone={current} />
      ) : (
        backbones && (
          <p className="muted" data-testid="backbone-none">
            No backbone yet. A backbone turns each image into features learned from all of the
            project's images (pretrained here, or imported weights), so that each round only fits a
            small head on the labeled ones: seconds instead of minutes, and better with few labels.
          </p>
        )
      )}
      {older.length > 0 && <OlderBackbones backbones={older} />}
      {project.role === "admin" && !missing && <BackboneActions state={state} />}
    </section>
  );
}

function CurrentBackbone({ backbone }: { backbone: Backbone }) {
  const probe = backbone.metrics?.probe;
  const curve = backbone.metrics?.loss_curve ?? [];
  return (
    <>
      <p data-testid="backbone-current">
        <strong>{describeBackbone(backbone)}</strong>
      </p>
      <p data-testid="backbone-probe">{probeText(probe)}</p>
      {probe?.note && (probe.knn || probe.linear) && <p className="muted small">{probe.note}</p>}
      {probeHistory(backbone.metrics) && (
        <p className="muted small" data-testid="backbone-probe-history">
          {probeHistory(backbone.metrics)}
        </p>
      )}
      <LossCurve values={curve} />
    </>
  );
}

/** The pretraining loss per epoch as a sparkline, first and last values in its name. */
export function LossCurve({ values }: { values: number[] }) {
  const points = lossPoints(values, CURVE.width, CURVE.height);
  if (!points) return null;
  const first = values[0].toFixed(2);
  const last = values[values.length - 1].toFixed(2);
  const label = `Pretraining loss over ${values.length} epochs, from ${first} to ${last}`;
  return (
    <figure className="loss-curve">
      <svg
        role="img"
        aria-label={label}
        width={CURVE.width}
        height={CURVE.height + 4}
        viewBox={`0 -2 ${CURVE.width} ${CURVE.height + 4}`}
      >
        <polyline points={points} fill="none" stroke="currentColor" strokeWidth={1.5} />
      </svg>
      <figcaption className="muted small">
        loss {first} → {last}
      </figcaption>
    </figure>
  );
}

function OlderBackbones({ backbones }: { backbones: Backbone[] }) {
  return (
    <details>
      <summary>Older backbones ({backbones.length})</summary>
      <ul>
        {backbones.map((b) => (
          <li key={b.id}>
            {describeBackbone(b)} · <span className="muted">{probeText(b.metrics?.probe)}</span>
          </li>
        ))}
      </ul>
    </details>
  );
}
