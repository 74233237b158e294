"""More like this: an image's nearest neighbours by embedding, from the project's pgvector
index (built and refreshed by the worker) or searched exactly before there is one; the API's
answers and refusals; a round without a backbone storing its model's features.

    .venv/bin/python -m pytest tests/labeling/learning/test_similar.py -q
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from django.db import connection

from labeling.images.models import Image
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import file_source
from labeling.learning.backbones import embeddings_write
from labeling.learning.models import (
    Backbone,
    EmbeddingMap,
    ImageEmbedding,
    RunStatus,
    RunTrigger,
    SimilarIndex,
    TrainingRun,
)
from labeling.learning.runs import run_request
from labeling.learning.similar import similar_index_refresh, table_name
from labeling.learning.worker import Worker
from labeling.projects.services import project_delete
from tests.factories import ImageFactory, digits_project_from, label_first

DIM = 16


def a_backbone(project, number: int = 1) -> Backbone:
    """A registered backbone's row (its file is never opened here: the vectors are given)."""
    return Backbone.objects.create(
        project=project,
        number=number,
        source=Backbone.Source.IMPORT,
        file_key=f"backbones/{project.slug}/b{number}.pt",
        file_sha256=f"{number:064d}",
        arch="resnet18",
        width=8,
        stem="small",
        input_size=28,
        embed_dim=DIM,
    )


