"""A classification head on frozen backbone features, and the probe score of a backbone.

    .venv/bin/python -m pytest tests/training/test_head.py -p no:django -q

`fit_head(features, labels, num_classes)` fits multinomial logistic regression on
L2-normalised features by full-batch L-BFGS in torch. Measured on 10,000 x 512 features
(10 overlapping classes, one core): torch L-BFGS 2.3 s, scikit-learn's LogisticRegression
(lbfgs, same objective) 4.4 s, test accuracy equal to 0.1 point (0.471 / 0.471; at l2=1e-3
0.26 s against 1.3 s); torch also runs on a GPU. It returns a `LinearHead`, which normalises
its input itself, so the normalisation cannot be left out where the head is applied:

    logits = weight @ (f / |f|) + bias

`head_probabilities(head, features)` applies it to stored embeddings (float16 is fine);
`training.models.classifier_from_backbone(..., head_weight=head.fc.weight,
head_bias=head.fc.bias, unit_features=True)` makes backbone and head one
`training.models.Classifier` (its trunk ends in the L2 normalisation) that checkpoints like any
model, so scoring, BALD and `Classifier.embed` work on it unchanged (`training.rounds`).

Classes with no label yet are left out of the fit and get weight 0 and bias
`UNLABELED_BIAS` (-1e4): their probability is exactly 0 after softmax and they never win,
while softmax stays finite (a bias of -inf would give NaN logits differences and NaN
gradients when the head is fine-tuned).

`head_from_checkpoint(path)` reads back the head of a round's checkpoint (arch "backbone")
without its ResNet: a `training.models.Classifier` whose trunk is only the backbone's last
step (the L2 normalisation), so `training.score.score_arrays` runs it on stored embeddings
instead of pixels, with the same dropout masks for BALD (`training.score.score_features`).

`probe(features, labels)` is the backbone's score on the labels so far: k-NN (cosine, weighted
vote) and linear-probe accuracy by stratified k-fold cross-fitting, each with n and a 95%
Wilson interval.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.metrics import accuracy_interval
from training.models import BACKBONE_CLASSIFIER, CHECKPOINT_FORMAT, Classifier

# -1e4: far below any labeled class's logit (|weight| stays ~10-30 under the default L2 on unit
# features), exactly 0 after softmax in float32, and still finite in float16 (max 65504).
UNLABELED_BIAS = -1e4
# L2 strength on the mean-loss scale (loss = mean weighted CE + l2/2 |W|^2; scikit-learn's
# C = 1 / (l2 * n)). Measured (3 seeds, MNIST test 1,000) on random-projection ReLU features
# and on raw pixels, 10 to 4,000 labels: 1e-5, 1e-4 and 1e-3 tie within 0.5 point up to 300
# labels; at 4,000, 1e-3 loses 3-4 points (0.856 vs 0.896) and 1e-5 gains at most 1 point
# (0.908) for ~2x the L-BFGS iterations. 1e-4 it is.
DEFAULT_L2 = 1e-4
KNN_TEMPERATURE = 0.07  # weighted vote exp(cos / T), as in DINO's and InstDisc's k-NN monitor


class LinearHead(nn.Module):
    """Logistic-regression head: L2-normalise the features, then one linear layer."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        num_classes, embed_dim = weight.shape
        # skip_init: the values are copied in below, so no random init (and no draw from the
        # caller's RNG) is needed.
        self.fc = nn.utils.skip_init(nn.Linear, embed_dim, num_classes)
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(bias)
        self.embed_dim = embed_dim
        self.num_classes = num_classes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(F.normalize(features.float(), dim=1))


