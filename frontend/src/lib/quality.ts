// The label-quality shapes of the API (issue 27): the review queue and annotator quality.

import type { ConsensusMethod, ImageStatus, Role } from "./api";

export type ReviewState = "open" | "confirmed" | "relabeled" | "sent_back" | "stale";
export type Decision = "confirm" | "relabel" | "send_back";

export interface Vote {
  annotator: string;
  label: string;
  source: string;
  created_at: string;
  discarded: boolean;
}

export interface Review {
  id: number;
  project: number;
  image: {
    id: number;
    file_url: string;
    original_name: string;
    width: number;
    height: number;
    predicted_label: string | null;
    confidence: number | null;
    status: ImageStatus;
    consensus_label: string | null;
  };
  state: ReviewState;
  score: number; // 0..1: how likely the label is wrong
  given_label: string;
  model_label: string;
  model_confidence: number;
  votes: Vote[];
  run: number | null;
  found_at: string;
  decided_by: string | null;
  decided_at: string | null;
  label_after: string | null;
}

export interface AnnotatorQuality {
  username: string;
  role: Role | null;
  labels: number;
  gold_answered: number;
  gold_correct: number;
  gold_accuracy: number | null;
  gold_accuracy_low: number | null;
  gold_accuracy_high: number | null;
  agreement: number | null;
  agreement_n: number | null;
  judged_wrong: number | null;
  judged_wrong_share: number | null;
  median_seconds: number | null;
  reliability: number | null;
}

export interface AnnotatorQualityReport {
  consensus_method: ConsensusMethod;
  results: AnnotatorQuality[];
}
