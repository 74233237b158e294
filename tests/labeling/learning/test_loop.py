"""The active-learning loop end to end: real database, real services, real worker, real Ray."""

from __future__ import annotations

import uuid

import pytest

from labeling.images.models import Image, ImageStatus
from labeling.learning.models import ImageScore, ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


def label_through_the_api(client, project, truth, n: int) -> None:
    """An oracle annotator: next -> submit with the ground truth, n times."""
    done = 0
    while done < n:
        response = client.post(
            f"/api/projects/{project.id}/tasks/next/", {"count": min(10, n - done)}, format="json"
        )
        tasks = response.json()
        assert tasks, "the queue ran dry"
        names = dict(
            Image.objects.filter(pk__in=[t["image"] for t in tasks]).values_list(
                "id", "original_name"
            )
        )
        for task in tasks:
            response = client.post(
                "/api/annotations/",
                {
                    "image": task["image"],
                    "label": truth[names[task["image"]]],
                    "client_id": str(uuid.uuid4()),
                    "duration_ms": 900,
                },
                format="json",
            )
            assert response.status_code == 201, response.content
            done += 1


def test_labels_flow_in_a_model_comes_out_and_the_queue_reorders(
    ray_session, mnist_project, bob, alice, as_user
):
    project, truth = mnist_project
    # No model yet: the worker first orders the queue for coverage (a cold-start run).
    Worker(poll_seconds=0.1).run_forever(once=True)
    cold = TrainingRun.objects.get(project=project)
    assert (cold.trigger, cold.status) == (RunTrigger.COLD_START, RunStatus.SUCCEEDED)
    annotator = as_user(bob)
    label_through_the_api(annotator, project, truth, 99)
    assert TrainingRun.objects.filter(project=project).count() == 1  # 99 < retrain_every
    label_through_the_api(annotator, project, truth, 1)
    run = TrainingRun.objects.exclude(pk=cold.pk).get(project=project)
    assert (run.trigger, run.status) == (RunTrigger.AUTOMATIC, RunStatus.QUEUED)

    Worker(poll_seconds=0.1).run_forever(once=True)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.labels_snapshot == 100
    assert set(run.stage_seconds) >= {
        "snapshot",
        "train",
        "evaluate",
        "shortcut",
        "register",
        "score",
        "write-back",
    }
    version = ModelVersion.objects.get(run=run)
    assert version.is_active and version.labels_used == 100
    assert version.metrics["accuracy"] >= 0.5  # on a small validation split; the pool says more
    # Its shortcut check: real digits carry no planted mark, so no class is flagged.
    check = version.metrics["shortcut_check"]
    assert set(check["per_class"]) == set(project.labels) and check["flagged"] == []
    assert all(r["images"] >= 1 and r["border_share"] < 0.6 for r in check["per_class"].values())

    # The model's predictions on the 1,900 images nobody labeled: at least 80% right.
    pool = Image.objects.filter(project=project).exclude(status=ImageStatus.LABELED)
    rows = list(pool.values_list("original_name", "predicted_label"))
    accuracy = sum(truth[name] == predicted for name, predicted in rows) / len(rows)
    print(
        f"\npool accuracy after 100 labels: {accuracy:.3f} (val {version.metrics['accuracy']:.3f})"
    )
    assert accuracy >= 0.80
    assert ImageScore.objects.filter(image__project=project, model_version=version).count() == 2000

    # The next tasks come back in the order of the new priorities.
    tasks = annotator.post(
        f"/api/projects/{project.id}/tasks/next/", {"count": 5}, format="json"
    ).json()
    priorities = dict(pool.values_list("id", "priority"))
    served = [priorities[t["image"]] for t in tasks if not t["exploration"]]
    assert served == sorted(served, reverse=True)
    assert served[0] == max(priorities.values())

    # The dashboard's numbers: the learning curve has its first point.
    stats = annotator.get(f"/api/projects/{project.id}/stats/").json()
    assert stats["learning_curve"][0]["labels"] == 100
    assert stats["active_model"]["version"] == 1
    assert sum(b["images"] for b in stats["uncertainty_histogram"]) == 1900
