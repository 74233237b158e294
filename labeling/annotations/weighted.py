"""Weighted consensus: a model of each annotator's reliability (Dawid and Skene 1979).

    .venv/bin/python -m pytest tests/labeling/annotations/test_weighted_consensus.py -q

Every annotator gets a confusion matrix - the chance they answer class l when the truth is k -
and the project a class prior; EM fits both from all counted votes, the true class of each
image being the hidden variable. An image's consensus is then the class with the highest
posterior, so two careless annotators who agree no longer outvote a careful one who does not.
Images whose truth is known anchor the fit: gold questions (the annotators' gold answers) and
labels a reviewer or an admin decided.

With many classes a full matrix per annotator has more cells than there are votes to fill
it: above ``FULL_MATRIX_MAX_CLASSES`` each annotator is one number (their accuracy, errors
spread evenly - the "one-coin" model). The fit needs ``MIN_IMAGES`` images with two or more
votes; below that the consensus is the majority vote.

numpy only (the web side never imports torch). The fit of 100,000 multi-vote images (three
votes, ten classes) takes 3.5 s on 2 cores; the refit through the product, 2 minutes
(``bench/consensus.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_MATRIX_MAX_CLASSES = 20
MIN_IMAGES = 20  # multi-vote images before the fit means anything
ITERATIONS = 50  # EM converges in 10-30 on the simulated crowds
TOLERANCE = 1e-6  # max change of a posterior between iterations
# Dirichlet pseudo-counts added to every annotator's confusion counts: a new annotator is
# taken to be right 2 times in 3, and no cell is ever exactly 0 (one slip would veto a class).
PSEUDO_RIGHT = 2.0
PSEUDO_WRONG = 1.0
# How many votes' worth of weight each confusion-matrix row gives the annotator's one-coin row.
SHRINK = 100.0
# Below this posterior the label is unsure: the image asks for another vote, as a tie does under
# the majority, while the project allows extra votes. Simulated (10 seeds, 1,000 images, the
# issue's crowd of 2/10/30% and a 5-for-3 mixer, three votes an image): deciding every image at
# once left 8.7 wrong; asking below 0.95 left 1.8 wrong for 0.9% more votes (the majority:
# 4.6 wrong and 2.5 unresolved for 1.2% more).
CONFIDENT = 0.95
# Posteriors closer than this are a tie: the admin-resolution path takes over.
TIE = 1e-6


@dataclass
class Votes:
    """Counted votes as parallel arrays: vote j is annotator ``annotators[j]`` (a column
    index) saying class ``labels[j]`` about image ``items[j]`` (a row index)."""

    items: np.ndarray
    annotators: np.ndarray
    labels: np.ndarray
    n_items: int
    n_annotators: int


@dataclass
class Fit:
    prior: np.ndarray  # (K,)
    confusion: np.ndarray  # (A, K, K): [a, true, given]
    posterior: np.ndarray  # (N, K)
    iterations: int


def _one_coin(k: int) -> bool:
    return k > FULL_MATRIX_MAX_CLASSES


def _vote_log_chances(votes: Votes, conf: np.ndarray, k: int) -> np.ndarray:
    """(V, K): for every vote, the log chance of it under each true class. ``conf`` is the
    (A, K, K) confusion [a, true, given], or (A,) accuracies for the one-coin model."""
    if not _one_coin(k):
        return np.log(conf[votes.annotators, :, votes.labels])
    p = conf[votes.annotators]
    out = np.repeat(np.log((1 - p) / (k - 1))[:, None], k, axis=1)
    out[np.arange(len(p)), votes.labels] = np.log(p)
    return out


def _log_likelihood(votes: Votes, conf: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """(N, K): log prior + the log chance of every vote given each true class."""
    out = np.tile(log_prior, (votes.n_items, 1))
    np.add.at(out, votes.items, _vote_log_chances(votes, conf, log_prior.shape[0]))
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _accuracy(votes: Votes, posterior: np.ndarray) -> np.ndarray:
    """(A,): each annotator's smoothed chance to answer the true class."""
    right = np.zeros(votes.n_annotators)
    np.add.at(right, votes.annotators, posterior[votes.items, votes.labels])
    total = np.bincount(votes.annotators, minlength=votes.n_annotators)
    return (right + PSEUDO_RIGHT) / (total + PSEUDO_RIGHT + PSEUDO_WRONG)


