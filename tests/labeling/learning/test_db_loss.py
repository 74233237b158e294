"""The worker survives its database going away: after every connection is cut (what a
PostgreSQL restart or failover does) its predictor thread listens again and answers
requests, and its main loop goes on claiming runs."""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from PIL import Image as PILImage

from labeling.learning import predict_requests
from labeling.learning.models import ModelVersion, PredictionRequest, RunStatus, TrainingRun
from labeling.learning.predict_server import Predictor
from labeling.learning.worker import Worker
from tests.factories import ImageFactory
from tests.labeling.learning.test_worker_faults import wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # the thread reads committed rows only


def outage(seconds: float) -> None:
    """The database goes away for `seconds`: every connection to it is cut and new ones are
    refused (what a restart or failover looks like to a client), then it comes back. Done
    from the server's `postgres` database; the test's own connection is cut too, and closed
    here whatever happens: a cut connection left open would fail every later test."""
    import psycopg

    params = {**connection.get_connection_params(), "dbname": "postgres"}
    name = connection.settings_dict["NAME"]
    try:
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                cut = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s",
                    [name],
                ).fetchone()[0]
                # At least the test's own. Whether the thread under test was connected at
                # that instant is for the test to show (a new LISTEN, a run taken after).
                assert cut >= 1, "the test's own connection should have been cut"
                time.sleep(seconds)
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        connection.close()  # the test's own, cut above: the next query reconnects


def listeners() -> set[int]:
    """Backends LISTENing for predict requests: the predictor's connection, whose last
    statement is the LISTEN on one of its channels (predictions, then activation maps)."""
    assert predict_requests.CHANNEL in Predictor.channels
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND query = ANY(%s) AND pid <> pg_backend_pid()",
            [[f"LISTEN {channel}" for channel in Predictor.channels]],
        )
        return {row[0] for row in cursor.fetchall()}


def untrained_version(project, tmp_dir: Path) -> ModelVersion:
    """An active model version with a real (untrained) seed_cnn checkpoint in the store."""
    import torch

    from training.models import build_model, checkpoint_meta, save_checkpoint

    torch.manual_seed(0)
    model = build_model(
        "seed_cnn", num_classes=len(project.labels), input_size=28, input_channels=1
    )
    meta = checkpoint_meta(
        model,
        arch="seed_cnn",
        classes=project.labels,
        input_size=28,
        input_channels=1,
        dropout=0.5,
    )
    path = tmp_dir / "model.pt"
    save_checkpoint(str(path), model, meta)
    key = default_storage.save(f"checkpoints/{uuid.uuid4().hex}.pt", ContentFile(path.read_bytes()))
    run = TrainingRun.objects.create(project=project, trigger="manual", status="succeeded")
    return ModelVersion.objects.create(
        project=project,
        run=run,
        number=1,
        checkpoint_key=key,
        architecture="seed_cnn",
        labels_used=0,
        is_active=True,
    )


def png() -> str:
    out = io.BytesIO()
    PILImage.new("L", (28, 28), 128).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_the_predictor_listens_again_and_answers_after_the_database_went_away(project, tmp_path):
    version = untrained_version(project, tmp_path)
    stop = threading.Event()
    predictor = Predictor(stop)
    predictor.start()
    try:
        first = wait_for(listeners, 30, "a LISTEN of the predictor")
        outage(3.0)
        second = wait_for(lambda: listeners() - first, 30, "a new LISTEN after the outage")
        assert second and not second & first
        request = PredictionRequest.objects.create(
            project=project, model_version=version, images=[{"name": "grey.png", "data": png()}]
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [predict_requests.CHANNEL, str(request.pk)])
        wait_for(
            lambda: (
                PredictionRequest.objects.get(pk=request.pk).status
                != PredictionRequest.Status.PENDING
            ),
            30,
            "the prediction to be answered",
        )
        request.refresh_from_db()
        assert request.status == PredictionRequest.Status.DONE, request.error
        [result] = request.result
        assert set(result["probabilities"]) == set(project.labels)
        assert abs(sum(result["probabilities"].values()) - 1) < 1e-3
    finally:
        stop.set()
        predictor.join(timeout=10)
    assert not predictor._thread.is_alive(), "the predictor did not stop when asked"


def test_a_worker_waits_out_a_lost_database_and_goes_on_claiming_runs(project):
    """The worker's loop used to exit on the first OperationalError: `make demo`'s worker died
    with the database. Now it retries, and a run queued after the cut is taken."""
    stop = threading.Event()
    worker = Worker(poll_seconds=0.2)
    worker.stopping = stop

    def serve() -> None:
        try:
            worker.run_forever(predict=False)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # a few polls on its first connection
        outage(3.0)  # polls every 0.2 s: several of them meet a refused connection
        assert thread.is_alive(), "the worker exited when the database went away"
        ImageFactory(project=project)
        run = TrainingRun.objects.create(project=project, trigger="manual")  # nothing labeled
        wait_for(
            lambda: TrainingRun.objects.get(pk=run.pk).status == RunStatus.FAILED,
            30,
            "the run queued after the outage to be taken",
        )
        run.refresh_from_db()
        assert "no consensus labels yet" in run.error
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive(), "the worker did not stop when asked"


def test_a_failed_statement_is_told_from_a_lost_database():
    """A run whose statement fails (disk full, a timeout) is failed with that error; a run
    whose database went away is left to be re-queued. The worker tells them apart by asking
    its own connection, without reconnecting."""
    from django.db import OperationalError

    from labeling.learning.worker import _database_answers

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '50ms'")
        with pytest.raises(OperationalError, match="statement timeout"):
            cursor.execute("SELECT pg_sleep(1)")
        cursor.execute("SET statement_timeout = 0")
    assert _database_answers()

    import psycopg

    params = {**connection.get_connection_params(), "dbname": "postgres"}
    mine = connection.connection.info.backend_pid
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [mine])
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert not _database_answers()
    connection.close()
