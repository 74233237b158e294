"""``POST .../predict/`` is throttled per user and capped in decoded pixels per request
(issue 26, finding 7): a viewer cannot make the web process decode gigapixels at will."""

from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from PIL import Image as PILImage
from rest_framework.throttling import ScopedRateThrottle

from labeling.learning.models import ModelVersion, PredictionRequest, TrainingRun
from tests.factories import UserFactory, png_bytes
from tests.labeling.images.helpers import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def active_model(project, settings):
    # Nobody answers here: a request that passes every check ends in the declared 503, fast.
    settings.LABELLOOP_PREDICT_TIMEOUT = 0.05
    run = TrainingRun.objects.create(project=project, trigger="manual", status="succeeded")
    return ModelVersion.objects.create(
        project=project,
        run=run,
        number=1,
        checkpoint_key="k",
        architecture="seed_cnn",
        labels_used=10,
        is_active=True,
    )


def blank_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("L", (width, height)).save(out, format="PNG")
    return out.getvalue()


def predict(client, project, *blobs: bytes):
    files = [upload(f"{i}.png", blob) for i, blob in enumerate(blobs)]
    return client.post(f"/api/projects/{project.id}/predict/", {"files": files}, format="multipart")


def test_predict_refuses_a_request_over_the_pixel_cap_naming_it(
    victor, as_user, project, active_model, settings
):
    settings.LABELLOOP_PREDICT_MAX_PIXELS = 1_000_000
    response = predict(as_user(victor), project, blank_png(800, 800), blank_png(800, 800))
    assert response.status_code == 413, response.content
    error = response.json()["error"]
    assert error["code"] == "too_many_pixels"
    assert "1,000,000" in error["message"] and "LABELLOOP_PREDICT_MAX_PIXELS" in error["message"]
    assert error["details"] == {"pixels": 1_280_000, "max_pixels": 1_000_000}
    assert not PredictionRequest.objects.exists()


def test_predict_takes_a_request_under_the_pixel_cap_to_the_workers(
    victor, as_user, project, active_model, settings
):
    settings.LABELLOOP_PREDICT_MAX_PIXELS = 1_000_000
    response = predict(as_user(victor), project, blank_png(700, 700), blank_png(500, 500))
    assert response.status_code == 503  # passed the cap; no worker is running in this test
    assert response.json()["error"]["code"] == "no_worker"


def test_the_pixel_cap_defaults_to_fifty_megapixels(settings):
    assert settings.LABELLOOP_PREDICT_MAX_PIXELS == 50_000_000


@pytest.fixture
def predict_rate():
    """The predict scope at 3 requests a minute (DRF reads its rates once, at import)."""
    cache.clear()
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = {**original, "predict": "3/min"}
    yield
    ScopedRateThrottle.THROTTLE_RATES = original
    cache.clear()


def test_predict_is_rate_limited_per_user(victor, as_user, project, active_model, predict_rate):
    image = png_bytes(1)
    codes = [predict(as_user(victor), project, image).status_code for _ in range(5)]
    assert codes == [503, 503, 503, 429, 429]
    throttled = predict(as_user(victor), project, image)
    assert throttled.json()["error"]["details"]["retry_after_seconds"] > 0
    # Another user has a budget of their own.
    other = UserFactory(username="vera")
    from labeling.projects.models import Membership, Role

    Membership.objects.create(project=project, user=other, role=Role.VIEWER)
    assert predict(as_user(other), project, image).status_code == 503


def test_the_predict_rate_is_a_setting(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["predict"] == "30/min"
