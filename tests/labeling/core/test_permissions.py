"""Every endpoint x {anonymous, outsider, viewer, annotator, reviewer, project admin, staff},
and every endpoint x {admin, reviewer, annotator} of project A aimed at project B's objects
(IDOR).

Non-members get 404 for a project's resources; members lacking the role get 403;
anonymous callers get 401. A member of another project gets the same 404 as an outsider
(existence does not leak) and changes nothing. ``test_every_api_route_is_in_the_matrix``
fails when an endpoint is added to the URL conf without a row here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.annotations.models import LabelReview
from labeling.learning.models import ModelVersion, TrainingRun
from labeling.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent
from tests.factories import ImageFactory, png_bytes
from tests.labeling.images.helpers import upload

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "outsider", "viewer", "annotator", "reviewer", "admin", "staff"]
RANK = {"viewer": 0, "annotator": 1, "reviewer": 2, "admin": 3, "staff": 3}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: Callable[[dict], str]
    needs: str  # viewer | annotator | reviewer | admin | staff | any
    ok: int
    body: Callable[[dict], dict] | None = None
    multipart: bool = False
    setup: Callable[[dict, object], None] | None = None


def show_the_active_models_maps(context: dict) -> None:
    from labeling.learning.models import ModelVersion
    from labeling.projects.models import Project

    Project.objects.filter(pk=context["project"].pk).update(show_suggestions=True)
    ModelVersion.objects.filter(pk=context["version"].pk).update(is_active=True)


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
    "rename class": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/labels/rename/",
        "admin",
        200,
        lambda c: {"old": c["project"].labels[0], "new": "renamed"},
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
    # Annotators see maps only where the project shows suggestions (else 403, tested in
    # tests/labeling/learning/test_explanations.py); here it does. The active version's map.
    "activation map": Endpoint(
        "get",
        lambda c: f"/api/images/{c['image'].id}/explanation/",
        "viewer",
        202,
        setup=lambda c, user: show_the_active_models_maps(c),
    ),
    # Any member; this project has no embeddings yet, so past the permission checks: 409.
    "similar images": Endpoint(
        "get", lambda c: f"/api/images/{c['image'].id}/similar/", "viewer", 409
    ),
    "embedding map": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/embedding-map/", "viewer", 409
    ),
    "stats": Endpoint("get", lambda c: f"/api/projects/{c['project'].id}/stats/", "viewer", 200),
    "next tasks": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/tasks/next/",
        "annotator",
        200,
        lambda c: {"count": 2},
    ),
    "grid page": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/tasks/grid/",
        "annotator",
        200,
        lambda c: {"size": 4},
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
    "list backbones": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/backbones/", "viewer", 200
    ),
    "import backbone weights": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/backbones/",
        "admin",
        202,
        # The start of a torch.save zip: the web side checks only the kind and the size.
        lambda c: {"file": upload("w.pth", b"PK\x03\x04" + b"\0" * 60)},
        multipart=True,
    ),
    "list model versions": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/model-versions/", "viewer", 200
    ),
    "export model version": Endpoint(
        "get", lambda c: f"/api/model-versions/{c['version'].id}/export/?format=onnx", "admin", 202
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
    "list reviews": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/reviews/", "reviewer", 200
    ),
    "read review": Endpoint("get", lambda c: f"/api/reviews/{c['review'].id}/", "reviewer", 200),
    "decide review": Endpoint(
        "post",
        lambda c: f"/api/reviews/{c['review'].id}/decision/",
        "reviewer",
        200,
        lambda c: {"decision": "relabel", "label": "5", "decision_id": str(uuid.uuid4())},
    ),
    "export": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/export/?format=csv", "admin", 200
    ),
    "mark gold": Endpoint(
        "post",
        lambda c: f"/api/images/{c['image'].id}/gold/",
        "admin",
        200,
        lambda c: {"label": "1"},
    ),
    "unmark gold": Endpoint("delete", lambda c: f"/api/images/{c['image'].id}/gold/", "admin", 200),
    "annotator quality": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/annotators/", "reviewer", 200
    ),
    "list webhooks": Endpoint(
        "get", lambda c: f"/api/projects/{c['project'].id}/webhooks/", "admin", 200
    ),
    "add webhook": Endpoint(
        "post",
        lambda c: f"/api/projects/{c['project'].id}/webhooks/",
        "admin",
        201,
        # A literal public address: the URL check needs no DNS (this machine has none).
        lambda c: {"url": "https://93.184.216.34/hook"},
    ),
    "read webhook": Endpoint("get", lambda c: f"/api/webhooks/{c['webhook'].id}/", "admin", 200),
    "change webhook": Endpoint(
        "patch",
        lambda c: f"/api/webhooks/{c['webhook'].id}/",
        "admin",
        200,
        lambda c: {"description": "x"},
    ),
    "delete webhook": Endpoint(
        "delete", lambda c: f"/api/webhooks/{c['webhook'].id}/", "admin", 204
    ),
    "webhook deliveries": Endpoint(
        "get", lambda c: f"/api/webhooks/{c['webhook'].id}/deliveries/", "admin", 200
    ),
    "ping webhook": Endpoint(
        "post", lambda c: f"/api/webhooks/{c['webhook'].id}/test/", "admin", 202
    ),
    "redeliver": Endpoint(
        "post",
        lambda c: f"/api/webhooks/{c['webhook'].id}/deliveries/{c['delivery'].id}/redeliver/",
        "admin",
        202,
    ),
}

# Routes under /api/ that act on no project's objects, and why they are not in ENDPOINTS.
NOT_PROJECT_SCOPED = {
    "auth-token": "exchanges a password for a token (tests/labeling/core/test_api_basics.py)",
    "auth-login": "session login (tests/labeling/web/)",
    "auth-logout": "ends the caller's own session",
    "auth-me": "describes the caller only",
    "health": "public liveness probe; says up or down, nothing else",
    "schema": "the public API description",
    "api-docs": "the public interactive docs",
}


def world(project) -> dict:
    """One of each object in ``project`` for the endpoints to aim at."""
    context = {"project": project, "image": ImageFactory(project=project)}
    # A label the model doubts, in the review queue.
    doubted = ImageFactory(project=project, status="labeled", consensus_label="3")
    context["review"] = LabelReview.objects.create(
        project=project,
        image=doubted,
        score=0.9,
        given_label="3",
        model_label="5",
        model_confidence=0.8,
    )
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
    context["webhook"] = Webhook.objects.create(
        project=project,
        url="https://93.184.216.34/hook",
        events=list(WebhookEvent.values),
        secret="s" * 32,
    )
    context["delivery"] = WebhookDelivery.objects.create(
        webhook=context["webhook"],
        event=WebhookEvent.RUN_FAILED,
        payload={"event": "run.failed"},
        status=DeliveryStatus.FAILED,
        attempts=8,
        next_attempt_at=timezone.now(),
    )
    return context


def call(endpoint: Endpoint, client, context: dict):
    kwargs = {}
    if endpoint.body is not None:
        kwargs = {
            "data": endpoint.body(context),
            "format": "multipart" if endpoint.multipart else "json",
        }
    return getattr(client, endpoint.method)(endpoint.path(context), **kwargs)


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
    from labeling.projects.models import Membership
    from tests.factories import UserFactory

    UserFactory(username="newcomer")
    rita = UserFactory(username="rita")
    Membership.objects.create(project=project, user=rita, role="reviewer")
    users = {
        "anonymous": None,
        "outsider": mallory,
        "viewer": victor,
        "annotator": bob,
        "reviewer": rita,
        "admin": alice,
        "staff": staff,
    }
    context = world(project)
    endpoint = ENDPOINTS[name]
    if endpoint.setup is not None:
        endpoint.setup(context, users[role])
    response = call(endpoint, as_user(users[role]), context)
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


def test_an_admin_makes_someone_a_reviewer_and_they_see_their_role(project, alice, as_user):
    from tests.factories import UserFactory

    newcomer = UserFactory(username="newcomer")
    added = as_user(alice).post(
        f"/api/projects/{project.id}/members/",
        {"username": "newcomer", "role": "reviewer"},
        format="json",
    )
    assert added.status_code == 201, added.content
    assert added.json()["role"] == "reviewer"
    (row,) = as_user(newcomer).get("/api/projects/").json()
    assert row["role"] == "reviewer"
    assert as_user(newcomer).get(f"/api/projects/{project.id}/").json()["role"] == "reviewer"


# --- IDOR: members of project A guessing the ids of project B's objects ---

PROJECT_SCOPED = sorted(name for name, e in ENDPOINTS.items() if e.needs not in ("any", "staff"))


def snapshot(project) -> dict:
    """Everything of a project that an endpoint could change."""
    from labeling.annotations.models import Annotation
    from labeling.images.models import Image
    from labeling.projects.models import Membership, Project
    from labeling.webhooks.models import WebhookDelivery

    return {
        "project": list(Project.objects.filter(pk=project.pk).values()),
        "members": sorted(Membership.objects.filter(project=project).values_list("user", "role")),
        "images": list(Image.objects.filter(project=project).order_by("id").values()),
        "annotations": Annotation.objects.filter(image__project=project).count(),
        "runs": list(TrainingRun.objects.filter(project=project).order_by("id").values()),
        "versions": list(ModelVersion.objects.filter(project=project).order_by("id").values()),
        "webhooks": list(Webhook.objects.filter(project=project).order_by("id").values()),
        "reviews": list(LabelReview.objects.filter(project=project).order_by("id").values()),
        "deliveries": WebhookDelivery.objects.filter(webhook__project=project).count(),
    }


@pytest.mark.parametrize("attacker_role", ["admin", "reviewer", "annotator"])
@pytest.mark.parametrize("name", PROJECT_SCOPED)
def test_a_member_of_another_project_gets_404_and_changes_nothing(
    name, attacker_role, project, as_user
):
    from labeling.projects.models import Membership
    from tests.factories import ProjectFactory, UserFactory

    UserFactory(username="newcomer")
    attacker = UserFactory(username="eve")
    own = ProjectFactory(name="Eve's", slug="eves")
    Membership.objects.create(project=own, user=attacker, role=attacker_role)
    world(own)  # the attacker's own project has objects of every kind too
    target = world(project)
    endpoint = ENDPOINTS[name]
    if endpoint.setup is not None:
        endpoint.setup(target, attacker)
    before = snapshot(project)

    response = call(endpoint, as_user(attacker), target)

    assert response.status_code == 404, response.content[:300]
    assert response.json()["error"]["code"] == "not_found"
    assert snapshot(project) == before


def test_every_api_route_is_in_the_matrix():
    """Each (route, method) under /api/ has a row in ENDPOINTS, or is listed as not scoped to
    a project with the reason: a new endpoint cannot skip the role and IDOR checks."""
    from django.urls import get_resolver, resolve

    routes: set[tuple[str, str]] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/") and pattern.name not in NOT_PROJECT_SCOPED:
                view = getattr(pattern.callback, "view_class", None)
                assert view is not None, f"{route} is not a class-based view"
                for method in ("get", "post", "put", "patch", "delete"):
                    if hasattr(view, method):
                        routes.add((pattern.name, method))

    walk(get_resolver().url_patterns, "")
    ids = {
        key: 1 for key in ("project", "image", "run", "version", "webhook", "delivery", "review")
    }
    context = {key: type("Obj", (), {"id": 1})() for key in ids}
    covered = {
        (resolve(endpoint.path(context).split("?")[0]).url_name, endpoint.method)
        for endpoint in ENDPOINTS.values()
    }
    assert routes - covered == set(), "add these to ENDPOINTS in this file"
    assert len(routes) >= 30
