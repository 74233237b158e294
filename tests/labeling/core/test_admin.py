"""The Django admin shows LabelLoop's data to staff, read-only (issue 28: it showed none)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from labeling.annotations.models import Annotation, LeaseLog
from labeling.images.models import Image
from labeling.learning.models import ModelVersion, TrainingRun
from labeling.projects.models import Membership, Project
from labeling.webhooks.models import Webhook
from tests.factories import ImageFactory, model_version

pytestmark = pytest.mark.django_db

SHOWN = [Project, Membership, Image, Annotation, LeaseLog, TrainingRun, ModelVersion, Webhook]


def _url(model, *parts) -> str:
    path = "/".join(str(part) for part in parts if part != "")
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/" + (
        f"{path}/" if path else ""
    )


def test_staff_see_projects_images_runs_and_webhooks_in_the_django_admin(staff, project):
    image = ImageFactory(project=project, original_name="cat-0042.png")
    version = model_version(project, 1)
    hook = Webhook.objects.create(
        project=project, url="https://example.com/h", secret="s3cr3t!", events=["label.created"]
    )
    client = Client()
    client.force_login(staff)  # staff, not a superuser, with no model permissions
    index = client.get("/admin/")
    assert index.status_code == 200
    for model in SHOWN:
        assert model in admin.site._registry
        assert _url(model) in index.content.decode()
        assert client.get(_url(model, "")).status_code == 200
    assert "cat-0042.png" in client.get(_url(Image, "")).content.decode()
    assert "Digits" in client.get(_url(Project, "")).content.decode()
    detail = client.get(_url(Image, "", image.pk, "change"))
    assert detail.status_code == 200 and "cat-0042.png" in detail.content.decode()
    assert client.get(_url(ModelVersion, "", version.pk, "change")).status_code == 200
    hook_page = client.get(_url(Webhook, "", hook.pk, "change")).content.decode()
    assert "example.com/h" in hook_page and "s3cr3t!" not in hook_page


def test_the_django_admin_is_read_only_and_closed_to_non_staff(staff, alice, project):
    image = ImageFactory(project=project)
    client = Client()
    client.force_login(staff)
    assert client.get(_url(Image, "add")).status_code == 403
    changed = client.post(_url(Image, "", image.pk, "change"), {"status": "labeled"})
    assert changed.status_code == 403
    assert client.post(_url(Image, "", image.pk, "delete"), {"post": "yes"}).status_code == 403
    assert Image.objects.get(pk=image.pk).status == "unlabeled"
    outsider = Client()
    outsider.force_login(alice)  # a project admin, not staff
    assert outsider.get(_url(Image, "")).status_code == 302  # to the admin's login
