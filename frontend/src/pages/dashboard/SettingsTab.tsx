// Settings: classes, queue and learning settings, members.

import { type FormEvent, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { Field } from "../../components/Field";
import { api, type ApiError, asApiError, type Project } from "../../lib/api";
import { fromPercentField, toPercentField } from "./quality";
import { RenameClass } from "./RenameClass";

const STRATEGIES: { value: string; title: string }[] = [
  { value: "diverse", title: "Uncertainty + diversity (robust default)" },
  { value: "margin", title: "Smallest margin" },
  { value: "least_confidence", title: "Least confidence" },
  { value: "entropy", title: "Entropy" },
  { value: "bald", title: "BALD (MC dropout)" },
  { value: "random", title: "Random order" },
];

const CLASSES_HELP =
  "One per line, in order: keys 1-9, 0, then letters (classes all named by one digit or letter " +
  "are their own keys). A class that has labels cannot be removed; rename it below instead.";
const OVERLAP_HELP = "Overlap: how many annotators label each image; the majority is the label.";
const STRATEGY_HELP =
  "Which images come first. A new strategy re-orders the queue when saved: the active model " +
  "re-scores it (an activation run), no retraining.";
const EXPLORATION_HELP = "Share of tasks drawn at random: keeps the accuracy estimate honest.";
const CONSENSUS_METHODS: { value: string; title: string; help: string }[] = [
  {
    value: "weighted",
    title: "Weighted by reliability",
    help: "Each annotator's vote counts by how reliable their labels have been (Dawid-Skene); ties still go to an admin.",
  },
  {
    value: "majority",
    title: "Majority vote",
    help: "Every vote counts the same; the most common label wins, ties go to an admin.",
  },
];
const GOLD_RATE_HELP =
  "Share of an annotator's tasks that are gold questions (0-50%). Annotators cannot tell them apart.";
const GOLD_ALERT_HELP = "An annotator whose gold accuracy falls below this is flagged (and a webhook fires).";
const SEMI_SUPERVISED_TEXT =
  "Semi-supervised rounds: training also learns from a sample of the unlabeled images (FixMatch), " +
  "at about five times the training time. Off by default. Rounds on a backbone fit their head " +
  "on the labels alone; their fine-tunes learn from the unlabeled images either way.";

interface Form {
  name: string;
  description: string;
  labels: string;
  annotations_per_image: string;
  strategy: string;
  retrain_every: string;
  exploration_fraction: string;
  lease_seconds: string;
  show_suggestions: boolean;
  semi_supervised: boolean;
  consensus_method: string;
  gold_rate: string; // percent
  gold_alert_accuracy: string; // percent
}

type SetField = <K extends keyof Form>(key: K, value: Form[K]) => void;

function formOf(p: Project): Form {
  return {
    name: p.name,
    description: p.description,
    labels: p.labels.join("\n"),
    annotations_per_image: String(p.annotations_per_image),
    strategy: p.strategy,
    retrain_every: String(p.retrain_every),
    exploration_fraction: String(p.exploration_fraction),
    lease_seconds: String(p.lease_seconds),
    show_suggestions: p.show_suggestions ?? false,
    semi_supervised: p.semi_supervised ?? false,
    consensus_method: p.consensus_method ?? "weighted",
    gold_rate: toPercentField(p.gold_rate),
    gold_alert_accuracy: toPercentField(p.gold_alert_accuracy),
  };
}

/** The PATCH body: only what the form changed, as the API's types. */
function changesOf(form: Form, project: Project): Record<string, unknown> {
  const original = formOf(project);
  const body: Record<string, unknown> = {};
  if (form.name !== original.name) body.name = form.name;
  if (form.description !== original.description) body.description = form.description;
  if (form.labels !== original.labels) {
    body.labels = form.labels
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  }
  for (const key of ["annotations_per_image", "retrain_every", "lease_seconds"] as const) {
    if (form[key] !== original[key]) body[key] = Number.parseInt(form[key], 10);
  }
  if (form.exploration_fraction !== original.exploration_fraction) {
    body.exploration_fraction = Number.parseFloat(form.exploration_fraction);
  }
  if (form.strategy !== original.strategy) body.strategy = form.strategy;
  if (project.show_suggestions !== undefined && form.show_suggestions !== original.show_suggestions) {
    body.show_suggestions = form.show_suggestions;
  }
  if (project.semi_supervised !== undefined && form.semi_supervised !== original.semi_supervised) {
    body.semi_supervised = form.semi_supervised;
  }
  if (project.consensus_method !== undefined && form.consensus_method !== original.consensus_method) {
    body.consensus_method = form.consensus_method;
  }
  // Percent in the form, a fraction in the API; what is not a number goes as it is, for the
  // API to name the problem.
  for (const key of ["gold_rate", "gold_alert_accuracy"] as const) {
    if (project[key] !== undefined && form[key] !== original[key]) {
      body[key] = fromPercentField(form[key]) ?? form[key];
    }
  }
  return body;
}

export function SettingsTab({ project, onSaved }: { project: Project; onSaved: () => void }) {
  return (
    <div className="grid-2">
      <ProjectSettings project={project} onSaved={onSaved} />
    </div>
  );
}

function ProjectSettings({ project, onSaved }: { project: Project; onSaved: () => void }) {
  const [form, setForm] = useState<Form>(() => formOf(project));
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(false);
  const set: SetField = (key, value) => {
    setForm((old) => ({ ...old, [key]: value }));
    setSaved(false);
  };

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    const body = changesOf(form, project);
    try {
      if (Object.keys(body).length) {
        await api(`/api/projects/${project.id}/`, { method: "PATCH", body });
        onSaved();
      }
      setSaved(true);
      setError(null);
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  function onRenamed([from, to]: [string, string]) {
    // The classes box shows the new name (keeping any other unsaved edits to it).
    setForm((old) => ({
      ...old,
      labels: old.labels
        .split("\n")
        .map((l) => (l.trim() === from ? to : l))
        .join("\n"),
    }));
    setSaved(false);
    onSaved();
  }

  return (
    <section className="card" aria-labelledby="settings-title">
      <h2 id="settings-title">Project settings</h2>
      <form className="form-grid" onSubmit={onSubmit}>
        <ProjectFields form={form} set={set} classRows={Math.min(12, Math.max(4, project.labels.length))} />
        <QueueFields form={form} set={set} />
        {project.consensus_method !== undefined && <QualityFields form={form} set={set} />}
        <OptionFields project={project} form={form} set={set} />
        <span />
        <div className="row">
          <button type="submit" className="btn btn-primary">
            Save settings
          </button>
          {saved && <span role="status">Saved.</span>}
        </div>
      </form>
      {error && <ErrorNote error={error} />}
      <RenameClass project={project} onRenamed={onRenamed} />
    </section>
  );
}

/** The on/off settings, each shown only where the server has it. */
function OptionFields({ project, form, set }: { project: Project; form: Form; set: SetField }) {
  return (
    <>
      {project.show_suggestions !== undefined && (
        <>
          <span />
          <label className="checkbox">
            <input
              type="checkbox"
              checked={form.show_suggestions}
              onChange={(e) => set("show_suggestions", e.target.checked)}
            />
            Show the model’s suggestion to annotators (Enter accepts it). Off by default:
            suggestions anchor annotators.
          </label>
        </>
      )}
      {project.semi_supervised !== undefined && (
        <>
          <span />
          <label className="checkbox">
            <input
              type="checkbox"
              checked={form.semi_supervised}
              onChange={(e) => set("semi_supervised", e.target.checked)}
            />
            {SEMI_SUPERVISED_TEXT}
          </label>
        </>
      )}
    </>
  );
}

/** What the project is: its name, description and classes. */
function ProjectFields({ form, set, classRows }: { form: Form; set: SetField; classRows: number }) {
  return (
    <>
      <Field id="s-name" label="Name">
        {(control) => (
          <input {...control} value={form.name} onChange={(e) => set("name", e.target.value)} required />
        )}
      </Field>
      <Field id="s-description" label="Description">
        {(control) => (
          <textarea
            {...control}
            rows={2}
            value={form.description}
            onChange={(e) => set("description", e.target.value)}
          />
        )}
      </Field>
      <Field id="s-labels" label="Classes" help={CLASSES_HELP}>
        {(control) => (
          <textarea
            {...control}
            rows={classRows}
            value={form.labels}
            onChange={(e) => set("labels", e.target.value)}
            required
          />
        )}
      </Field>
    </>
  );
}

/** How images are served and learned from. */
function QueueFields({ form, set }: { form: Form; set: SetField }) {
  return (
    <>
      <Field id="s-overlap" label="Labels per image" help={OVERLAP_HELP}>
        {(control) => (
          <input
            {...control}
            type="number"
            min={1}
            max={15}
            value={form.annotations_per_image}
            onChange={(e) => set("annotations_per_image", e.target.value)}
          />
        )}
      </Field>
      <Field id="s-strategy" label="Strategy" help={STRATEGY_HELP}>
        {(control) => (
          <select {...control} value={form.strategy} onChange={(e) => set("strategy", e.target.value)}>
            {STRATEGIES.map((s) => (
              <option key={s.value} value={s.value}>
                {s.title}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field id="s-retrain" label="Retrain every" help="New labels between automatic runs; 0 turns them off.">
        {(control) => (
          <input
            {...control}
            type="number"
            min={0}
            value={form.retrain_every}
            onChange={(e) => set("retrain_every", e.target.value)}
          />
        )}
      </Field>
      <Field id="s-exploration" label="Exploration fraction" help={EXPLORATION_HELP}>
        {(control) => (
          <input
            {...control}
            type="number"
            min={0}
            max={1}
            step={0.01}
            value={form.exploration_fraction}
            onChange={(e) => set("exploration_fraction", e.target.value)}
          />
        )}
      </Field>
      <Field id="s-lease" label="Lease (seconds)">
        {(control) => (
          <input
            {...control}
            type="number"
            min={10}
            max={86400}
            value={form.lease_seconds}
            onChange={(e) => set("lease_seconds", e.target.value)}
          />
        )}
      </Field>
    </>
  );
}

/** How labels are judged: the consensus method and gold questions. */
function QualityFields({ form, set }: { form: Form; set: SetField }) {
  const method = CONSENSUS_METHODS.find((m) => m.value === form.consensus_method);
  return (
    <>
      <Field id="s-consensus" label="Consensus" help={method?.help ?? ""}>
        {(control) => (
          <select {...control} value={form.consensus_method} onChange={(e) => set("consensus_method", e.target.value)}>
            {CONSENSUS_METHODS.map((m) => (
              <option key={m.value} value={m.value}>
                {m.title}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field id="s-gold-rate" label="Gold rate (%)" help={GOLD_RATE_HELP}>
        {(control) => (
          <input
            {...control}
            type="number"
            min={0}
            max={50}
            step="any"
            value={form.gold_rate}
            onChange={(e) => set("gold_rate", e.target.value)}
          />
        )}
      </Field>
      <Field id="s-gold-alert" label="Gold alert accuracy (%)" help={GOLD_ALERT_HELP}>
        {(control) => (
          <input
            {...control}
            type="number"
            min={0}
            max={100}
            step="any"
            value={form.gold_alert_accuracy}
            onChange={(e) => set("gold_alert_accuracy", e.target.value)}
          />
        )}
      </Field>
    </>
  );
}
