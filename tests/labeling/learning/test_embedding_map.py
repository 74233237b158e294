"""The embedding map: the worker's 2-D projection of a project's embeddings (PCA, sampled past
MAP_POINTS), the API that serves it with each point's label, prediction and uncertainty, and
the image list's ``ids`` filter that opens a selection on it.

    .venv/bin/python -m pytest tests/labeling/learning/test_embedding_map.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from labeling.images.models import Image
from labeling.learning import embedding_map
from labeling.learning.backbones import embeddings_write
from labeling.learning.embedding_map import embedding_map_build
from labeling.learning.models import Backbone, EmbeddingMap
from tests.factories import ImageFactory
from tests.labeling.learning.test_similar import a_backbone, planted

pytestmark = pytest.mark.django_db


@pytest.fixture
def embedded(project):
    images = [ImageFactory(project=project) for _ in range(60)]
    ids = [image.pk for image in images]
    embeddings_write(a_backbone(project), [str(i) for i in ids], planted(len(ids)))
    return ids


def test_the_map_keeps_the_clusters_apart_in_two_dimensions(embedded, project):
    built = embedding_map_build(project=project)
    points = built.points
    assert sorted(points["id"]) == sorted(embedded) and built.total == 60
    xy = np.array([points["x"], points["y"]]).T
    assert xy.min() >= 0 and xy.max() <= 1
    cluster = np.array([embedded.index(i) % 3 for i in points["id"]])
    centres = np.array([xy[cluster == c].mean(axis=0) for c in range(3)])
    spread = max(np.linalg.norm(xy[cluster == c] - centres[c], axis=1).max() for c in range(3))
    apart = min(np.linalg.norm(centres[a] - centres[b]) for a, b in ((0, 1), (0, 2), (1, 2)))
    assert apart > 2 * spread  # every cluster well clear of the others
    assert sum(built.explained) > 0.9


def test_a_large_project_is_sampled_the_same_way_until_its_vectors_change(
    embedded, project, monkeypatch
):
    monkeypatch.setattr(embedding_map, "MAP_POINTS", 20)
    first = embedding_map_build(project=project)
    assert len(first.points["id"]) == 20 and first.total == 60
    EmbeddingMap.objects.filter(pk=project.pk).delete()
    again = embedding_map_build(project=project)
    assert again.points == first.points
    unchanged = embedding_map_build(project=project)
    assert unchanged.built_at == again.built_at  # nothing new: not recomputed
    newcomer = ImageFactory(project=project)
    embeddings_write(Backbone.objects.get(project=project), [str(newcomer.pk)], planted(1))
    assert embedding_map_build(project=project).total == 61


def test_the_api_serves_points_with_labels_predictions_and_uncertainty_now(
    embedded, project, bob, alice, as_user
):
    assert as_user(bob).get(f"/api/projects/{project.pk}/embedding-map/").status_code == 409
    embedding_map_build(project=project)
    Image.objects.filter(pk=embedded[0]).update(consensus_label="3", status="labeled")
    Image.objects.filter(pk=embedded[1]).update(predicted_label="7", uncertainty=0.25)
    Image.objects.filter(pk=embedded[2]).update(gold_label="5", consensus_label="5")
    Image.objects.filter(pk=embedded[3]).delete()
    body = as_user(bob).get(f"/api/projects/{project.pk}/embedding-map/").json()
    assert body["source"] == {"kind": "backbone", "number": 1} and body["method"] == "pca"
    assert body["labels"] == list(project.labels) and body["sampled"] == 59
    points = body["points"]
    at = {image_id: n for n, image_id in enumerate(points["id"])}
    assert embedded[3] not in at
    assert points["label"][at[embedded[0]]] == project.labels.index("3")
    assert points["predicted"][at[embedded[1]]] == project.labels.index("7")
    assert points["uncertainty"][at[embedded[1]]] == 0.25
    assert points["label"][at[embedded[2]]] == -1  # a gold question, to an annotator
    admin = as_user(alice).get(f"/api/projects/{project.pk}/embedding-map/").json()["points"]
    assert admin["label"][at[embedded[2]]] == project.labels.index("5")


def test_an_outsider_gets_404_for_the_map(embedded, project, mallory, as_user):
    embedding_map_build(project=project)
    assert as_user(mallory).get(f"/api/projects/{project.pk}/embedding-map/").status_code == 404


def test_the_image_list_filters_by_ids_and_refuses_bad_ones(embedded, project, alice, as_user):
    url = f"/api/projects/{project.pk}/images/"
    picked = embedded[5:9]
    body = as_user(alice).get(url, {"ids": ",".join(map(str, picked))}).json()
    assert sorted(r["id"] for r in body["results"]) == sorted(picked)
    response = as_user(alice).get(url, {"ids": "1,two"})
    assert response.status_code == 400 and response.json()["error"]["details"] == {"ids": "1,two"}
    response = as_user(alice).get(url, {"ids": ",".join(str(i) for i in range(1, 1002))})
    assert response.status_code == 400 and "at most 1000" in response.json()["error"]["message"]
