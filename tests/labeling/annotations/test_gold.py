"""Gold questions: marking them, serving them among other tasks without telling them apart,
and answers that measure annotators but never become labels."""

from __future__ import annotations

import random
import uuid

import pytest

from labeling.annotations.models import Annotation, GoldAnswer, LeaseLog
from labeling.annotations.services import task_lease_next
from labeling.core import events
from labeling.images.models import Image, ImageStatus
from labeling.projects.services import project_label_rename
from tests.factories import ImageFactory
from tests.labeling.annotations.helpers import next_tasks, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled_events():
    """Every images_labeled sent during the test: (source, [image ids])."""
    seen = []

    def hear(sender, *, images, source, **_):
        seen.append((source, [image.pk for image in images]))

    events.images_labeled.connect(hear, dispatch_uid="test_gold.hear")
    yield seen
    events.images_labeled.disconnect(dispatch_uid="test_gold.hear")


def mark(client, image, label="7"):
    return client.post(f"/api/images/{image.pk}/gold/", {"label": label}, format="json")


def gold_project(project, *, rate=0.5):
    project.gold_rate = rate
    project.exploration_fraction = 0.0
    project.save()
    return project


# --- marking --------------------------------------------------------------------------


def test_an_admin_marks_an_image_gold_and_it_is_labeled_with_its_answer(
    alice, as_user, project, labeled_events
):
    image = ImageFactory(project=project)
    response = mark(as_user(alice), image, "7")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["gold_label"], body["status"], body["consensus_label"]) == ("7", "labeled", "7")
    image.refresh_from_db()
    assert (image.gold_label, image.status, image.consensus_label) == ("7", "labeled", "7")
    assert labeled_events == [("gold", [image.pk])]  # announced and counted like any label


def test_marking_gold_ends_the_lease_of_whoever_held_the_image(alice, bob, as_user, project):
    image = ImageFactory(project=project)
    project.exploration_fraction = 0
    project.save()
    assert next_tasks(as_user(bob), project)[0]["image"] == image.pk
    assert mark(as_user(alice), image).status_code == 200
    image.refresh_from_db()
    assert image.leased_to_id is None
    assert LeaseLog.objects.get(image=image, user=bob).ended_at is not None


def test_unmarking_judges_the_image_from_its_votes_again(alice, bob, as_user, project):
    project.annotations_per_image = 2
    project.save()
    image = ImageFactory(project=project)
    assert submit(as_user(bob), image.pk, label="3").status_code == 201
    assert mark(as_user(alice), image, "7").status_code == 200
    response = as_user(alice).delete(f"/api/images/{image.pk}/gold/")
    assert response.status_code == 200
    assert response.json()["gold_label"] is None
    image.refresh_from_db()
    assert (image.gold_label, image.status, image.consensus_label) == (None, "partial", None)


def test_a_gold_label_must_be_a_class_of_the_project(alice, as_user, project):
    image = ImageFactory(project=project)
    response = mark(as_user(alice), image, "cat")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_label"
    assert Image.objects.get(pk=image.pk).gold_label is None
    response = as_user(alice).post(f"/api/images/{image.pk}/gold/", {}, format="json")
    assert response.status_code == 400
    assert "label" in response.json()["error"]["message"]


def test_a_gold_label_given_by_a_class_old_name_is_stored_under_its_new_one(
    alice, as_user, project
):
    image = ImageFactory(project=project)
    project_label_rename(project=project, old="7", new="seven")
    assert mark(as_user(alice), image, "7").json()["gold_label"] == "seven"


def test_renaming_a_class_renames_gold_labels_and_answers(alice, bob, as_user, project):
    image = ImageFactory(project=project)
    assert mark(as_user(alice), image, "7").status_code == 200
    assert submit(as_user(bob), image.pk, label="7").status_code == 201
    project_label_rename(project=project, old="7", new="seven")
    image.refresh_from_db()
    assert (image.gold_label, image.consensus_label) == ("seven", "seven")
    answer = GoldAnswer.objects.get()
    assert (answer.label, answer.expected, answer.correct) == ("seven", "seven", True)


@pytest.mark.parametrize("who", ["bob", "victor"])
def test_only_a_project_admin_marks_gold(who, request, as_user, project):
    image = ImageFactory(project=project)
    user = request.getfixturevalue(who)
    assert mark(as_user(user), image).status_code == 403
    assert as_user(user).delete(f"/api/images/{image.pk}/gold/").status_code == 403
    assert Image.objects.get(pk=image.pk).gold_label is None


