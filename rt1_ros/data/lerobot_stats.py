"""meta/stats.json of a LeRobotDataset: per-feature min, max, mean, std and count over every frame, accumulated
episode by episode (the exporter never holds a whole dataset in memory). Camera features are per channel over all
pixels, scaled to [0, 1] and shaped (3, 1, 1), the layout lerobot's normalisation expects."""
from __future__ import annotations

import numpy as np


class RunningStats:
    """Running statistics of (N, ...) samples along axis ``axes`` (float64 sums: exact enough for millions of rows)."""

    def __init__(self, axes: tuple[int, ...] = (0,), scale: float = 1.0, keep_dims: bool = False) -> None:
        self.axes = axes
        self.scale = scale
        self.keep_dims = keep_dims
        self.count = 0  # samples (frames), as lerobot counts
        self._elements = 0
        self._sum = self._sum_sq = self._min = self._max = None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64) * self.scale
        if values.ndim == 1 and self.axes == (0,):
            values = values[:, None]
        total = values.sum(axis=self.axes)
        squares = np.square(values).sum(axis=self.axes)
        low, high = values.min(axis=self.axes), values.max(axis=self.axes)
        if self._sum is None:
            self._sum, self._sum_sq, self._min, self._max = total, squares, low, high
        else:
            self._sum += total
            self._sum_sq += squares
            self._min = np.minimum(self._min, low)
            self._max = np.maximum(self._max, high)
        self.count += values.shape[0]
        self._elements += values.size // total.size

    def as_json(self) -> dict:
        if self._sum is None:
            raise ValueError("no samples")
        mean = self._sum / self._elements
        std = np.sqrt(np.maximum(self._sum_sq / self._elements - mean * mean, 0.0))
        shape = (-1, 1, 1) if self.keep_dims else (-1,)
        return {name: np.asarray(value).reshape(shape).tolist()
                for name, value in (("min", self._min), ("max", self._max), ("mean", mean), ("std", std))} | {
                    "count": [self.count]}