def _confusion(votes: Votes, posterior: np.ndarray, k: int) -> np.ndarray:
    """M-step: each annotator's confusion matrix (A, K, K), or their accuracy (A,) for the
    one-coin model.

    A full matrix has K*K cells to fill from an annotator's votes, which leaves most cells
    nearly empty: estimated alone, the noise in them decides ties. So each row starts from
    the annotator's one-coin row, worth ``SHRINK`` votes, and departs from it only where the
    votes say so (an annotator who always calls a 5 a 3). Measured on simulated crowds (600
    images, 10 classes, 3 seeds; the crowds of test_weighted_consensus.py), the share of
    images wrong with annotators at 5/35/45% uniform errors: majority 13.3%, full matrices
    11.0%, one-coin 4.4%, shrunk 4.6%; with annotators at 2/10/30% and a fourth who always
    calls a 5 a 3: majority 0.9%, one-coin 0.28%, shrunk 0.17%.
    """
    p = _accuracy(votes, posterior)
    if _one_coin(k):
        return p
    counts = np.zeros((votes.n_annotators * k, k))
    # Row a*K + l accumulates, per true class, the posterior mass of images where a said l.
    np.add.at(counts, votes.annotators * k + votes.labels, posterior[votes.items])
    counts = counts.reshape(votes.n_annotators, k, k).transpose(0, 2, 1)  # [a, true, given]
    base = np.repeat(((1 - p) / (k - 1))[:, None, None], k, axis=1).repeat(k, axis=2)
    idx = np.arange(k)
    base[:, idx, idx] = p[:, None]
    conf = counts + SHRINK * base
    return conf / conf.sum(axis=2, keepdims=True)


def dawid_skene(votes: Votes, k: int, known: dict[int, int] | None = None) -> Fit:
    """EM from the majority vote; ``known`` ({item: class}) pins the truth of some images."""
    known = known or {}
    posterior = np.zeros((votes.n_items, k))
    np.add.at(posterior, (votes.items, votes.labels), 1.0)
    posterior += 1e-3  # an image with no votes (known truth only) is uniform before pinning
    posterior /= posterior.sum(axis=1, keepdims=True)
    pinned_rows = np.fromiter(known.keys(), dtype=np.int64, count=len(known))
    pinned = np.zeros((len(known), k))
    pinned[np.arange(len(known)), np.fromiter(known.values(), dtype=np.int64)] = 1.0
    posterior[pinned_rows] = pinned
    iterations = 0
    for iterations in range(1, ITERATIONS + 1):  # noqa: B007 - reported below
        prior = (posterior.sum(axis=0) + 1.0) / (votes.n_items + k)
        conf = _confusion(votes, posterior, k)
        new = _softmax(_log_likelihood(votes, conf, np.log(prior)))
        new[pinned_rows] = pinned
        change = float(np.abs(new - posterior).max()) if votes.n_items else 0.0
        posterior = new
        if change < TOLERANCE:
            break
    return Fit(prior=prior, confusion=conf, posterior=posterior, iterations=iterations)


class ReliabilityModel:
    """A fitted model as stored in ``ConsensusModel.params``, for judging one image."""

    def __init__(self, params: dict) -> None:
        self.classes: list[str] = list(params["classes"])
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.k = len(self.classes)
        self.log_prior = np.log(np.asarray(params["prior"], dtype=np.float64))
        self.conf = {int(user): np.asarray(m) for user, m in params["annotators"].items()}
        self.default = np.asarray(params["default"])  # an annotator the fit has not seen

    def _log_chances(self, user: int, col: int) -> np.ndarray:
        """(K,): the log chance that ``user`` answers class ``col`` under each true class."""
        conf = self.conf.get(user, self.default)
        if _one_coin(self.k):
            out = np.full(self.k, np.log((1 - float(conf)) / (self.k - 1)))
            out[col] = np.log(float(conf))
            return out
        return np.log(conf[:, col])

    def posterior(self, votes: dict[int, str]) -> dict[str, float] | None:
        """The posterior over classes given ``votes`` ({annotator id: label}); None when a
        vote names a class the model does not know (the fit predates a class change)."""
        logits = self.log_prior.copy()
        for user, label in votes.items():
            col = self.index.get(label)
            if col is None:
                return None
            logits += self._log_chances(user, col)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return {c: float(v) for c, v in zip(self.classes, p, strict=True)}

    def reliability(self, user: int) -> float | None:
        """Expected accuracy of an annotator: their chance to answer the true class, under
        the class prior."""
        conf = self.conf.get(user)
        if conf is None:
            return None
        if _one_coin(self.k):
            return float(conf)
        return float(np.exp(self.log_prior) @ np.diagonal(conf))


def weighted_choice(posterior: dict[str, float]) -> tuple[str, bool, bool]:
    """The class with the highest posterior; whether it ties with the runner-up; whether the
    model is unsure of it (posterior under ``CONFIDENT``: worth another vote while the
    project allows one)."""
    ranked = sorted(posterior.items(), key=lambda kv: kv[1], reverse=True)
    tied = len(ranked) > 1 and ranked[0][1] - ranked[1][1] < TIE
    return ranked[0][0], tied, ranked[0][1] < CONFIDENT


def params_from_fit(fit: Fit, classes: list[str], annotator_ids: list[int], images: int) -> dict:
    """What ``ConsensusModel.params`` stores (JSON lists of floats, clipped away from 0 so a
    stored cell never becomes log(0))."""
    conf = np.clip(fit.confusion, 1e-9, 1.0)
    average = conf.mean(axis=0)
    return {
        "classes": classes,
        "prior": np.clip(fit.prior, 1e-9, 1.0).tolist(),
        "annotators": {str(user): conf[i].tolist() for i, user in enumerate(annotator_ids)},
        "default": average.tolist(),
        "images": images,
        "iterations": fit.iterations,
    }
