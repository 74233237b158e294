// The backbone shapes of the API (GET /api/projects/{id}/backbones/, a version's backbone),
// re-exported by api.ts.

export interface BackboneRef {
  id: number;
  number: number;
  source: "pretrain" | "import";
  arch: string;
  origin: string;
}

/** One of k-NN or linear probe: accuracy on `n` labels, cross-fitted, 95% Wilson interval. */
export interface ProbeScore {
  accuracy: number;
  n: number;
  interval: [number, number];
}

export interface Probe {
  n: number; // labels scored
  labels?: number; // labels there were (a class with one label is trained on, not scored)
  knn?: ProbeScore | null;
  linear?: ProbeScore | null;
  note?: string | null;
}

export interface Backbone extends BackboneRef {
  run: number | null;
  width: number;
  stem: string;
  input_size: number;
  embed_dim: number;
  images_seen: number;
  metrics: {
    method?: string;
    epochs_run?: number;
    seconds?: number;
    loss_curve?: number[];
    stopped?: string; // "epochs" | "budget" | "cancelled"
    probe?: Probe; // the latest: measured again by each round on the backbone
    probe_labels?: number; // the labels that latest probe was computed on
    probe_version?: number; // the model version whose round measured it
    probe_at_registration?: Probe | null; // kept from registration once a round re-measured
  } | null;
  file_sha256: string;
  created_at: string;
  current: boolean;
}
