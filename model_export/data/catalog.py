"""The item catalog built from events: every item with its category, last price and weighted popularity, and
the categories' place in the space of what people shop for together (`category_axes`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from personalization.catalog import Catalog, CatalogItem
from personalization.features import CATEGORY_AXES
from personalization.profile import AFFINITY_WEIGHTS

SEED = 0
# Axes are written rounded: four decimals are far finer than a person's mix moves, and keep catalog.json small.
AXIS_DECIMALS = 4
NEGLIGIBLE = 1e-6


def build_catalog(frame: pd.DataFrame) -> Catalog:
    """Popularity is the same implicit-feedback weighting the profile uses (view < cart < purchase)."""
    weights = frame["event_type"].map({kind.value: w for kind, w in AFFINITY_WEIGHTS.items()}).fillna(0.0)
    # Every item gets at least a small weight, so items seen only in removals still exist in the catalog.
    scored = frame.assign(weight=weights.where(weights > 0, 0.1))
    popularity = scored.groupby("item_id", sort=False)["weight"].sum()
    last = scored.drop_duplicates("item_id", keep="last").set_index("item_id").reindex(popularity.index)
    # Column-wise, not per item with .at: a 50,000-item catalog builds in well under a second.
    categories = last["category"].tolist()
    prices = last["price"].tolist()
    brands = last["brand"].tolist() if "brand" in last.columns else [None] * len(last)
    items = [
        CatalogItem(
            id=str(item_id),
            category=category if isinstance(category, str) else None,
            price=None if pd.isna(price) else round(float(price), 2),
            popularity=round(float(score), 4),
            brand=brand if isinstance(brand, str) else None,
        )
        for item_id, score, category, price, brand in zip(
            popularity.index, popularity.to_numpy(), categories, prices, brands, strict=True
        )
    ]
    return Catalog(items).with_category_axes(category_axes(frame.assign(weight=weights)))


def category_axes(frame: pd.DataFrame, dims: int = CATEGORY_AXES) -> dict[str, list[float]]:
    """Each category's coordinates on the first `dims` right singular vectors of the people x categories
    matrix (each person's row their category mix, weighted as the profile's affinities are, summing to 1).

    Categories people shop for together lie close together, so a person's mix, averaged over these
    coordinates, says in a few numbers what they shop for (personalization.features). A truncated SVD, not
    one feature per category: a shop has hundreds of categories, and segments must stay few and sizeable.
    Fewer axes when the mixes vary along fewer directions; empty when the shop has fewer than two categories
    (nothing to tell apart).
    """
    rows = frame[(frame["weight"] > 0).to_numpy() & frame["category"].notna().to_numpy()]
    people = pd.Categorical(rows["user_id"])
    categories = pd.Categorical(rows["category"].astype(str))
    n_categories = len(categories.categories)
    if n_categories < 2:
        return {}
    matrix = sp.csr_matrix(
        (rows["weight"].to_numpy(dtype=np.float64), (people.codes, categories.codes)),
        shape=(len(people.categories), n_categories),
    )
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    mixes = sp.diags(1.0 / np.maximum(totals, 1e-12)) @ matrix
    components = min(dims, n_categories - 1)
    svd = TruncatedSVD(n_components=components, random_state=SEED).fit(mixes)
    # An axis along which no one's mix varies is an arbitrary direction: it would set categories apart that
    # nobody tells apart. Kept are the axes with a singular value above rounding noise of the first's.
    kept = svd.singular_values_ > NEGLIGIBLE * svd.singular_values_.max(initial=0.0)
    loadings = np.round(svd.components_[kept].T, AXIS_DECIMALS)
    return {str(category): loadings[i].tolist() for i, category in enumerate(categories.categories)}
