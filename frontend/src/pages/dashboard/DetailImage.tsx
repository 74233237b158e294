// The image of the image browser's detail, with the model's activation map over it on demand
// (what in the picture drove its prediction; GET /api/images/{id}/explanation/).

import { useState } from "react";

import { ExplanationNote, ExplanationOverlay } from "../../components/ExplanationOverlay";
import { useExplanation } from "../../hooks/useExplanation";
import type { ImageDetail } from "../../lib/api";

export function DetailImage({ img }: { img: ImageDetail }) {
  const [showMap, setShowMap] = useState(false);
  const hasModel = img.predicted_label !== null;
  const map = useExplanation(img.id, showMap && hasModel);
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
          {showMap && <ExplanationNote state={map} />}
        </div>
      )}
    </>
  );
}
