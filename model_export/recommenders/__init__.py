"""The recommender families a shop's validation split chooses among: one file per family, one base class."""

from __future__ import annotations

from model_export.recommenders.base import Recommender
from model_export.recommenders.blend import Blend
from model_export.recommenders.cooccurrence import Cooccurrence
from model_export.recommenders.ease import Ease
from model_export.recommenders.factors import Factors
from model_export.recommenders.hybrid import Hybrid, RecsParams
from model_export.recommenders.item_knn import ItemKNN
from model_export.recommenders.popularity import Popularity

# The hybrid goes after the single families: its coordinate search compares against the best figures they
# reached; the blend goes last: it is made of the two best families' best trials.
FAMILIES: tuple[type[Recommender], ...] = (Popularity, ItemKNN, Cooccurrence, Ease, Factors, Hybrid, Blend)
BY_NAME: dict[str, type[Recommender]] = {family.name: family for family in FAMILIES}

__all__ = [
    "BY_NAME",
    "FAMILIES",
    "Blend",
    "Cooccurrence",
    "Ease",
    "Factors",
    "Hybrid",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "RecsParams",
]
