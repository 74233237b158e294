// The image of the image browser's detail, with a model version's activation map over it on
// demand (what in the picture drove its prediction; GET /api/images/{id}/explanation/).

import { useState } from "react";

import { ExplanationNote, ExplanationOverlay } from "../../components/ExplanationOverlay";
import { useExplanation } from "../../hooks/useExplanation";
import { useResource } from "../../hooks/useResource";
import type { ImageDetail, ModelVersion, Project } from "../../lib/api";

export function DetailImage({ img, project }: { img: ImageDetail; project: Project }) {
  const [showMap, setShowMap] = useState(false);
  const [version, setVersion] = useState<number | null>(null); // null: the active one
  const hasModel = img.predicted_label !== null;
  const map = useExplanation(img.id, showMap && hasModel, version);
  return (
    <>
      <div className="detail-image">
        <img
          src={img.file_url}
          alt={`Image ${img.id}`}
          className={Math.max(img.width, img.height) < 256 ? "pixelated" : undefined}
          data-image-id={img.id}
        />
        {showMap && <ExplanationOverlay imageId={img.id} state={map} />}
      </div>
      {hasModel && (
        <div className="row cam-toggle">
          <label>
            <input
              type="checkbox"
              checked={showMap}
              onChange={(event) => setShowMap(event.target.checked)}
            />{" "}
            Show what the model looked at
          </label>
          {showMap && <VersionChoice project={project} value={version} onChange={setVersion} />}
          {showMap && <ExplanationNote state={map} />}
        </div>
      )}
    </>
  );
}

/** Which model version's map: the active one, or any in the registry. */
function VersionChoice({
  project,
  value,
  onChange,
}: {
  project: Project;
  value: number | null;
  onChange: (version: number | null) => void;
}) {
  const versions = useResource<ModelVersion[]>(`/api/projects/${project.id}/model-versions/`);
  return (
    <select
      aria-label="Model version"
      value={value ?? ""}
      onChange={(event) => onChange(event.target.value ? Number(event.target.value) : null)}
    >
      <option value="">active model</option>
      {(versions.data ?? []).map((v) => (
        <option key={v.id} value={v.number}>
          v{v.number}
          {v.is_active ? " (active)" : ""}
        </option>
      ))}
    </select>
  );
}
