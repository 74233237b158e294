"""Annotator quality: per annotator of a project, accuracy on gold questions (with its 95%
Wilson interval), agreement with the consensus, the share of their labels a reviewer judged
wrong, and speed. One set-based query for the whole project, whatever its annotators.

    .venv/bin/python -m pytest tests/labeling/annotations/test_quality.py -q
"""

from __future__ import annotations

from django.db import connection

from labeling.annotations.consensus import reliability_model
from labeling.projects.models import ConsensusMethod, Project
from training.metrics import accuracy_interval

# Each part is grouped by annotator once; the people are the project's annotators (and
# reviewers and admins, who may label too) and anyone else with a vote or a gold answer in it
# (a member removed since: their labels are still in the project).
_QUALITY_SQL = """
WITH counted AS (
    -- each annotator's latest vote on each image, as consensus counts it: not discarded by a
    -- send-back, not a decision (resolution, review)
    SELECT DISTINCT ON (a.image_id, a.annotator_id)
           a.image_id, a.annotator_id, a.label, a.source
    FROM annotations_annotation a
    JOIN images_image i ON i.id = a.image_id
    WHERE i.project_id = %(project)s AND a.source IN ('manual', 'import')
      AND a.discarded_at IS NULL
    ORDER BY a.image_id, a.annotator_id, a.created_at DESC, a.id DESC
), per_image AS (
    SELECT image_id, count(*) AS votes FROM counted GROUP BY image_id
), labels AS (
    SELECT annotator_id, count(*) AS n FROM counted WHERE source = 'manual'
    GROUP BY annotator_id
), agree AS (
    SELECT c.annotator_id, count(*) AS n,
           count(*) FILTER (WHERE c.label = i.consensus_label) AS same
    FROM counted c
    JOIN per_image p ON p.image_id = c.image_id
    JOIN images_image i ON i.id = c.image_id
    WHERE c.source = 'manual' AND p.votes >= 2 AND i.status = 'labeled'
      AND i.consensus_label IS NOT NULL
    GROUP BY c.annotator_id
), given AS (
    -- every image each annotator labeled, a vote later discarded included
    SELECT a.annotator_id, count(DISTINCT a.image_id) AS n
    FROM annotations_annotation a
    JOIN images_image i ON i.id = a.image_id
    WHERE i.project_id = %(project)s AND a.source = 'manual'
    GROUP BY a.annotator_id
), wrong AS (
    -- images a reviewer relabeled, or sent back, away from the label they had given
    SELECT a.annotator_id, count(DISTINCT r.image_id) AS n
    FROM annotations_labelreview r
    JOIN annotations_annotation a
      ON a.image_id = r.image_id AND a.label = r.given_label AND a.source = 'manual'
     AND a.created_at <= coalesce(r.decided_at, now())
    WHERE r.project_id = %(project)s AND r.state IN ('relabeled', 'sent_back')
    GROUP BY a.annotator_id
), speed AS (
    SELECT a.annotator_id,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) / 1000.0 AS median
    FROM annotations_annotation a
    JOIN images_image i ON i.id = a.image_id
    WHERE i.project_id = %(project)s AND a.source = 'manual' AND a.duration_ms IS NOT NULL
    GROUP BY a.annotator_id
), gold AS (
    SELECT g.annotator_id, count(*) AS n, count(*) FILTER (WHERE g.correct) AS correct
    FROM annotations_goldanswer g
    JOIN images_image i ON i.id = g.image_id
    WHERE i.project_id = %(project)s
    GROUP BY g.annotator_id
), people AS (
    SELECT user_id FROM projects_membership
    WHERE project_id = %(project)s AND role IN ('annotator', 'reviewer', 'admin')
    UNION SELECT annotator_id FROM given
    UNION SELECT annotator_id FROM gold
)
SELECT u.id, u.username, m.role, coalesce(l.n, 0), coalesce(g.n, 0), coalesce(g.correct, 0),
       coalesce(ag.n, 0), coalesce(ag.same, 0), coalesce(w.n, 0), coalesce(gv.n, 0), s.median
FROM people p
JOIN auth_user u ON u.id = p.user_id
LEFT JOIN projects_membership m ON m.project_id = %(project)s AND m.user_id = p.user_id
LEFT JOIN labels l ON l.annotator_id = p.user_id
LEFT JOIN gold g ON g.annotator_id = p.user_id
LEFT JOIN agree ag ON ag.annotator_id = p.user_id
LEFT JOIN wrong w ON w.annotator_id = p.user_id
LEFT JOIN given gv ON gv.annotator_id = p.user_id
LEFT JOIN speed s ON s.annotator_id = p.user_id
ORDER BY u.username
"""


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def annotator_quality(*, project: Project) -> dict[str, object]:
    """``{"consensus_method", "results": [...]}``, one result per annotator, by username:
    ``labels`` (their counted votes), ``gold_answered``, ``gold_correct``, ``gold_accuracy``
    with ``gold_accuracy_low``/``_high`` (95% Wilson; null without answers), ``agreement``
    (share of their counted votes on labeled images with two votes or more that are the
    consensus label; null without such votes) over ``agreement_n`` votes, ``judged_wrong``
    (images a reviewer relabeled or sent back away from the label they gave) and its share of
    the images they labeled, ``median_seconds`` per label, and ``reliability`` (the weighted
    consensus's measure of them; null until that model is fitted)."""
    with connection.cursor() as cursor:
        cursor.execute(_QUALITY_SQL, {"project": project.pk})
        rows = cursor.fetchall()
    results = []
    weighted = project.consensus_method == ConsensusMethod.WEIGHTED
    model = reliability_model(project) if weighted else None
    for (
        user_id,
        username,
        role,
        labels,
        answered,
        correct,
        agree_n,
        same,
        wrong,
        given,
        median,
    ) in rows:
        low, high = accuracy_interval(correct, answered) if answered else (None, None)
        results.append(
            {
                "username": username,
                "role": role,
                "labels": labels,
                "gold_answered": answered,
                "gold_correct": correct,
                "gold_accuracy": _share(correct, answered),
                "gold_accuracy_low": None if low is None else round(low, 4),
                "gold_accuracy_high": None if high is None else round(high, 4),
                "agreement": _share(same, agree_n),
                "agreement_n": agree_n,
                "judged_wrong": wrong,
                "judged_wrong_share": _share(wrong, given),
                "median_seconds": None if median is None else round(float(median), 3),
                "reliability": (
                    None
                    if model is None or (r := model.reliability(user_id)) is None
                    else round(r, 4)
                ),
            }
        )
    return {"consensus_method": project.consensus_method, "results": results}
