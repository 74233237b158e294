// Webhooks: endpoints LabelLoop calls when something happens (GET/POST
// /api/projects/{id}/webhooks/, /api/webhooks/{id}/...): add one (its signing secret shows
// once), test it, see its deliveries, pause or delete it.

import { type FormEvent, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { useResource } from "../../hooks/useResource";
import { api, type ApiError, asApiError, type Page, type Project } from "../../lib/api";

interface Webhook {
  id: number;
  url: string;
  events: string[];
  is_active: boolean;
  description: string;
  secret?: string; // only in the answer that created (or rotated) it
}

interface Delivery {
  id: number;
  event: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string;
  created_at: string;
}

const EVENTS: [string, string][] = [
  ["run.succeeded", "a training run finished"],
  ["run.failed", "a training run failed"],
  ["model.activated", "a model version became active"],
  ["image.labeled", "images reached a consensus label"],
  ["annotator.quality_low", "an annotator’s gold accuracy fell low"],
];

export function WebhooksTab({ project }: { project: Project }) {
  const hooks = useResource<Webhook[]>(`/api/projects/${project.id}/webhooks/`);
  const [error, setError] = useState<ApiError | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  async function call(run: () => Promise<unknown>) {
    try {
      await run();
      setError(null);
      hooks.reload();
    } catch (caught) {
      setError(asApiError(caught));
    }
  }
  return (
    <div className="grid-2">
      <section className="card span-2" aria-labelledby="webhooks-title">
        <h2 id="webhooks-title">Webhooks</h2>
        {hooks.error && <ErrorNote error={hooks.error} />}
        {error && <ErrorNote error={error} />}
        {secret && (
          <p className="note note-warn" role="status" data-testid="webhook-secret">
            Signing secret (shown this once; keep it): <code className="user-text">{secret}</code>
          </p>
        )}
        {hooks.data?.length === 0 && <p className="muted">No webhooks yet.</p>}
        <ul className="webhook-list">
          {hooks.data?.map((hook) => <WebhookRow key={hook.id} hook={hook} call={call} />)}
        </ul>
      </section>
      <AddWebhook projectId={project.id} call={call} onSecret={setSecret} />
    </div>
  );
}

function WebhookRow({ hook, call }: { hook: Webhook; call: (run: () => Promise<unknown>) => void }) {
  const [log, setLog] = useState<Delivery[] | null>(null);
  const showLog = () =>
    call(async () => setLog((await api<Page<Delivery>>(`/api/webhooks/${hook.id}/deliveries/`)).results));
  return (
    <li className="webhook">
      <p>
        <bdi className="webhook-url">{hook.url}</bdi>{" "}
        <span className={`badge ${hook.is_active ? "badge-ok" : "badge-warn"}`}>
          {hook.is_active ? "active" : "paused"}
        </span>
      </p>
      <p className="muted small">{hook.events.join(", ")}</p>
      <div className="row">
        <button type="button" className="btn btn-small" onClick={() => call(() => api(`/api/webhooks/${hook.id}/test/`, { method: "POST" }))}>
          Send a test
        </button>
        <button type="button" className="btn btn-small" onClick={showLog}>
          Deliveries
        </button>
        <button
          type="button"
          className="btn btn-small"
          onClick={() => call(() => api(`/api/webhooks/${hook.id}/`, { method: "PATCH", body: { is_active: !hook.is_active } }))}
        >
          {hook.is_active ? "Pause" : "Resume"}
        </button>
        <button type="button" className="btn btn-small btn-danger" onClick={() => call(() => api(`/api/webhooks/${hook.id}/`, { method: "DELETE" }))}>
          Delete<span className="visually-hidden"> {hook.url}</span>
        </button>
      </div>
      {log && <DeliveryLog log={log} />}
    </li>
  );
}

function DeliveryLog({ log }: { log: Delivery[] }) {
  if (log.length === 0) return <p className="muted small">No deliveries yet.</p>;
  return (
    <div className="table-scroll">
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Status</th>
            <th scope="col" className="num">Tries</th>
            <th scope="col">Answer</th>
          </tr>
        </thead>
        <tbody>
          {log.slice(0, 20).map((d) => (
            <tr key={d.id}>
              <td>{d.event}</td>
              <td>{d.status}</td>
              <td className="num">{d.attempts}</td>
              <td>{d.last_status_code ?? d.last_error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AddWebhook({
  projectId,
  call,
  onSecret,
}: {
  projectId: number;
  call: (run: () => Promise<unknown>) => void;
  onSecret: (secret: string | null) => void;
}) {
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState<string[]>(["run.succeeded"]);
  function onSubmit(event: FormEvent) {
    event.preventDefault();
    call(async () => {
      const made = await api<Webhook>(`/api/projects/${projectId}/webhooks/`, {
        method: "POST",
        body: { url, events },
      });
      onSecret(made.secret ?? null);
      setUrl("");
    });
  }
  const toggle = (name: string, on: boolean) =>
    setEvents((old) => (on ? [...old, name] : old.filter((e) => e !== name)));
  return (
    <section className="card span-2" aria-labelledby="add-webhook-title">
      <h2 id="add-webhook-title">Add a webhook</h2>
      <form onSubmit={onSubmit}>
        <label htmlFor="webhook-url">Endpoint URL</label>
        <input id="webhook-url" type="url" className="wide" value={url} onChange={(e) => setUrl(e.target.value)} required placeholder="https://hooks.example.com/labelloop" />
        <fieldset className="choices">
          <legend>Events</legend>
          {EVENTS.map(([name, help]) => (
            <label key={name} className="checkbox">
              <input type="checkbox" checked={events.includes(name)} onChange={(e) => toggle(name, e.target.checked)} />
              <span>
                <code>{name}</code> <span className="muted small">{help}</span>
              </span>
            </label>
          ))}
        </fieldset>
        <button type="submit" className="btn btn-primary" disabled={events.length === 0}>
          Add webhook
        </button>
      </form>
    </section>
  );
}