def _check_features(features: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf: re-embed the images with a sound backbone")
    if labels is not None and np.asarray(labels).shape != (x.shape[0],):
        raise ValueError(
            f"labels must be (N,) = ({x.shape[0]},) to match the features, "
            f"got {np.asarray(labels).shape}"
        )
    return x


def _class_weights(y: np.ndarray, num_classes: int, class_weight: str | None) -> torch.Tensor:
    """Per-class loss weights: "balanced" is n / (classes seen * count), as in scikit-learn;
    equal counts give all ones, so it changes nothing on a balanced label set."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    if class_weight is None:
        return torch.ones(num_classes, dtype=torch.float32)
    if class_weight != "balanced":
        raise ValueError(f"class_weight must be 'balanced' or None, got {class_weight!r}")
    seen = counts > 0
    w = np.zeros(num_classes)
    w[seen] = len(y) / (seen.sum() * counts[seen])
    return torch.as_tensor(w, dtype=torch.float32)


def fit_head(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    l2: float = DEFAULT_L2,
    max_iter: int = 200,
    class_weight: str | None = "balanced",
    seed: int = 0,
) -> LinearHead:
    """Multinomial logistic regression on L2-normalised `features` (N, D) for `labels` (N,)
    in 0..num_classes-1. Full-batch L-BFGS from zeros: the same inputs give the same head
    bit for bit on one machine. `seed` seeds a forked torch RNG around the solve, so a future
    solver cannot quietly depend on global state. Works from one label per class; classes
    without labels never win (see the module docstring)."""
    x = _check_features(features, labels)
    y = np.asarray(labels).astype(np.int64)
    if num_classes < 1 or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes})")
    if l2 <= 0 or max_iter < 1:
        raise ValueError(f"need l2 > 0 and max_iter >= 1, got l2={l2}, max_iter={max_iter}")
    seen = np.flatnonzero(np.bincount(y, minlength=num_classes) > 0)
    weight = torch.zeros(num_classes, x.shape[1])
    bias = torch.full((num_classes,), UNLABELED_BIAS)
    bias[torch.as_tensor(seen)] = 0.0
    if len(seen) > 1:  # one class alone needs no fit: weight 0, bias 0 makes it always win
        remap = np.full(num_classes, -1, dtype=np.int64)
        remap[seen] = np.arange(len(seen))
        w, b = _lbfgs(
            F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1),
            torch.as_tensor(remap[y]),
            _class_weights(remap[y], len(seen), class_weight),
            l2=l2,
            max_iter=max_iter,
            seed=seed,
        )
        weight[torch.as_tensor(seen)] = w
        bias[torch.as_tensor(seen)] = b
    return LinearHead(weight, bias).eval()


def _lbfgs(
    x: torch.Tensor, y: torch.Tensor, class_w: torch.Tensor, *, l2: float, max_iter: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean weighted cross-entropy + l2/2 |W|^2 (the bias is not penalised)."""
    w = torch.zeros(len(class_w), x.shape[1], requires_grad=True)
    b = torch.zeros(len(class_w), requires_grad=True)
    sample_w = class_w[y]
    total = sample_w.sum()
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        ce = F.cross_entropy(x @ w.T + b, y, reduction="none")
        loss = (ce * sample_w).sum() / total + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    # The solve draws no random numbers; the fork keeps a seed from leaking into the caller's
    # global torch state should a future solver start from a random point.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt.step(closure)
    return w.detach(), b.detach()


@torch.inference_mode()
def head_probabilities(head: LinearHead, features: np.ndarray) -> np.ndarray:
    """Softmax of the head on (N, D) features (raw backbone output; float16 is fine): (N, C)."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[1] != head.embed_dim:
        raise ValueError(f"features must be (N, {head.embed_dim}), got shape {x.shape}")
    device = head.fc.weight.device
    logits = head.eval()(torch.as_tensor(x, dtype=torch.float32, device=device))
    return F.softmax(logits, dim=1).cpu().numpy().astype(np.float32)


class FeatureTrunk(nn.Module):
    """What a backbone classifier's trunk does after its ResNet: nothing, or scale the features
    to unit length (`unit_features`, as `training.backbones.Backbone.forward` does)."""

    def __init__(self, unit_features: bool) -> None:
        super().__init__()
        self.unit_features = unit_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.float()
        return F.normalize(x, dim=1) if self.unit_features else x


def head_from_checkpoint(path: str) -> tuple[Classifier, dict]:
    """(classifier on stored features, meta) from a backbone classifier's checkpoint: its
    `fc` and dropout as saved, its trunk a `FeatureTrunk`, no pixel normalisation. The ResNet's
    weights are read from the file and dropped."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')} is not supported")
    meta = payload["meta"]
    if meta["arch"] != BACKBONE_CLASSIFIER:
        raise ValueError(
            f"{path}: a {meta['arch']!r} model has no backbone features to score from; "
            "score it on pixels (training.score.run_scoring)"
        )
    weight, bias = payload["state_dict"]["fc.weight"], payload["state_dict"]["fc.bias"]
    trunk = FeatureTrunk(bool(meta.get("arch_options", {}).get("unit_features", False)))
    # The fc's random initialisation is overwritten below: drawn from a forked RNG, so reading
    # a checkpoint leaves the caller's torch random state as it was.
    with torch.random.fork_rng(devices=[]):
        model = Classifier(
            trunk, weight.shape[1], weight.shape[0], dropout=meta["dropout"], mean=[0.0], std=[1.0]
        )
    model.normalize = nn.Identity()  # features, not pixels: nothing to normalise per channel
    model.fc.load_state_dict({"weight": weight, "bias": bias})
    return model.eval(), meta


