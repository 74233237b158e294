"""Devices and batched inference, shared by training (`train.py`) and scoring (`score.py`).

.venv/bin/python -m pytest tests/training/test_train.py -q
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from training.metrics import classification_metrics
from training.models import Classifier


def pick_device(use_gpu: bool | None = None) -> torch.device:
    if use_gpu is False or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def bf16_ok(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


@torch.inference_mode()
def predict_probabilities(
    model: Classifier, x: np.ndarray | torch.Tensor, *, batch_size: int = 512
) -> np.ndarray:
    """Softmax outputs (N, C) float32 in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    use_amp = device.type == "cuda"
    dtype = torch.bfloat16 if bf16_ok(device) else torch.float16
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size]).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
            logits = model(xb)
        out.append(F.softmax(logits.float(), dim=1).cpu())
    if not out:
        return np.zeros((0, model.num_classes), dtype=np.float32)
    return torch.cat(out).numpy()


def evaluate(
    model: Classifier, x: np.ndarray | torch.Tensor, y: np.ndarray, classes: tuple[str, ...]
) -> dict:
    return classification_metrics(np.asarray(y), predict_probabilities(model, x), classes)