def test_an_admin_of_another_project_cannot_mark_its_images(mallory, as_user, project):
    image = ImageFactory(project=project)
    assert mark(as_user(mallory), image).status_code == 404
    assert Image.objects.get(pk=image.pk).gold_label is None


# --- in the queue ---------------------------------------------------------------------


def test_gold_questions_are_mixed_into_the_tasks_at_the_project_rate(bob, project):
    gold_project(project, rate=0.2)
    gold = [ImageFactory(project=project, gold_label="1", status="labeled") for _ in range(60)]
    [ImageFactory(project=project) for _ in range(60)]
    tasks = task_lease_next(project=project, user=bob, count=50, rng=random.Random(3))
    served = sum(t.image_id in {g.pk for g in gold} for t in tasks)
    assert 3 <= served <= 20  # 50 x 0.2 = 10 expected


def test_no_gold_question_is_served_when_the_rate_is_zero(bob, as_user, project):
    gold_project(project, rate=0.0)
    ImageFactory(project=project, gold_label="1", status="labeled")
    assert next_tasks(as_user(bob), project, count=5) == []


def test_a_gold_task_looks_exactly_like_any_other_task(bob, as_user, project):
    gold_project(project, rate=0.5)
    project.show_suggestions = True
    project.save()
    normal = ImageFactory(project=project, predicted_label="2", priority=5.0)
    gold = ImageFactory(
        project=project, gold_label="4", status="labeled", consensus_label="4", predicted_label="4"
    )
    tasks = []
    for _ in range(20):  # until the batch holds both
        tasks = next_tasks(as_user(bob), project, count=2)
        if {t["image"] for t in tasks} == {normal.pk, gold.pk}:
            break
        Image.objects.update(leased_to=None, lease_expires=None)
    by_image = {t["image"]: t for t in tasks}
    assert set(by_image) == {normal.pk, gold.pk}
    plain, golden = by_image[normal.pk], by_image[gold.pk]
    assert list(golden) == list(plain)  # the same keys, in the same order
    for key in plain:
        assert type(golden[key]) is type(plain[key]), key
    assert golden["file_url"] == f"/api/images/{gold.pk}/file/"
    assert golden["suggestion"] == "4" and plain["suggestion"] == "2"  # both shown
    assert len(golden["lease_expires"]) == len(plain["lease_expires"])


def test_gold_tasks_take_random_places_in_a_batch(bob, project):
    gold_project(project, rate=0.3)
    for p in range(10):
        ImageFactory(project=project, priority=float(p))
    gold_ids = {
        ImageFactory(project=project, gold_label="1", status="labeled").pk for _ in range(5)
    }
    places = set()
    rng = random.Random(11)
    for _ in range(30):
        tasks = task_lease_next(project=project, user=bob, count=5, rng=rng)
        places |= {i for i, t in enumerate(tasks) if t.image_id in gold_ids}
        Image.objects.update(leased_to=None, lease_expires=None)
    assert places == {0, 1, 2, 3, 4}


def test_a_gold_question_is_never_served_twice_to_the_same_annotator(bob, as_user, project):
    gold_project(project, rate=0.5)
    gold = ImageFactory(project=project, gold_label="1", status="labeled")
    seen = 0
    for _ in range(30):
        for task in next_tasks(as_user(bob), project, count=1):
            assert task["image"] == gold.pk
            seen += 1
            assert submit(as_user(bob), gold.pk, label="1").status_code == 201
    assert seen == 1
    assert GoldAnswer.objects.filter(annotator=bob).count() == 1


def test_a_gold_question_one_annotator_holds_is_not_served_to_another(bob, carol, as_user, project):
    gold_project(project, rate=0.5)
    gold = ImageFactory(project=project, gold_label="1", status="labeled")
    rng = random.Random(0)
    while not task_lease_next(project=project, user=bob, count=1, rng=rng):
        pass
    for _ in range(20):
        assert next_tasks(as_user(carol), project, count=1) == []
    assert Image.objects.get(pk=gold.pk).leased_to_id == bob.pk


