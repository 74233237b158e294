"""Every endpoint so far x {anonymous, outsider, viewer, annotator, project admin, staff}.

Non-members get 404 for a project's resources; members lacking the role get 403;
anonymous callers get 401.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.learning.models import ModelVersion, TrainingRun
from tests.factories import ImageFactory, png_bytes
from tests.labeling.images.helpers import upload

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "outsider", "viewer", "annotator", "admin", "staff"]
RANK = {"viewer": 0, "annotator": 1, "admin": 2, "staff": 2}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: Callable[[dict], str]
    needs: str  # viewer | annotator | admin | staff | any
    ok: int
    body: Callable[[dict], dict] | None = None
    multipart: bool = False
    setup: Callable[[dict, object], None] | None = None


def lease_to_caller(context: dict, user) -> None:
    from labeling.images.models import Image

    if user is not None:
        Image.objects.filter(pk=context["image"].pk).update(
            leased_to=user, lease_expires=timezone.now() + timedelta(minutes=5)
        )


ENDPOINTS = {
    "list projects": Endpoint("get", lambda c: "/api/projects/", "any", 200),
    "create project": Endpoint(
        "post",
        lambda c: "/api/projects/",
        "staff",
        201,
        lambda c: {"name": "New", "labels": ["a", "b"]},
    ),
    "read project": Endpoint("get", lambda c: f"/api/projects/{c['project'].id}/", "viewer", 200),
    "change project": Endpoint(
        "patch",
        lambda c: f"/api/projects/{c['project'].id}/",
        "admin",
        200,
        lambda c: {"description": "x"},
    ),
    "delete project": Endpoint(
        "delete", lambda c: f"/api/projects/{c['project'].id}/", "admin", 204
    ),
    "list members": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/members/", "admin", 200
    ),
    "add member": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/members/",
        "admin",
        201,
        lambda c: {"username": "newcomer", "role": "annotator"},
    ),
    "remove member": Endpoint(
        "delete",
        lambda c: f"/api/projects/{c['project'].id}/members/?username=victor",
        "admin",
        204,
    ),
    "upload images": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/images/",
        "admin",
        201,
        lambda c: {"files": [upload("x.png", png_bytes(99))]},
        multipart=True,
    ),
    "list images": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/images/", "viewer", 200
    ),
    "read image": Endpoint("get", lambda c: f"/api/images/{c['image'].id}/", "viewer", 200),
    "image bytes": Endpoint("get", lambda c: f"/api/images/{c['image'].id}/file/", "viewer", 200),
    "stats": Endpoint("get", lambda c: f"/api/projects/{c['project'].id}/stats/", "viewer", 200),
    "next tasks": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/tasks/next/",
        "annotator",
        200,
        lambda c: {"count": 2},
    ),
    "renew lease": Endpoint(
        "post",
        lambda c: f"/api/tasks/{c['image'].id}/renew/",
        "annotator",
        200,
        setup=lease_to_caller,
    ),
    "release lease": Endpoint(
        "post",
        lambda c: f"/api/tasks/{c['image'].id}/release/",
        "annotator",
        204,
        setup=lease_to_caller,
    ),
    "submit label": Endpoint(
        "post",
        lambda c: "/api/annotations/",
        "annotator",
        201,
        lambda c: {"image": c["image"].id, "label": "4", "client_id": str(uuid.uuid4())},
    ),
    "annotation history": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/annotations/", "viewer", 200
    ),
    "disagreements": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/disagreements/", "admin", 200
    ),
    "start training run": Endpoint(
        "post", lambda c: f"/api/projects/{c['project'].id}/training-runs/", "admin", 202
    ),
    "list training runs": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/training-runs/", "viewer", 200
    ),
    "read training run": Endpoint(
        "get", lambda c: f"/api/training-runs/{c['run'].id}/", "viewer", 200
    ),
    "cancel training run": Endpoint(
        "post", lambda c: f"/api/training-runs/{c['run'].id}/cancel/", "admin", 200
    ),
    "list model versions": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/model-versions/", "viewer", 200
    ),
    "activate model version": Endpoint(
        "post", lambda c: f"/api/model-versions/{c['version'].id}/activate/", "admin", 202
    ),
    "predict": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/predict/",
        "viewer",
        409,  # no active model in this fixture: the role check passes, then "no model yet"
        lambda c: {"files": [upload("x.png", png_bytes(5))]},
        multipart=True,
    ),
    "resolve": Endpoint(
        "post",
        lambda c: f"/api/images/{c['image'].id}/resolve/",
        "admin",
        201,
        lambda c: {"label": "1"},
    ),
}


def expected(endpoint: Endpoint, role: str) -> int:
    if role == "anonymous":
        return 401
    if endpoint.needs == "any":
        return endpoint.ok
    if endpoint.needs == "staff":
        return endpoint.ok if role == "staff" else 403
    if role == "outsider":
        return 404
    return endpoint.ok if RANK[role] >= RANK[endpoint.needs] else 403


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_permission_matrix(name, role, project, alice, bob, victor, mallory, staff, as_user):
    from tests.factories import UserFactory

    UserFactory(username="newcomer")
    users = {
        "anonymous": None,
        "outsider": mallory,
        "viewer": victor,
        "annotator": bob,
        "admin": alice,
        "staff": staff,
    }
    context = {"project": project, "image": ImageFactory(project=project)}
    context["run"] = TrainingRun.objects.create(project=project, trigger="manual")
    done = TrainingRun.objects.create(project=project, trigger="manual", status="succeeded")
    context["version"] = ModelVersion.objects.create(
        project=project,
        run=done,
        number=1,
        checkpoint_key="k",
        architecture="seed_cnn",
        labels_used=10,
    )
    endpoint = ENDPOINTS[name]
    if endpoint.setup is not None:
        endpoint.setup(context, users[role])
    client = as_user(users[role])
    kwargs = {}
    if endpoint.body is not None:
        kwargs = {
            "data": endpoint.body(context),
            "format": "multipart" if endpoint.multipart else "json",
        }
    response = getattr(client, endpoint.method)(endpoint.path(context), **kwargs)
    assert response.status_code == expected(endpoint, role), response.content[:300]
    if response.status_code >= 400:
        body = response.json()
        assert set(body["error"]) == {"code", "message", "details"}


def test_an_outsider_cannot_tell_a_missing_project_from_a_hidden_one(project, mallory, as_user):
    hidden = as_user(mallory).get(f"/api/projects/{project.id}/")
    missing = as_user(mallory).get("/api/projects/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_the_project_list_shows_only_my_projects(project, mallory, bob, as_user):
    assert as_user(mallory).get("/api/projects/").json() == []
    (row,) = as_user(bob).get("/api/projects/").json()
    assert (row["slug"], row["role"]) == ("digits", "annotator")
