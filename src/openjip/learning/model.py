"""The model of federated runs: logistic regression over a site's feature vectors, in numpy.

Parameters are two arrays, ``weights`` (one per feature) and ``bias``; they are all that a
training site sends, with the aggregate metrics :func:`evaluate` and :func:`train` return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
TENSORS = ("weights", "bias")
"""Names of the model's parameter arrays, in order."""
TRAIN_METRICS = ("num-examples", "train-loss", "train-accuracy")
EVALUATE_METRICS = ("num-examples", "eval-loss", "eval-accuracy")


@dataclass(frozen=True)
class Cohort:
    """What one site trains on: a feature matrix, labels (0/1) and how many patients."""

    features: Vector
    labels: Vector
    patients: int

    @property
    def size(self) -> int:
        """Number of series."""
        return len(self.labels)

    @classmethod
    def pooled(cls, parts: list[Cohort]) -> Cohort:
        """All series of ``parts`` in one cohort (the centralized baseline's data)."""
        return cls(
            np.vstack([part.features for part in parts]),
            np.concatenate([part.labels for part in parts]),
            sum(part.patients for part in parts),
        )

    def split(self, test_fraction: float = 0.3) -> tuple[Cohort, Cohort]:
        """Train and test parts: every ``1/test_fraction``-th series (in order) is for testing."""
        step = max(2, round(1 / test_fraction))
        test = np.arange(self.size) % step == step - 1
        return (
            Cohort(self.features[~test], self.labels[~test], self.patients),
            Cohort(self.features[test], self.labels[test], self.patients),
        )


def initial_parameters(features: int) -> list[Vector]:
    """Zero weights and bias: every site and the coordinator start from the same model."""
    return [np.zeros(features), np.zeros(1)]


def _probabilities(parameters: list[Vector], features: Vector) -> Vector:
    weights, bias = parameters
    return 1.0 / (1.0 + np.exp(-(features @ weights + bias[0])))


def evaluate(parameters: list[Vector], cohort: Cohort) -> dict[str, float]:
    """Log loss and accuracy of the model on ``cohort``."""
    if cohort.size == 0:
        return {"loss": 0.0, "accuracy": 0.0}
    p = np.clip(_probabilities(parameters, cohort.features), 1e-9, 1 - 1e-9)
    y = cohort.labels
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return {"loss": loss, "accuracy": float(np.mean((p >= 0.5) == (y == 1)))}


def train(
    parameters: list[Vector], cohort: Cohort, *, epochs: int, learning_rate: float
) -> list[Vector]:
    """Full-batch gradient descent from ``parameters`` for ``epochs`` passes (new arrays)."""
    weights, bias = (np.array(array, dtype=np.float64) for array in parameters)
    for _ in range(epochs):
        error = _probabilities([weights, bias], cohort.features) - cohort.labels
        weights -= learning_rate * cohort.features.T @ error / cohort.size
        bias -= learning_rate * np.array([error.mean()])
    return [weights, bias]