def test_a_gold_lease_is_handed_back_renewed_and_released_like_any_other(
    bob, carol, as_user, project
):
    gold_project(project, rate=0.5)
    gold = ImageFactory(project=project, gold_label="1", status="labeled")
    rng = random.Random(0)
    while not task_lease_next(project=project, user=bob, count=1, rng=rng):
        pass
    project.gold_rate = 0.0  # asking again hands back what bob holds, whatever the rate
    project.save()
    assert [t["image"] for t in next_tasks(as_user(bob), project, count=3)] == [gold.pk]
    renewed = as_user(bob).post(f"/api/tasks/{gold.pk}/renew/")
    assert renewed.status_code == 200, renewed.content
    assert as_user(carol).post(f"/api/tasks/{gold.pk}/renew/").status_code == 409
    assert as_user(bob).post(f"/api/tasks/{gold.pk}/release/").status_code == 204
    assert Image.objects.get(pk=gold.pk).leased_to_id is None
    assert LeaseLog.objects.get(image=gold, user=bob).ended_at is not None


def test_a_project_admin_is_never_served_gold_questions(alice, as_user, project):
    gold_project(project, rate=0.5)
    ImageFactory(project=project, gold_label="1", status="labeled")
    for _ in range(20):
        assert next_tasks(as_user(alice), project, count=2) == []


def test_an_annotator_who_voted_before_the_image_became_gold_is_never_asked_it(
    alice, bob, as_user, project
):
    gold_project(project, rate=0.5)
    image = ImageFactory(project=project)
    assert submit(as_user(bob), image.pk, label="3").status_code == 201
    assert mark(as_user(alice), image, "3").status_code == 200
    for _ in range(20):
        assert next_tasks(as_user(bob), project, count=2) == []


# --- answers --------------------------------------------------------------------------


def first_vote(client, image, label, client_id):
    response = submit(client, image.pk, label=label, client_id=client_id, duration_ms=900)
    return response


def test_an_answer_is_answered_exactly_like_a_first_vote(bob, as_user, project):
    gold_project(project, rate=0.0)
    normal = ImageFactory(project=project)
    gold = ImageFactory(project=project, gold_label="5", status="labeled", consensus_label="5")
    a, b = uuid.uuid4(), uuid.uuid4()
    plain = first_vote(as_user(bob), normal, "5", a)
    golden = first_vote(as_user(bob), gold, "5", b)
    assert plain.status_code == golden.status_code == 201
    p, g = plain.json(), golden.json()
    assert list(g) == list(p)
    for key in p:
        assert type(g[key]) is type(p[key]), key
    assert (g["image"], g["label"], g["client_id"], g["duration_ms"]) == (gold.pk, "5", str(b), 900)
    assert (g["source"], g["annotator"]) == (p["source"], p["annotator"]) == ("manual", "bob")
    assert g["id"] > p["id"]  # from the labels' own sequence: no tell-tale id range
    # Replays answer the same, with 200, for both.
    assert first_vote(as_user(bob), normal, "5", a).json() == p
    replay = first_vote(as_user(bob), gold, "5", b)
    assert (replay.status_code, replay.json()) == (200, g)


def test_gold_answers_never_become_labels(bob, carol, as_user, project, labeled_events):
    gold_project(project, rate=0.0)
    project.retrain_every = 1
    project.save()
    gold = ImageFactory(project=project, gold_label="5", status="labeled", consensus_label="5")
    before = Image.objects.values().get(pk=gold.pk)
    assert submit(as_user(bob), gold.pk, label="5").status_code == 201
    assert submit(as_user(carol), gold.pk, label="8").status_code == 201
    assert not Annotation.objects.exists()
    assert labeled_events == []  # nothing announced, nothing counted toward retrain_every
    after = Image.objects.values().get(pk=gold.pk)
    assert after == before  # not its label, not its count, not its agreement
    answers = {
        a.annotator.username: (a.label, a.expected, a.correct) for a in GoldAnswer.objects.all()
    }
    assert answers == {"bob": ("5", "5", True), "carol": ("8", "5", False)}


def test_no_training_run_is_queued_by_gold_answers(
    bob, as_user, project, django_capture_on_commit_callbacks
):
    from labeling.learning.models import TrainingRun

    gold_project(project, rate=0.0)
    project.retrain_every = 1
    project.save()
    gold = ImageFactory(project=project, gold_label="5", status="labeled", consensus_label="5")
    with django_capture_on_commit_callbacks(execute=True):
        assert submit(as_user(bob), gold.pk, label="5").status_code == 201
    assert not TrainingRun.objects.filter(trigger="automatic").exists()


