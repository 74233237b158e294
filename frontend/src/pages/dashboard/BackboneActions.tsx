// The Backbone panel's admin part: pretrain a backbone on the project's images (optional time
// budget), import weights (a .pth file, optional input size), the API's refusal in its own
// words, and the background run's stage and progress with Cancel. Runs in the background lane
// go beside rounds, never instead of them.

import { type FormEvent, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { Field } from "../../components/Field";
import type { TrainingRun } from "../../lib/api";
import { RunProgress } from "./Training";
import type { ImportRequest, useBackbones } from "./useBackbones";
import { ACTIVE } from "./useModel";

type State = ReturnType<typeof useBackbones>;

/** A positive number from an optional field; null when it is empty. */
function optionalNumber(text: string): number | null {
  const value = Number(text);
  return text.trim() && Number.isFinite(value) && value > 0 ? value : null;
}

export function BackboneActions({ state }: { state: State }) {
  return (
    <>
      {state.error && <ErrorNote error={state.error} />}
      <PretrainForm busy={state.busy} pretrain={state.pretrain} />
      <ImportForm busy={state.busy} importWeights={state.importWeights} />
      {state.runs.map((run) => (
        <BackgroundRun key={run.id} run={run} cancel={state.cancel} />
      ))}
    </>
  );
}

function PretrainForm({ busy, pretrain }: { busy: boolean; pretrain: State["pretrain"] }) {
  const [minutes, setMinutes] = useState("");
  function onSubmit(event: FormEvent) {
    event.preventDefault();
    void pretrain(optionalNumber(minutes));
  }
  return (
    <form className="form-grid" onSubmit={onSubmit} aria-label="Pretrain a backbone">
      <Field id="bb-minutes" label="Minutes" help="Time budget for pretraining; empty: the server's default.">
        {(control) => (
          <input
            {...control}
            type="number"
            min={1}
            max={24 * 60}
            step="any"
            value={minutes}
            onChange={(e) => setMinutes(e.target.value)}
          />
        )}
      </Field>
      <span />
      <div>
        {/* Not "Pretrain now": a name that contains "Retrain now" would pass for that button. */}
        <button type="submit" className="btn" disabled={busy}>
          Pretrain backbone
        </button>
      </div>
    </form>
  );
}

function ImportForm({ busy, importWeights }: { busy: boolean; importWeights: State["importWeights"] }) {
  const [file, setFile] = useState<File | null>(null);
  const [inputSize, setInputSize] = useState("");
  function onSubmit(event: FormEvent) {
    event.preventDefault();
    if (!file) return;
    const request: ImportRequest = { file, inputSize: optionalNumber(inputSize) };
    void importWeights(request);
  }
  return (
    <form className="form-grid" onSubmit={onSubmit} aria-label="Import weights">
      <Field id="bb-file" label="Weights file" help="A torchvision ResNet-18/50 .pth, or a LabelLoop backbone file.">
        {(control) => (
          <input {...control} type="file" accept=".pth,.pt" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        )}
      </Field>
      <Field id="bb-input-size" label="Input size" help="Pixels images are resized to for it (16-512); empty: the default.">
        {(control) => (
          <input
            {...control}
            type="number"
            min={16}
            max={512}
            value={inputSize}
            onChange={(e) => setInputSize(e.target.value)}
          />
        )}
      </Field>
      <span />
      <div>
        <button type="submit" className="btn" disabled={busy || !file}>
          Import weights
        </button>
      </div>
    </form>
  );
}

function BackgroundRun({ run, cancel }: { run: TrainingRun; cancel: State["cancel"] }) {
  return (
    <>
      <RunProgress run={run} testId="backbone-run" />
      {ACTIVE.includes(run.status) && (
        <button type="button" className="btn btn-danger" onClick={() => void cancel(run)}>
          Cancel backbone run<span className="visually-hidden"> #{run.id}</span>
        </button>
      )}
    </>
  );
}
