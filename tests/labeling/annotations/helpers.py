from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from labeling.annotations.models import LeaseLog
from labeling.images.models import Image


def next_tasks(client, project, count=1):
    response = client.post(
        f"/api/projects/{project.id}/tasks/next/", {"count": count}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def submit(client, image_id, label="3", client_id=None, **extra):
    return client.post(
        "/api/annotations/",
        {"image": image_id, "label": label, "client_id": str(client_id or uuid.uuid4()), **extra},
        format="json",
    )


def expire_leases(image_ids):
    past = timezone.now() - timedelta(seconds=1)
    Image.objects.filter(pk__in=image_ids).update(lease_expires=past)
    LeaseLog.objects.filter(image_id__in=image_ids, ended_at=None).update(expires_at=past)