def test_an_answer_ends_the_lease_like_a_label(bob, as_user, project):
    gold_project(project, rate=0.5)
    gold = ImageFactory(project=project, gold_label="1", status="labeled")
    rng = random.Random(0)
    while not task_lease_next(project=project, user=bob, count=1, rng=rng):
        pass
    assert submit(as_user(bob), gold.pk, label="1").status_code == 201
    gold.refresh_from_db()
    assert gold.leased_to_id is None
    assert LeaseLog.objects.get(image=gold, user=bob).ended_at is not None
    response = as_user(bob).post(f"/api/tasks/{gold.pk}/renew/")
    assert response.status_code == 409


def test_a_second_answer_is_treated_as_a_second_vote_is(bob, as_user, project):
    gold_project(project, rate=0.0)
    normal = ImageFactory(project=project)
    gold = ImageFactory(project=project, gold_label="5", status="labeled", consensus_label="5")
    for image in (normal, gold):
        first = submit(as_user(bob), image.pk, label="5")
        again = submit(as_user(bob), image.pk, label="5")  # the same label: nothing changes
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == first.json()["id"]
        changed = submit(as_user(bob), image.pk, label="6")  # a change: a new row, it counts
        assert changed.status_code == 201
        assert changed.json()["id"] != first.json()["id"]
    answer = GoldAnswer.objects.get()
    assert (answer.label, answer.correct) == ("6", False)


def test_a_client_id_of_a_gold_answer_cannot_be_reused(bob, carol, as_user, project):
    gold_project(project, rate=0.0)
    normal = ImageFactory(project=project)
    gold = ImageFactory(project=project, gold_label="5", status="labeled", consensus_label="5")
    used = uuid.uuid4()
    assert submit(as_user(bob), gold.pk, client_id=used).status_code == 201
    for who, image in [(bob, normal), (carol, gold), (carol, normal)]:
        response = submit(as_user(who), image.pk, client_id=used)
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "client_id_reused"
    # And a label's client_id cannot answer a gold question.
    label_id = uuid.uuid4()
    assert submit(as_user(bob), normal.pk, client_id=label_id).status_code == 201
    response = submit(as_user(carol), gold.pk, client_id=label_id)
    assert response.json()["error"]["code"] == "client_id_reused"
    assert GoldAnswer.objects.count() == 1


def test_an_answer_to_a_gold_question_another_annotator_holds_is_refused_as_a_vote_is(
    bob, carol, as_user, project
):
    gold_project(project, rate=0.5)
    gold = ImageFactory(project=project, gold_label="1", status="labeled")
    rng = random.Random(0)
    while not task_lease_next(project=project, user=bob, count=1, rng=rng):
        pass
    response = submit(as_user(carol), gold.pk, label="1")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "leased_to_another"
    assert not GoldAnswer.objects.exists()


# --- what the image endpoints show ----------------------------------------------------

MASKED = ("status", "consensus_label", "agreement", "annotation_count", "gold_label")


def test_to_an_annotator_a_gold_image_reads_as_an_unlabeled_one(
    alice, bob, victor, as_user, project
):
    project.annotations_per_image = 2
    project.save()
    plain = ImageFactory(project=project)
    gold = ImageFactory(project=project)
    assert submit(as_user(alice), gold.pk, label="3").status_code == 201  # a vote, then gold
    assert mark(as_user(alice), gold, "3").status_code == 200
    for user in (bob, victor):
        shown = as_user(user).get(f"/api/images/{gold.pk}/").json()
        reference = as_user(user).get(f"/api/images/{plain.pk}/").json()
        assert list(shown) == list(reference)
        for key in (*MASKED, "annotations"):
            assert shown[key] == reference[key], key
        assert shown["status"] == "unlabeled" and shown["annotations"] == []
    admin_view = as_user(alice).get(f"/api/images/{gold.pk}/").json()
    assert (admin_view["gold_label"], admin_view["status"]) == ("3", "labeled")
    assert len(admin_view["annotations"]) == 1
    history = f"/api/projects/{project.pk}/annotations/?image={gold.pk}"
    assert as_user(bob).get(history).json()["results"] == []
    assert len(as_user(alice).get(history).json()["results"]) == 1


