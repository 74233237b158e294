"""The stats endpoint says how many labels each accuracy was measured on, with its 95%
interval: an admin reading "100%" after the first round sees that it is 5 of 5."""

from __future__ import annotations

import pytest

from labeling.learning.models import ModelVersion
from tests.factories import model_version


def _version(project, number: int, metrics: dict, active: bool = False) -> ModelVersion:
    return model_version(
        project, number, metrics=metrics, labels_used=metrics.get("labels", 0), active=active
    )


@pytest.mark.django_db
def test_each_accuracy_comes_with_its_held_out_count_and_interval(project, alice, as_user):
    _version(project, 1, {"accuracy": 1.0, "n_val": 5, "labels": 50, "val_source": "split"})
    _version(
        project,
        2,
        {"accuracy": 0.9, "n_val": 40, "labels": 400, "val_source": "random_slice"},
        active=True,
    )
    _version(project, 3, {"accuracy": None, "labels": 450})  # a version that recorded none

    stats = as_user(alice).get(f"/api/projects/{project.id}/stats/").json()
    first, second, third = stats["learning_curve"]
    assert first["val_images"] == 5
    assert first["accuracy_interval"] == pytest.approx([0.5655, 1.0], abs=1e-4)
    assert second["val_images"] == 40
    low, high = second["accuracy_interval"]
    assert 0.76 < low < 0.9 < high < 0.97
    assert third["val_images"] is None and third["accuracy_interval"] is None
    active = stats["active_model"]
    assert active["version"] == 2
    assert (active["val_images"], active["accuracy_interval"]) == (40, [low, high])