def _stratified_folds(y: np.ndarray, scored: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number per item (-1: never held out). Each class's scored items, shuffled, are dealt
    round-robin, continuing across classes, so every fold gets its share of every class."""
    rng = np.random.default_rng(seed)
    fold = np.full(len(y), -1, dtype=np.int64)
    at = 0
    for c in np.unique(y[scored]):
        idx = rng.permutation(np.flatnonzero(scored & (y == c)))
        fold[idx] = (at + np.arange(len(idx))) % folds
        at += len(idx)
    return fold


def _knn_predict(
    train: torch.Tensor, y_train: np.ndarray, test: torch.Tensor, k: int, num_classes: int
) -> np.ndarray:
    """Weighted k-NN vote on unit rows: each neighbour votes exp(cos / T) for its class
    (shifted by the largest possible cosine, 1, so nothing overflows)."""
    sims = test @ train.T
    top, idx = sims.topk(min(k, train.shape[0]), dim=1)
    votes = torch.zeros(test.shape[0], num_classes)
    votes.scatter_add_(1, torch.as_tensor(y_train)[idx], torch.exp((top - 1.0) / KNN_TEMPERATURE))
    return votes.argmax(dim=1).numpy()


def _score(correct: int, n: int) -> dict:
    lo, hi = accuracy_interval(correct, n)
    return {"accuracy": correct / n, "correct": correct, "n": n, "interval": [lo, hi]}


def probe(
    features: np.ndarray, labels: np.ndarray, *, folds: int = 5, k: int = 20, seed: int = 0
) -> dict:
    """How well the labels so far are predicted from the features: k-NN and linear probe.

    Stratified `folds`-fold cross-fitting: every scored item is predicted by a k-NN vote and a
    `fit_head` fitted without its fold. Items of a class with a single label are used for
    training only (held out, their class would be missing from training) and the note says
    so. Needs 2+ classes with 2+ labels each; otherwise the accuracies are None and "note"
    says why. Returns JSON-ready numbers:
    {"n", "labels", "classes", "folds", "k", "knn": {...}, "linear": {...}, "note"}, each of
    knn/linear {"accuracy", "correct", "n", "interval": [lo, hi] (95% Wilson)}."""
    x = _check_features(features, labels)
    if folds < 2 or k < 1:
        raise ValueError(f"need folds >= 2 and k >= 1, got folds={folds}, k={k}")
    raw = np.asarray(labels)
    classes, y = np.unique(raw, return_inverse=True)
    counts = np.bincount(y)
    scored = counts[y] >= 2
    out: dict = {"n": 0, "labels": len(y), "classes": len(classes), "folds": 0, "k": 0}
    out |= {"knn": None, "linear": None, "note": None}
    singles = [str(c) for c in classes[counts < 2].tolist()]
    notes = []
    if singles:
        notes.append(f"classes with one label (training only, not scored): {', '.join(singles)}")
    if (counts >= 2).sum() < 2:
        notes.append("a probe needs at least 2 classes with 2 or more labels each")
        out["note"] = "; ".join(notes)
        return out
    nfold = min(folds, int(scored.sum()))
    fold = _stratified_folds(y, scored, nfold, seed)
    unit = F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)
    knn_hits = lin_hits = 0
    k_used = 0
    for f in range(nfold):
        test, train = fold == f, fold != f
        if not test.any():
            continue
        k_used = max(k_used, min(k, int(train.sum())))
        pred = _knn_predict(unit[train], y[train], unit[test], k, len(classes))
        knn_hits += int((pred == y[test]).sum())
        head = fit_head(x[train], y[train], len(classes), seed=seed)
        pred = head_probabilities(head, x[test]).argmax(axis=1)
        lin_hits += int((pred == y[test]).sum())
    n = int(scored.sum())
    out |= {"n": n, "folds": nfold, "k": k_used, "note": "; ".join(notes) or None}
    out |= {"knn": _score(knn_hits, n), "linear": _score(lin_hits, n)}
    return out
