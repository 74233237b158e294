"""A class renamed after models were trained: every model keeps its suggestions, scores and
predictions under the new name without a retrain, including a model whose training run was
running when the rename landed."""

from __future__ import annotations

import pytest

from labeling.images.models import Image
from labeling.learning.models import ModelVersion, RunStatus, TrainingRun
from labeling.learning.worker import Worker
from labeling.projects.services import project_label_rename
from tests.factories import label_first
from tests.labeling.learning.test_api import predict_digits


@pytest.mark.django_db(transaction=True)
def test_models_trained_before_a_rename_speak_the_new_name(
    ray_session, mnist_project, alice, bob, as_user, monkeypatch
):
    project, truth = mnist_project
    project.retrain_every, project.exploration_fraction = 0, 0.0
    project.save()
    admin = as_user(alice)
    label_first(project, bob, truth, 100)
    assert admin.post(f"/api/projects/{project.id}/training-runs/").status_code == 202
    Worker().run_forever(once=True)
    v1 = ModelVersion.objects.get(project=project, is_active=True)

    def predictions() -> dict[str, str | None]:
        rows = Image.objects.filter(project=project).values_list("original_name", "predicted_label")
        return dict(rows)

    def agreement(named: dict[str, str]) -> float:
        got = predictions()
        return sum(named.get(truth[name], truth[name]) == got[name] for name in got) / len(got)

    assert agreement({}) >= 0.8

    # The second run trains on labels read before the rename; the rename lands mid-training.
    label_first(project, bob, truth, 150, start=100)
    import training.train

    train = training.train.run_training

    def train_through_a_rename(spec, **kwargs):
        assert "3" in spec.classes
        project_label_rename(project=project, old="3", new="three")
        return train(spec, **kwargs)

    monkeypatch.setattr(training.train, "run_training", train_through_a_rename)
    assert admin.post(f"/api/projects/{project.id}/training-runs/").status_code == 202
    Worker().run_forever(once=True)
    monkeypatch.setattr(training.train, "run_training", train)
    run = TrainingRun.objects.filter(project=project).latest("id")
    assert run.status == RunStatus.SUCCEEDED, run.error
    v2 = ModelVersion.objects.get(run=run)
    assert v2.config["renames_seen"] == 0 and v2.is_active
    # Its scores name the class as it is called now: no image lost its suggestion.
    assert None not in predictions().values() and "3" not in predictions().values()
    assert agreement({"3": "three"}) >= 0.8

    # Rolled back to the first model (trained before any rename): the same.
    assert admin.post(f"/api/model-versions/{v1.id}/activate/").status_code == 202
    Worker().run_forever(once=True)
    assert set(predictions().values()) == {str(d) for d in range(10) if d != 3} | {"three"}
    assert agreement({"3": "three"}) >= 0.8
    model = admin.get(f"/api/projects/{project.id}/stats/").json()["active_model"]
    assert model["version"] == 1 and model["classes"][3] == "three"
    assert "three" in model["per_class"] and "3" not in model["per_class"]
    results = predict_digits(as_user(bob), project)
    assert all("three" in r["probabilities"] and "3" not in r["probabilities"] for r in results)
    assert sum(r["predicted"] == (str(d), "three")[d == 3] for d, r in enumerate(results)) >= 7

    # The next model learns the class under its new name, from every label.
    assert admin.post(f"/api/projects/{project.id}/training-runs/").status_code == 202
    Worker().run_forever(once=True)
    v3 = ModelVersion.objects.get(project=project, number=3)
    assert (v3.config["renames_seen"], v3.labels_used) == (1, 150)
    assert set(predictions().values()) <= set(project.labels) | {"three"}
    assert "3" not in predictions().values()
