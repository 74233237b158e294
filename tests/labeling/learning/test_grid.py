"""Grid labeling: the queue's page of alike images (``learning/grid.py``), its leases, its
exploration share, the lasso's selection, the reasons it gives when there is no page, the
labels recorded as grid labels, and the API's refusals.

    .venv/bin/python -m pytest tests/labeling/learning/test_grid.py -q
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid

import numpy as np
import pytest

from labeling.annotations.models import Annotation, LeaseLog
from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning.backbones import embeddings_write
from labeling.learning.grid import grid_page_lease
from labeling.projects.models import Project
from tests.factories import ImageFactory, model_version
from tests.labeling.learning.test_similar import a_backbone

DIM = 16


def grid(as_user, user, project, **body):
    response = as_user(user).post(f"/api/projects/{project.id}/tasks/grid/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def pool(project):
    """A project with suggestions on, an active model, no exploration, and 44 images: 24 the
    model calls "3" surely (12 in each of two embedding clusters, the surest in cluster A), 10
    "5" surely, 10 "7" unsurely. Returns {"A": ids, "B": ids, "5": ids, "7": ids}."""
    Project.objects.filter(pk=project.pk).update(show_suggestions=True, exploration_fraction=0)
    project.refresh_from_db()
    model_version(project, 1, active=True)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, DIM)) * 4
    groups: dict[str, list[int]] = {"A": [], "B": [], "5": [], "7": []}
    ids, vectors = [], []
    for n in range(44):
        group = "A" if n < 12 else "B" if n < 24 else "5" if n < 34 else "7"
        label = {"A": "3", "B": "3"}.get(group, group)
        # Cluster A holds the surest image; B's images are as sure as A's others.
        confidence = 0.5 if group == "7" else (0.999 if n == 0 else 0.95 + (n % 12) * 0.003)
        image = ImageFactory(
            project=project,
            predicted_label=label,
            confidence=confidence,
            uncertainty=1 - confidence,
        )
        groups[group].append(image.pk)
        ids.append(image.pk)
        centre = centres[1 if group == "B" else 0]
        vectors.append(centre + rng.normal(size=DIM) * 0.2)
    embeddings_write(a_backbone(project), [str(i) for i in ids], np.array(vectors, np.float16))
    return groups


def test_a_page_is_one_sure_class_near_its_surest_image_leased_surest_first(
    bob, project, as_user, pool
):
    page = grid(as_user, bob, project, size=12)
    assert page["grid"] is True and page["reason"] == "" and page["proposed"] == "3"
    served = [task["image"] for task in page["tasks"]]
    # The surest image's cluster, not the equally sure images of the other one.
    assert sorted(served) == sorted(pool["A"])
    confidences = [task["confidence"] for task in page["tasks"]]
    assert confidences == sorted(confidences, reverse=True) and confidences[0] == 0.999
    assert all(task["suggestion"] == "3" and not task["exploration"] for task in page["tasks"])
    assert all(t["file_url"].endswith("/file/") and t["lease_expires"] for t in page["tasks"])
    held = Image.objects.filter(pk__in=served)
    assert all(image.leased_to_id == bob.pk for image in held)
    assert LeaseLog.objects.filter(user=bob, ended_at__isnull=True).count() == 12


def test_without_embeddings_a_page_is_the_surest_of_the_class(bob, project, as_user, pool):
    from labeling.learning.models import Backbone

    Backbone.objects.filter(project=project).delete()  # its embeddings go with it
    page = grid(as_user, bob, project, size=12)
    served = {task["image"] for task in page["tasks"]}
    # Two images tie at the 12th place's confidence: the server breaks ties by random_key.
    candidates = Image.objects.filter(pk__in=pool["A"] + pool["B"])
    sure = candidates.order_by("-confidence", "random_key")[:12]
    assert served == {image.pk for image in sure}


def test_a_second_annotator_gets_other_images_and_a_reload_gets_the_same_back(
    alice, bob, project, as_user, pool
):
    first = {task["image"] for task in grid(as_user, bob, project, size=12)["tasks"]}
    other = {task["image"] for task in grid(as_user, alice, project, size=12)["tasks"]}
    assert first and other and not first & other
    again = {task["image"] for task in grid(as_user, bob, project, size=12)["tasks"]}
    assert again == first  # the reloaded page takes its own leases back
    # ...ending the old lease log rows: never two open ones for one image and person.
    for image_id in first:
        assert LeaseLog.objects.filter(image_id=image_id, user=bob, ended_at=None).count() == 1
        assert LeaseLog.objects.filter(image_id=image_id, user=bob).count() == 2


def test_a_prefetch_serves_the_next_page_without_the_one_on_screen(bob, project, as_user, pool):
    """The client asks for the next page while one shows: that page's images (still leased
    to the caller) stay off it, where a plain request would hand them back."""
    shown = {task["image"] for task in grid(as_user, bob, project, size=12)["tasks"]}
    assert shown == set(pool["A"])
    ahead = grid(as_user, bob, project, size=12, prefetch=True)
    assert ahead["grid"] is True and ahead["proposed"] == "3"
    following = {task["image"] for task in ahead["tasks"]}
    assert following == set(pool["B"])  # the rest of the sure "3"s, none of the page on screen
    assert all(image.leased_to_id == bob.pk for image in Image.objects.filter(pk__in=shown))
    # The one after: the "5"s (fewer sure "3"s than a page needs are left).
    third = grid(as_user, bob, project, size=12, prefetch=True)
    assert third["proposed"] == "5" and {t["image"] for t in third["tasks"]} == set(pool["5"])
    last = grid(as_user, bob, project, size=12, prefetch=True)
    assert (last["grid"], last["reason"], last["tasks"]) == (False, "no_confident_page", [])


@pytest.mark.parametrize("selection", [False, True])
def test_nobody_hoards_pages_ahead_or_selections(bob, alice, project, as_user, pool, selection):
    """Each page ahead (or lasso page of other images) leases new images, where a plain
    request hands back what the caller holds: past two full pages held, a caller gets a 409
    until they label or give some back."""
    from django.utils import timezone

    first = {"images": pool["5"]} if selection else {"prefetch": True}
    body = {"images": pool["7"]} if selection else {"prefetch": True}
    later = timezone.now() + timezone.timedelta(minutes=10)
    held = [ImageFactory(project=project, leased_to=bob, lease_expires=later) for _ in range(96)]
    response = as_user(bob).post(f"/api/projects/{project.id}/tasks/grid/", first, format="json")
    assert response.status_code == 200, response.content  # 96 held: one more page is fine
    assert Image.objects.filter(leased_to=bob).count() > 96
    if selection:  # the same selection again only takes back what bob holds
        again = as_user(bob).post(f"/api/projects/{project.id}/tasks/grid/", first, format="json")
        assert again.status_code == 200, again.content
    response = as_user(bob).post(f"/api/projects/{project.id}/tasks/grid/", body, format="json")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "too_many_leases"
    assert "label or give back" in error["message"]
    if not selection:  # a plain request hands back the page bob holds, as before
        before = Image.objects.filter(leased_to=bob).count()
        assert grid(as_user, bob, project, size=12)["grid"] is True
        assert Image.objects.filter(leased_to=bob).count() == before
    Image.objects.filter(pk__in=[i.pk for i in held]).update(leased_to=None, lease_expires=None)
    response = as_user(bob).post(f"/api/projects/{project.id}/tasks/grid/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["tasks"]


def test_grid_labels_go_through_the_same_submit_and_are_recorded_as_grid(
    bob, project, as_user, pool
):
    page = grid(as_user, bob, project, size=8)
    client = as_user(bob)
    ids = [uuid.uuid4() for _ in page["tasks"]]
    for task, client_id in zip(page["tasks"], ids, strict=True):
        body = {
            "image": task["image"],
            "label": page["proposed"],
            "client_id": str(client_id),
            "duration_ms": 250,
            "view": "grid",
        }
        assert client.post("/api/annotations/", body, format="json").status_code == 201
        # A replay (the outbox retrying after a lost answer) is the same row.
        replay = client.post("/api/annotations/", body, format="json")
        assert replay.status_code == 200 and replay.json()["view"] == "grid"
    rows = Annotation.objects.filter(annotator=bob)
    assert rows.count() == 8 and {row.view for row in rows} == {"grid"}
    assert {row.duration_ms for row in rows} == {250}
    assert not Image.objects.filter(pk__in=[t["image"] for t in page["tasks"]], leased_to=bob)
    # Labeled by bob: never on his next page.
    labeled = {task["image"] for task in page["tasks"]}
    assert not labeled & {task["image"] for task in grid(as_user, bob, project, size=24)["tasks"]}
    single = client.post(
        "/api/annotations/",
        {"image": pool["7"][0], "label": "7", "client_id": str(uuid.uuid4())},
        format="json",
    )
    assert single.json()["view"] == "single"


def test_a_skipped_image_stays_off_the_users_pages(bob, project, as_user, pool):
    page = grid(as_user, bob, project, size=12)
    skipped = page["tasks"][0]["image"]
    assert as_user(bob).post(f"/api/tasks/{skipped}/release/", {}, format="json").status_code == 204
    again = {task["image"] for task in grid(as_user, bob, project, size=12)["tasks"]}
    assert skipped not in again and len(again) == 12


def test_a_page_keeps_the_exploration_share_marked_and_in_the_random_slice(bob, project, pool):
    Project.objects.filter(pk=project.pk).update(exploration_fraction=0.5)
    project.refresh_from_db()
    page = grid_page_lease(project=project, user=bob, size=24, rng=random.Random(3))
    explored = [task for task in page.tasks if task.exploration]
    # About half of 24 cells, capped so that at least 8 stay alike.
    assert 4 <= len(explored) <= 16 and len(page.tasks) == 24
    assert set(Image.objects.filter(pk__in=[t.image_id for t in explored]).values_list(
        "lease_exploration", flat=True)) == {True}  # fmt: skip
    alike = [task for task in page.tasks if not task.exploration]
    assert all(task.suggestion == "3" for task in alike)
    assert not Image.objects.filter(pk__in=[t.image_id for t in alike], lease_exploration=True)
    # A submitted exploration label joins the random slice, as from tasks/next.
    target = Image.objects.get(pk=explored[0].image_id)
    annotation_submit(image=target, user=bob, label="1", client_id=uuid.uuid4(), view="grid")
    target.refresh_from_db()
    assert target.in_random_slice is True


def test_a_probe_says_whether_a_page_waits_and_leases_nothing(bob, project, as_user, pool):
    probe = grid(as_user, bob, project, probe=True)
    assert probe["grid"] is True and probe["proposed"] == "3" and probe["tasks"] == []
    assert not Image.objects.filter(leased_to=bob).exists() and not LeaseLog.objects.exists()
    Image.objects.filter(project=project).update(confidence=0.5)
    probe = grid(as_user, bob, project, probe=True)
    assert probe["grid"] is False and probe["reason"] == "no_confident_page"
    both = as_user(bob).post(
        f"/api/projects/{project.id}/tasks/grid/", {"probe": True, "images": [1]}, format="json"
    )
    assert both.status_code == 400 and "probe" in both.json()["error"]["details"]
    flag = as_user(bob).post(
        f"/api/projects/{project.id}/tasks/grid/", {"probe": "yes"}, format="json"
    )
    assert flag.status_code == 400 and "probe" in flag.json()["error"]["details"]


def test_no_page_says_why(alice, bob, project, as_user, pool):
    Image.objects.filter(project=project).update(confidence=0.5)
    page = grid(as_user, bob, project)
    assert page["grid"] is False and page["tasks"] == [] and page["reason"] == "no_confident_page"
    assert "90%" in page["message"] and "fewer than 8" in page["message"]
    assert not Image.objects.filter(leased_to=bob).exists()
    Project.objects.filter(pk=project.pk).update(show_suggestions=False)
    assert grid(as_user, bob, project)["reason"] == "suggestions_off"
    Project.objects.filter(pk=project.pk).update(show_suggestions=True)
    from labeling.learning.models import ModelVersion

    ModelVersion.objects.filter(project=project).update(is_active=False)
    none = grid(as_user, bob, project)
    assert none["reason"] == "no_model" and "first round" in none["message"]


def test_a_lasso_selection_leases_what_is_eligible_and_proposes_its_majority(
    alice, bob, project, as_user, pool
):
    elsewhere = ImageFactory()  # another project's image: never leased through this one
    labeled = pool["5"][0]
    annotation_submit(
        image=Image.objects.get(pk=labeled), user=alice, label="5", client_id=uuid.uuid4()
    )
    chosen = [*pool["7"][:3], *pool["5"][:2], elsewhere.pk]
    page = grid(as_user, bob, project, images=chosen, size=24)
    served = [task["image"] for task in page["tasks"]]
    assert page["grid"] is True and page["proposed"] == "7"
    assert sorted(served) == sorted([*pool["7"][:3], pool["5"][1]])
    assert served[0] == pool["5"][1]  # surest first
    Image.objects.filter(pk=elsewhere.pk).update(leased_to=None)
    assert Image.objects.get(pk=elsewhere.pk).leased_to_id is None
    gone = grid(as_user, alice, project, images=[labeled, elsewhere.pk])
    assert gone["grid"] is False and gone["reason"] == "nothing_selected"


def test_a_lasso_page_without_suggestions_proposes_nothing(bob, project, as_user, pool):
    Project.objects.filter(pk=project.pk).update(show_suggestions=False)
    page = grid(as_user, bob, project, images=pool["7"][:4])
    assert page["grid"] is True and page["proposed"] is None and len(page["tasks"]) == 4
    assert {(t["suggestion"], t["confidence"]) for t in page["tasks"]} == {(None, None)}


@pytest.mark.parametrize(
    "body",
    [
        {"size": 3},
        {"size": 49},
        {"size": "many"},
        {"images": []},
        {"images": ["a"]},
        {"images": [0]},
        {"images": list(range(1, 202))},
        {"images": 5},
        {"prefetch": "soon"},
        {"prefetch": True, "images": [1]},
        {"prefetch": True, "probe": True},
    ],
)
def test_bad_requests_are_400s_naming_the_field(bob, project, as_user, pool, body):
    response = as_user(bob).post(f"/api/projects/{project.id}/tasks/grid/", body, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["details"]) == set(body)
    assert not Image.objects.filter(leased_to=bob).exists()


def test_a_form_body_or_an_unknown_view_is_refused(bob, project, as_user, pool):
    client = as_user(bob)
    form = client.post(
        f"/api/projects/{project.id}/tasks/grid/",
        "size=8",
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code == 415
    bad = client.post(
        "/api/annotations/",
        {"image": pool["7"][0], "label": "7", "client_id": str(uuid.uuid4()), "view": "tile"},
        format="json",
    )
    assert bad.status_code == 400 and "view" in bad.json()["error"]["details"]
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    ("raw", "error"), [("1.5", "at most 1"), ("0", "above 0"), ("x", "a number")]
)
def test_the_confidence_setting_refuses_what_is_not_a_probability(raw, error):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "labeling.settings"}
    code = "import django; django.setup()"
    refused = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "LABELLOOP_GRID_MIN_CONFIDENCE": raw},
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "LABELLOOP_GRID_MIN_CONFIDENCE must be" in refused.stderr
    assert error in refused.stderr
