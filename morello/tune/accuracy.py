"""How well the cost model predicts: its time against the measured one, for the optima and
for their neighbours (``morello.tune.rerank``).

Two numbers answer two questions. The median of |predicted/measured - 1| says whether the
model's cycles are the machine's (at the clock measured beside them). The rank correlation
within a shape's candidates says whether the model orders programs as the machine does,
which is all the search needs from it: a model off by a constant factor ranks perfectly.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def spearman(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank); 1: the same order."""
    if len(predicted) != len(measured) or len(predicted) < 2:
        raise ValueError("rank correlation needs two equal sequences of two or more")
    x, y = _ranks(predicted), _ranks(measured)
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / denominator if denominator else 0.0


def _ranks(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=float)
    for value in np.unique(v):  # ties share their mean rank
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def relative_error(predicted_s: float, measured_s: float) -> float:
    return abs(predicted_s / measured_s - 1.0)


@dataclass(frozen=True, slots=True)
class Accuracy:
    shapes: int  # shapes with at least two candidates measured
    candidates: int  # programs measured in all
    median_rank_correlation: float | None  # over shapes; None when no shape had two
    median_error: float  # median |predicted/measured - 1| over every candidate

    def __str__(self) -> str:
        rho = self.median_rank_correlation
        ranked = ""
        if rho is not None:
            ranked = f"median rank correlation {rho:.2f} over {self.shapes} shapes; "
        return (
            f"{ranked}median |predicted/measured - 1| {self.median_error:.0%} over "
            f"{self.candidates} programs"
        )


def accuracy(shapes: Sequence[Sequence[tuple[float, float]]]) -> Accuracy:
    """``shapes``: per shape, the (predicted, measured) seconds of each candidate."""
    pairs = [pair for shape in shapes for pair in shape]
    if not pairs:
        raise ValueError("no measured program to judge the model by")
    ranked = [shape for shape in shapes if len(shape) >= 2]
    rhos = [spearman([p for p, _ in s], [m for _, m in s]) for s in ranked]
    return Accuracy(
        shapes=len(ranked),
        candidates=len(pairs),
        median_rank_correlation=statistics.median(rhos) if rhos else None,
        median_error=statistics.median(relative_error(p, m) for p, m in pairs),
    )
