"""Project names, class names and descriptions as text: unique names ignoring case, Unicode
NFC, no bidirectional controls, any script, a capped description (issue 26, finding 7)."""

from __future__ import annotations

import unicodedata

import pytest

from labeling.projects.models import Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

NFD_E = "e\u0301"  # "é" as e + combining acute accent
NFC_E = "\u00e9"


def create(client, **body):
    return client.post("/api/projects/", {"labels": ["a", "b"], **body}, format="json")


def change(client, project, **body):
    return client.patch(f"/api/projects/{project.id}/", body, format="json")


def error_of(response) -> tuple[int, str, str]:
    assert response.status_code >= 400, response.content
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


# --- unique names ---


def test_a_project_cannot_be_created_with_another_projects_name_in_other_case(
    staff, as_user, project
):
    status, code, message = error_of(create(as_user(staff), name="DIGITS", slug="digits-2"))
    assert (status, code) == (409, "name_taken")
    assert "'Digits'" in message or "'DIGITS'" in message
    assert Project.objects.count() == 1


def test_a_project_cannot_be_renamed_to_another_projects_name(alice, as_user, project):
    ProjectFactory(name="Letters", slug="letters")
    status, code, message = error_of(change(as_user(alice), project, name="letters"))
    assert (status, code) == (409, "name_taken")
    assert "letters" in message
    project.refresh_from_db()
    assert project.name == "Digits"


def test_a_project_may_be_renamed_to_its_own_name_in_other_case(alice, as_user, project):
    assert change(as_user(alice), project, name="DIGITS").status_code == 200
    project.refresh_from_db()
    assert project.name == "DIGITS"


def test_names_that_differ_only_in_unicode_normalisation_clash(staff, as_user):
    assert create(as_user(staff), name=f"Caf{NFC_E}").status_code == 201
    status, code, _ = error_of(create(as_user(staff), name=f"Caf{NFD_E}", slug="cafe-2"))
    assert (status, code) == (409, "name_taken")


# --- Unicode ---


def test_labels_are_stored_nfc_so_nfd_and_nfc_twins_are_one_class(staff, as_user):
    response = create(as_user(staff), name="Accents", labels=[f"caf{NFD_E}", f"caf{NFC_E}"])
    status, code, message = error_of(response)
    assert (status, code) == (400, "labels") and "unique" in message
    created = create(as_user(staff), name="Accents", labels=[f"caf{NFD_E}", "tea"])
    assert created.status_code == 201
    assert created.json()["labels"] == [f"caf{NFC_E}", "tea"]
    stored = Project.objects.get(name="Accents")
    assert all(unicodedata.is_normalized("NFC", label) for label in stored.labels)


def test_a_project_name_is_stored_nfc(staff, as_user):
    response = create(as_user(staff), name=f"Caf{NFD_E} menu")
    assert response.status_code == 201
    assert response.json()["name"] == f"Caf{NFC_E} menu"


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\u202e", "RIGHT-TO-LEFT OVERRIDE"),
        ("\u202a", "LEFT-TO-RIGHT EMBEDDING"),
        ("\u2066", "LEFT-TO-RIGHT ISOLATE"),
        ("\u2069", "POP DIRECTIONAL ISOLATE"),
        ("\u200f", "RIGHT-TO-LEFT MARK"),
        ("\u061c", "ARABIC LETTER MARK"),
    ],
)
def test_bidi_controls_are_refused_in_labels_and_names_naming_the_character(
    staff, alice, as_user, project, char, name
):
    codepoint = f"U+{ord(char):04X}"
    for response in (
        create(as_user(staff), name="Evil", labels=[f"cat{char}gnp.exe", "dog"]),
        create(as_user(staff), name=f"Evil{char}name"),
        change(as_user(alice), project, labels=[*project.labels, f"x{char}"]),
        change(as_user(alice), project, name=f"Digits{char}"),
        as_user(alice).post(
            f"/api/projects/{project.id}/labels/rename/",
            {"old": "3", "new": f"three{char}"},
            format="json",
        ),
    ):
        status, _code, message = error_of(response)
        assert status == 400
        assert codepoint in message and name in message
    project.refresh_from_db()
    assert (project.name, project.labels) == ("Digits", [str(i) for i in range(10)])
    assert Project.objects.count() == 1


@pytest.mark.parametrize("name", ["שלום", "تصنيف", "猫と犬", "Ελληνικά"])
def test_a_name_in_any_script_is_accepted_with_a_working_slug(staff, as_user, name):
    response = create(as_user(staff), name=name)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == name
    assert body["slug"] and body["slug"].isascii()
    project = Project.objects.get(pk=body["id"])
    assert project.slug == body["slug"]


def test_two_names_in_another_script_get_different_slugs(staff, as_user):
    first = create(as_user(staff), name="חתולים").json()["slug"]
    second = create(as_user(staff), name="כלבים").json()["slug"]
    assert first != second


def test_a_name_without_letters_or_digits_is_still_refused(staff, as_user):
    status, _code, message = error_of(create(as_user(staff), name="!!! ---"))
    assert status == 400 and "letters or digits" in message


# --- description ---


def test_a_description_over_ten_thousand_characters_is_a_400_naming_the_cap(
    staff, alice, as_user, project
):
    status, _code, message = error_of(create(as_user(staff), name="Long", description="x" * 10_001))
    assert status == 400
    assert "description" in message and "10000" in message.replace(",", "")
    status, _code, _message = error_of(change(as_user(alice), project, description="x" * 1_000_000))
    assert status == 400
    assert change(as_user(alice), project, description="x" * 10_000).status_code == 200
    project.refresh_from_db()
    assert len(project.description) == 10_000


def test_a_label_sent_in_nfd_is_stored_under_its_nfc_class(bob, as_user, project):
    import uuid

    from labeling.annotations.models import Annotation
    from tests.factories import ImageFactory

    project.labels = [f"caf{NFC_E}", "tea"]
    project.save()
    image = ImageFactory(project=project)
    response = as_user(bob).post(
        "/api/annotations/",
        {"image": image.id, "label": f"caf{NFD_E}", "client_id": str(uuid.uuid4())},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Annotation.objects.get().label == f"caf{NFC_E}"


def test_a_name_that_grows_under_nfc_past_its_limit_is_a_400_not_a_500(staff, as_user):
    qa = "\u0958"  # Devanagari QA: NFC spells it with two code points
    assert len(unicodedata.normalize("NFC", qa * 60)) == 120
    status, code, message = error_of(create(as_user(staff), name="Grow", labels=[qa * 60, "b"]))
    assert (status, code) == (400, "labels") and "100" in message
    status, code, message = error_of(create(as_user(staff), name=qa * 150))
    assert (status, code) == (400, "name") and "200" in message
    assert not Project.objects.exists()