def planted(n: int, seed: int = 0) -> np.ndarray:
    """n vectors in three tight clusters (by index mod 3) around random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, DIM)) * 4
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, DIM)) * 0.3).astype(np.float16)


def nearest_by_hand(vectors: np.ndarray, ids: list[int], anchor: int, k: int) -> list[int]:
    x = vectors.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    d = 1 - x @ x[ids.index(anchor)]
    return [ids[i] for i in np.argsort(d) if ids[i] != anchor][:k]


@pytest.fixture
def embedded(project):
    """60 images with planted vectors from a backbone; (ids, vectors)."""
    images = [ImageFactory(project=project) for _ in range(60)]
    ids = [image.pk for image in images]
    vectors = planted(len(ids))
    embeddings_write(a_backbone(project), [str(i) for i in ids], vectors)
    return ids, vectors


def similar(as_user, user, image_id: int, **params):
    return as_user(user).get(f"/api/images/{image_id}/similar/", params)


@pytest.mark.django_db
def test_the_neighbours_are_the_nearest_by_cosine_from_the_index(embedded, bob, as_user):
    ids, vectors = embedded
    index = similar_index_refresh(project=Image.objects.get(pk=ids[0]).project)
    assert index is not None and index.size == 60 and index.dim == DIM
    response = similar(as_user, bob, ids[4], k=5)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["method"] == "hnsw"
    assert body["source"] == {"kind": "backbone", "number": 1}
    found = [r["id"] for r in body["results"]]
    assert found == nearest_by_hand(vectors, ids, ids[4], 5)
    assert all(ids.index(i) % 3 == 4 % 3 for i in found)  # its own cluster
    distances = [r["distance"] for r in body["results"]]
    assert distances == sorted(distances) and 0 <= distances[0] < 0.1
    assert body["results"][0]["file_url"] == f"/api/images/{found[0]}/file/"


@pytest.mark.django_db
def test_before_the_index_is_built_the_search_is_exact_and_agrees(embedded, bob, as_user):
    ids, vectors = embedded
    response = similar(as_user, bob, ids[7])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["method"] == "exact" and body["k"] == 12
    assert [r["id"] for r in body["results"]] == nearest_by_hand(vectors, ids, ids[7], 12)


@pytest.mark.django_db
def test_the_query_is_answered_by_the_hnsw_index(embedded):
    ids, _ = embedded
    project = Image.objects.get(pk=ids[0]).project
    similar_index_refresh(project=project)
    table = table_name(project.pk)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # 60 rows: the planner would rather scan
        cursor.execute(f"SELECT vec::text FROM {table} LIMIT 1")
        (vec,) = cursor.fetchone()
        cursor.execute(
            f"EXPLAIN SELECT image_id FROM {table} ORDER BY vec <=> %s::halfvec LIMIT 5", [vec]
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert f"{table}_hnsw" in plan


@pytest.mark.django_db
def test_the_refresh_adds_new_vectors_drops_deleted_images_and_rebuilds_for_a_new_backbone(
    embedded, project
):
    ids, vectors = embedded
    first = similar_index_refresh(project=project)
    assert first.size == 60
    newcomer = ImageFactory(project=project)
    embeddings_write(Backbone.objects.get(project=project), [str(newcomer.pk)], vectors[:1])
    Image.objects.filter(pk=ids[0]).delete()
    topped = similar_index_refresh(project=project)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT image_id FROM {table_name(project.pk)}")
        held = {row[0] for row in cursor.fetchall()}
    assert topped.size == 60 and held == (set(ids) - {ids[0]}) | {newcomer.pk}
    second = a_backbone(project, number=2)
    embeddings_write(second, [str(i) for i in ids[1:]], planted(59, seed=1))
    rebuilt = similar_index_refresh(project=project)
    assert rebuilt.backbone == second and rebuilt.size == 59  # the newcomer has no vector yet


@pytest.mark.django_db
def test_an_image_without_a_vector_and_a_project_without_any_are_told_so(
    embedded, project, alice, as_user
):
    similar_index_refresh(project=project)
    newcomer = ImageFactory(project=project)
    response = similar(as_user, alice, newcomer.pk)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_embedding"
    ImageEmbedding.objects.all().delete()
    SimilarIndex.objects.all().delete()
    response = similar(as_user, alice, newcomer.pk)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_embeddings"


@pytest.mark.django_db
@pytest.mark.parametrize("k", ["0", "101", "many", "-3"])
def test_k_outside_one_to_a_hundred_is_refused_naming_k(embedded, bob, as_user, k):
    response = similar(as_user, bob, embedded[0][0], k=k)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"] == {"k": k} and "k must" in error["message"]


@pytest.mark.django_db
def test_an_outsider_gets_404(embedded, mallory, as_user):
    response = similar(as_user, mallory, embedded[0][0])
    assert response.status_code == 404


@pytest.mark.django_db
def test_a_gold_question_among_the_neighbours_reads_as_unlabeled_to_an_annotator(
    embedded, alice, bob, as_user
):
    ids, vectors = embedded
    target = nearest_by_hand(vectors, ids, ids[4], 1)[0]
    Image.objects.filter(pk=target).update(gold_label="3", consensus_label="3", status="labeled")
    shown = {r["id"]: r for r in similar(as_user, bob, ids[4], k=3).json()["results"]}
    assert shown[target]["consensus_label"] is None and shown[target]["gold_label"] is None
    shown = {r["id"]: r for r in similar(as_user, alice, ids[4], k=3).json()["results"]}
    assert shown[target]["gold_label"] == "3"


@pytest.fixture(scope="module")
def pngs_120(mnist_pngs, tmp_path_factory):
    folder, truth = mnist_pngs
    target = tmp_path_factory.mktemp("mnist120")
    names = sorted(truth)[:120]
    for name in names:
        shutil.copy(folder / name, target / name)
    return target, {name: truth[name] for name in names}


@pytest.mark.django_db(transaction=True)
def test_a_round_without_a_backbone_stores_its_model_features_and_indexes_them(
    pngs_120, mnist_pngs, alice, bob, as_user, ray_session
):
    folder, truth = pngs_120
    project = digits_project_from(folder, admin=alice, annotator=bob, name="Sim", retrain_every=0)
    TrainingRun.objects.filter(project=project).update(status=RunStatus.CANCELLED)  # cold start
    label_first(project, alice, truth, 30)
    run_request(project=project, trigger=RunTrigger.MANUAL)
    Worker(poll_seconds=0.1).run_forever(once=True, predict=False)
    run = TrainingRun.objects.get(project=project, trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    version = run.model_version
    stored = ImageEmbedding.objects.filter(model_version=version)
    assert stored.count() == 120 and not stored.exclude(backbone=None).exists()
    index = SimilarIndex.objects.get(project=project)
    assert index.model_version == version and index.size == 120
    drawn = EmbeddingMap.objects.get(project=project)  # the dashboard's map, drawn beside it
    assert drawn.model_version == version and len(drawn.points["id"]) == 120
    anchor = Image.objects.filter(project=project).order_by("id").first()
    body = similar(as_user, bob, anchor.pk, k=10).json()
    assert body["method"] == "hnsw" and body["source"] == {"kind": "model", "number": 1}
    assert len(body["results"]) == 10
    # The model's features put digits of the anchor's class nearer than chance (1 in 10).
    names = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
    same = [truth[names[r["id"]]] == truth[anchor.original_name] for r in body["results"]]
    assert sum(same) >= 3

    # An upload: the new_images run scores the newcomers with the model, stores their
    # features, and the index takes them in.
    folder, _ = mnist_pngs
    extra = sorted(p for p in folder.iterdir() if p.name not in truth)[:5]
    limits = ingest_limits()
    sources = [
        file_source(io.BytesIO(p.read_bytes()), name=p.name, max_bytes=limits.max_bytes)
        for p in extra
    ]
    images_ingest(project=project, user=alice, sources=sources)
    Worker(poll_seconds=0.1).run_forever(once=True, predict=False)
    scoring = TrainingRun.objects.get(project=project, trigger=RunTrigger.NEW_IMAGES)
    assert scoring.status == RunStatus.SUCCEEDED, scoring.error
    assert ImageEmbedding.objects.filter(model_version=version).count() == 125
    assert SimilarIndex.objects.get(project=project).size == 125


@pytest.mark.django_db
def test_deleting_the_project_drops_its_index_table(embedded, project):
    similar_index_refresh(project=project)
    table = table_name(project.pk)
    project_delete(project=project)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [table])
        assert cursor.fetchone()[0] is None
