// The model: retrain with live progress, versions (rollback), learning curve, confusion matrix,
// uncertainty histogram, the shortcut check, and the backbone rounds build on. The training endpoints arrive with the active-learning loop; until
// then (404) or before the first model, every panel says "no model yet".

import type { Project } from "../../lib/api";
import { BackbonePanel } from "./Backbones";
import { ConfusionMatrix } from "./ConfusionMatrix";
import { LearningCurve } from "./LearningCurve";
import { ModelVersions } from "./ModelVersions";
import { ShortcutCheck } from "./ShortcutCheck";
import { TrainingCard } from "./Training";
import { UncertaintyHistogram } from "./UncertaintyHistogram";
import { useModel } from "./useModel";

export function ModelTab({ project }: { project: Project }) {
  const model = useModel(project);
  const { stats, versions } = model;
  const active = versions?.find((v) => v.is_active) ?? null;
  const curve = stats?.learning_curve ?? [];
  const activeStats = stats?.active_model?.version === active?.number ? stats?.active_model : null;

  return (
    <div className="grid-2">
      <TrainingCard project={project} active={active} activeStats={activeStats} model={model} />

      <LearningCurve curve={curve} />

      <section className="card" aria-labelledby="confusion-title">
        <h2 id="confusion-title">Confusion matrix{active ? ` (v${active.number})` : ""}</h2>
        {active?.metrics?.confusion?.length ? (
          // The model's own classes: the project's may have been reordered since.
          <ConfusionMatrix
            labels={active.metrics.classes ?? project.labels}
            matrix={active.metrics.confusion}
          />
        ) : (
          <p className="muted">No model yet.</p>
        )}
      </section>

      <section className="card" aria-labelledby="uncertainty-title">
        <h2 id="uncertainty-title">Uncertainty of unlabeled images</h2>
        <UncertaintyHistogram raw={stats?.uncertainty_histogram} />
      </section>

      <ShortcutCheck active={active} />

      <BackbonePanel project={project} />

      <ModelVersions versions={versions} runs={model.runs} activate={model.activate} />
    </div>
  );
}