def test_the_image_list_and_its_filters_keep_gold_hidden_from_annotators(
    alice, bob, as_user, project
):
    plain = ImageFactory(project=project)
    gold = ImageFactory(project=project, predicted_label="1")
    assert mark(as_user(alice), gold, "3").status_code == 200
    url = f"/api/projects/{project.pk}/images/"

    def ids(user, query=""):
        return {row["id"] for row in as_user(user).get(url + query).json()["results"]}

    rows = {r["id"]: r for r in as_user(bob).get(url).json()["results"]}
    assert {k: rows[gold.pk][k] for k in MASKED} == {k: rows[plain.pk][k] for k in MASKED}
    assert ids(bob, "?status=unlabeled") == {plain.pk, gold.pk}
    assert ids(bob, "?status=labeled") == set()
    assert ids(bob, "?label=3") == set()
    assert ids(bob, "?model_disagrees=true") == set()
    assert ids(alice, "?status=unlabeled") == {plain.pk}
    assert ids(alice, "?status=labeled") == {gold.pk}
    assert ids(alice, "?model_disagrees=true") == {gold.pk}
    assert as_user(alice).get(url).json()["results"][0]["gold_label"] == "3"


def test_the_project_stats_count_a_gold_task_as_any_task_for_annotators(
    alice, bob, as_user, project
):
    plain = ImageFactory(project=project)
    gold = ImageFactory(project=project)
    assert mark(as_user(alice), gold, "3").status_code == 200
    url = f"/api/projects/{project.pk}/stats/"

    def seen(user):
        stats = as_user(user).get(url).json()
        mine = {row["username"]: row["annotations"] for row in stats["annotators"]}
        return stats["images"]["by_status"], stats["class_balance"]["3"], mine.get("bob", 0)

    by_status, balance, count = seen(bob)
    assert (by_status["unlabeled"], by_status["labeled"], balance, count) == (2, 0, 0, 0)
    assert submit(as_user(bob), gold.pk, label="3").status_code == 201
    assert seen(bob)[2] == 1  # one task done, as after any label
    assert submit(as_user(bob), plain.pk, label="5").status_code == 201
    assert seen(bob)[2] == 2
    by_status, balance, count = seen(alice)  # the admin sees what is
    assert (by_status["labeled"], balance, count) == (2, 1, 1)


# --- upload manifests -----------------------------------------------------------------


def test_an_upload_manifest_gold_column_imports_gold_questions(alice, as_user, project):
    from tests.factories import png_bytes
    from tests.labeling.images.helpers import upload

    manifest = b"filename,label,gold\na.png,3,\nb.png,,7\nc.png,4,4\n"  # d.png: no row
    response = as_user(alice).post(
        f"/api/projects/{project.pk}/images/",
        {
            "files": [upload(f"{n}.png", png_bytes(i)) for i, n in enumerate("abcd")],
            "labels": upload("labels.csv", manifest),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    results = {r["name"]: r for r in response.json()["results"]}
    assert [(results[f"{n}.png"]["label"], results[f"{n}.png"]["gold"]) for n in "abc"] == [
        ("3", False),
        ("7", True),
        ("4", True),
    ]
    images = {i.original_name: i for i in Image.objects.all()}
    assert (images["b.png"].gold_label, images["b.png"].consensus_label) == ("7", "7")
    assert images["b.png"].status == ImageStatus.LABELED
    assert images["a.png"].gold_label is None and images["d.png"].status == "unlabeled"


def test_a_json_manifest_takes_gold_keys(alice, as_user, project):
    from tests.factories import png_bytes
    from tests.labeling.images.helpers import upload

    manifest = b'[{"filename": "a.png", "gold": "2"}, {"filename": "b.png", "label": "5"}]'
    response = as_user(alice).post(
        f"/api/projects/{project.pk}/images/",
        {
            "files": [upload("a.png", png_bytes(1)), upload("b.png", png_bytes(2))],
            "labels": upload("labels.json", manifest),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert dict(Image.objects.values_list("original_name", "gold_label")) == {
        "a.png": "2",
        "b.png": None,
    }


def test_a_manifest_row_whose_label_and_gold_label_differ_is_a_400(alice, as_user, project):
    from tests.factories import png_bytes
    from tests.labeling.images.helpers import upload

    response = as_user(alice).post(
        f"/api/projects/{project.pk}/images/",
        {
            "files": [upload("a.png", png_bytes(1))],
            "labels": upload("labels.csv", b"filename,label,gold\na.png,3,4\n"),
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert "gold label '4'" in response.json()["error"]["message"]
    assert not Image.objects.exists()
