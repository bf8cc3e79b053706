"""One small base class every recommender family implements (the shape of benfred/implicit's
recommender_base): fit on training data, score a batch or recommend for one history, export as recs.onnx.

A family fits into the one exportable shape (model_export.training.recs.RecsModel: top-M neighbour lists, optional
item factors, an optional category part, a popularity prior), so serve runs whichever family a shop's
validation chose, with the same inputs and outputs. A family also says which hyperparameters it tries
(`grid`), and may search them its own way (`search`); every trial is scored by the one criterion in
model_export.training.tuning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from tqdm import tqdm

from model_export.training.onnx_graphs import recs_graph
from model_export.training.recs import RecsData, RecsModel

if TYPE_CHECKING:
    from model_export.training.tuning import Trials

# How fast older recent items fade (per event back): 1.0 weighs a history evenly, 0.15 is almost "last item".
DECAYS = (1.0, 0.7, 0.4, 0.15)


class NotFitted(RuntimeError):
    pass


class Recommender(ABC):
    name: ClassVar[str]
    # Recent-items decays tried with every grid point (they change the inputs, not the fit: no refit).
    decays: ClassVar[tuple[float, ...]] = DECAYS

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)
        self.model: RecsModel | None = None

    @classmethod
    @abstractmethod
    def grid(cls, data: RecsData) -> Iterator[dict[str, Any]]:
        """The hyperparameters to try on `data` (the recent-items decay aside)."""

    @abstractmethod
    def build(self, data: RecsData) -> RecsModel:
        """The exportable model of these hyperparameters fitted on `data`."""

    def fit(self, data: RecsData) -> Recommender:
        self.model = self.build(data)
        return self

    def fitted(self) -> RecsModel:
        if self.model is None:
            raise NotFitted(f"{self.name} is not fitted")
        return self.model

    def scores(self, inputs: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """Batch scores, one row per query of weighted recent items."""
        return self.fitted().scores(inputs)

    def recommend(
        self,
        item_idx: npt.NDArray[np.int64],
        item_w: npt.NDArray[np.float32],
        exclude_idx: npt.NDArray[np.int64],
        k: int,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Top k for one history, exactly as recs.onnx answers (ties to the lower index)."""
        return self.fitted().top_k(item_idx, item_w, exclude_idx, k)

    def export(self) -> bytes:
        return recs_graph(self.fitted())

    @classmethod
    def search(cls, data: RecsData, trials: Trials, progress: bool = False) -> None:
        """Every grid point with every decay, each measured by `trials`; the first (the first grid point at the
        first decay) is the family's incumbent, replaced only by a clearly better best (tuning.Trials.choose).
        A family may search more cleverly."""
        points = list(cls.grid(data))
        measured = []
        for params in tqdm(points, desc=f"select: {cls.name}", unit="fit", disable=not progress):
            model = cls(**params).build(data)
            measured += [trials.measure(cls.name, {**params, "decay": decay}, model) for decay in cls.decays]
        if measured:
            trials.choose(cls.name, measured[0], measured[1:])


def with_decay(params: Mapping[str, Any], decay: float | None = None) -> dict[str, Any]:
    found = dict(params)
    if decay is not None:
        found["decay"] = decay
    return found
