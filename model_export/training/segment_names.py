"""Segment names that are true: read from where a segment's centre stands against the population, and checked
against what its members actually do.

A name is a noun and up to two qualifiers. The noun says what most members did: bought (repeat buyers when most
bought more than once), filled a cart, or only looked; a segment is never called "browsers" unless most of its
members browsed without buying. The qualifiers come from the features that set the segment apart most (its
centre's largest standardized deviations from the population, at least MIN_DEVIATION), and each is used only
when the members' own values bear it out (a segment is "mobile" only if most of its events came from phones).
A segment set apart by what it shops for (the category axes) is named for its signature category: the category
that holds a larger share of its members' interest than of everyone's, by the widest margin, used only when it
holds at least SIGNATURE_SHARE of the members' interest and SIGNATURE_RATIO times the population's share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from personalization.features import FEATURE_NAMES
from personalization.profile import AFFINITY_WEIGHTS

Matrix = npt.NDArray[np.float64]
# A centre this many population standard deviations away from the mean on a feature is "set apart" by it.
MIN_DEVIATION = 0.5
DEFINING_FEATURES = 3
MAX_QUALIFIERS = 2
_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
_REPEAT = math.log1p(2)  # log_orders at two orders
# "high-value" / "small-basket": the members' order value at least a quarter above / below other buyers'.
_VALUE_GAP = math.log(1.25)
SIGNATURE_SHARE = 0.25
# A category is listed for a segment only when its members' share exceeds everyone's by more than this (half a
# percentage point): smaller gaps are noise, not something the segment shops for.
MIN_GAP = 0.005
SIGNATURE_RATIO = 1.5
_CATEGORY_AXIS = "category_axis_"


@dataclass(frozen=True)
class CategoryShare:
    """A category's share of a segment's members' interest (their mean category mix) against everyone's."""

    category: str
    members: float
    population: float

    def to_dict(self) -> dict[str, float | str]:
        return {"category": self.category, "members": round(self.members, 3), "population": round(self.population, 3)}


@dataclass(frozen=True)
class CategoryMixes:
    """People's category mixes: row i is person i's shares of interest per category (summing to 1, or an empty
    row), the columns `categories`."""

    shares: sp.csr_matrix
    categories: list[str]

    @classmethod
    def from_dicts(cls, mixes: Sequence[Mapping[str, float]]) -> CategoryMixes:
        names = sorted({category for mix in mixes for category in mix})
        column = {name: i for i, name in enumerate(names)}
        rows = [row for row, mix in enumerate(mixes) for _ in mix]
        cols = [column[category] for mix in mixes for category in mix]
        values = [share for mix in mixes for share in mix.values()]
        return cls(sp.csr_matrix((values, (rows, cols)), shape=(len(mixes), len(names))), names)


def category_mixes(frame: pd.DataFrame, users: Sequence[str]) -> CategoryMixes:
    """Each of `users`' category mix over `frame`, weighted as the profile's affinities are (view < cart <
    purchase), in the order of `users` (a user without a categorized event has an empty row)."""
    weights = frame["event_type"].map({kind.value: w for kind, w in AFFINITY_WEIGHTS.items()}).fillna(0.0)
    keep = (weights > 0).to_numpy() & frame["category"].notna().to_numpy()
    rows = pd.DataFrame({"user": frame["user_id"][keep], "category": frame["category"][keep].astype(str)})
    rows["weight"] = weights[keep].to_numpy(dtype=np.float64)
    totals = rows.groupby(["user", "category"], sort=False)["weight"].sum().reset_index()
    position = pd.Series(np.arange(len(users)), index=pd.Index(users, dtype=object))
    totals = totals[totals["user"].isin(position.index)]
    categories = pd.Categorical(totals["category"])
    matrix = sp.csr_matrix(
        (totals["weight"].to_numpy(), (position[totals["user"]].to_numpy(), categories.codes)),
        shape=(len(users), len(categories.categories)),
    )
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return CategoryMixes(sp.csr_matrix(sp.diags(1.0 / np.maximum(sums, 1e-12)) @ matrix), list(categories.categories))


def signature_categories(
    mixes: CategoryMixes, labels: npt.NDArray[np.int64], k: int, top: int = 3
) -> list[list[CategoryShare]]:
    """Per segment, the categories whose share of the members' interest exceeds everyone's the most."""
    n = len(labels)
    if n == 0 or not mixes.categories:
        return [[] for _ in range(k)]
    membership = sp.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(k, n))
    sizes = np.maximum(np.bincount(labels, minlength=k), 1).astype(np.float64)
    mine = np.asarray((membership @ mixes.shares).todense()) / sizes[:, None]
    everyone = np.asarray(mixes.shares.sum(axis=0)).ravel() / n
    found = []
    for i in range(k):
        gap = mine[i] - everyone
        order = sorted(np.flatnonzero(gap > MIN_GAP).tolist(), key=lambda c: (-gap[c], mixes.categories[c]))[:top]
        found.append([CategoryShare(mixes.categories[c], float(mine[i, c]), float(everyone[c])) for c in order])
    return found


def category_label(category: str) -> str:
    """A category as a shopper would say it: the last part of a dotted taxonomy, else the id, marked as one."""
    last = category.rsplit(".", 1)[-1].replace("_", " ")
    if last.startswith("cat:") or last.isdigit():
        return f"category {last.removeprefix('cat:')}"
    return last


def signature_of(shares: Sequence[CategoryShare]) -> str | None:
    """The signature category's label, when the members bear it out (module docstring)."""
    if not shares:
        return None
    first = shares[0]
    if first.members >= SIGNATURE_SHARE and first.members >= SIGNATURE_RATIO * first.population:
        return category_label(first.category)
    return None


@dataclass(frozen=True)
class Defining:
    """One feature that sets a segment apart: its mean among members against the population's."""

    feature: str
    z: float
    members: float
    population: float

    def to_dict(self) -> dict[str, float | str]:
        return {
            "feature": self.feature,
            "z": round(self.z, 2),
            "members": round(self.members, 3),
            "population": round(self.population, 3),
        }


Guard = Callable[[Mapping[str, float]], bool]


def _always(_: Mapping[str, float]) -> bool:
    return True


# feature -> (qualifier when the centre is above the population, guard on the members' means; the same below).
QUALIFIERS: dict[str, tuple[tuple[str, Guard] | None, tuple[str, Guard] | None]] = {
    "log_hours_since_last_event": (("lapsed", _always), ("recent", _always)),
    "log_visits": (("frequent", lambda m: m["log_visits"] > math.log1p(1)), None),
    "log_orders": (None, ("occasional", lambda m: m["log_orders"] < _REPEAT)),
    "log_views": (("engaged", lambda m: m["log_views"] > math.log1p(2)), ("light", _always)),
    # Order value is compared among people who ordered: against non-buyers (zero) any buyer would look high-value.
    "log_order_value": (
        ("high-value", lambda m: m["buyers_order_value"] - m["population_buyers_order_value"] > _VALUE_GAP),
        ("small-basket", lambda m: m["population_buyers_order_value"] - m["buyers_order_value"] > _VALUE_GAP),
    ),
    "view_to_cart_rate": (("quick-to-cart", lambda m: m["view_to_cart_rate"] > 0.2), None),
    "distinct_categories": (("wide-ranging", lambda m: m["distinct_categories"] >= 2), None),
    "top_category_share": (("single-category", lambda m: m["top_category_share"] > 0.7), None),
    "viewed_price_index": (
        ("premium", lambda m: m["viewed_price_index"] > 0.25),
        ("discount-seeking", lambda m: m["viewed_price_index"] < -0.25),
    ),
    "bought_price_index": (
        ("premium", lambda m: m["bought_price_index"] > 0.25),
        ("discount-seeking", lambda m: m["bought_price_index"] < -0.25),
    ),
    "share_mobile": (("mobile", lambda m: m["share_mobile"] > 0.5), None),
    "share_desktop": (("desktop", lambda m: m["share_desktop"] > 0.5), None),
    "share_tablet": (("tablet", lambda m: m["share_tablet"] > 0.5), None),
    "share_night": (("night-owl", lambda m: m["share_night"] > 0.4), None),
    "share_morning": (("morning", lambda m: m["share_morning"] > 0.4), None),
    "share_afternoon": (("afternoon", lambda m: m["share_afternoon"] > 0.4), None),
    "share_evening": (("evening", lambda m: m["share_evening"] > 0.4), None),
}


def defining_features(center_z: Matrix, member_means: Matrix, population_means: Matrix) -> list[Defining]:
    """The features on which the centre stands furthest from the population (standardized), largest first."""
    order = sorted(range(len(FEATURE_NAMES)), key=lambda i: (-abs(float(center_z[i])), i))
    return [
        Defining(FEATURE_NAMES[i], float(center_z[i]), float(member_means[i]), float(population_means[i]))
        for i in order[:DEFINING_FEATURES]
        if abs(float(center_z[i])) >= 1e-9
    ]


def noun(members: Matrix) -> str:
    """What most members did, from their own rows (not the centre): the strongest intent a majority shows."""
    column = members.T
    bought = float(np.mean(column[_COLUMN["log_orders"]] > 0))
    if bought >= 0.5:
        repeat = float(np.mean(column[_COLUMN["log_orders"]] >= _REPEAT - 1e-9))
        return "repeat buyers" if repeat >= 0.5 else "buyers"
    if float(np.mean(column[_COLUMN["log_carts"]] > 0)) >= 0.5:
        abandoned = float(np.mean(column[_COLUMN["cart_abandonment"]]))
        return "cart abandoners" if abandoned >= 0.5 else "cart builders"
    if float(np.mean(column[_COLUMN["log_views"]] > 0)) >= 0.5:
        return "browsers"
    return "visitors"


def qualifiers(center_z: Matrix, member_means: Mapping[str, float], signature: str | None = None) -> list[str]:
    """Qualifiers in order of how far the centre stands out on their feature, each borne out by the members.
    A category axis stands for the segment's signature category, when it has one."""
    found: list[str] = []
    for i in sorted(range(len(FEATURE_NAMES)), key=lambda i: (-abs(float(center_z[i])), i)):
        z = float(center_z[i])
        if abs(z) < MIN_DEVIATION:
            break
        if FEATURE_NAMES[i].startswith(_CATEGORY_AXIS):
            if signature is not None and signature not in found:
                found.append(signature)
            continue
        rule = QUALIFIERS.get(FEATURE_NAMES[i])
        if rule is None:
            continue
        chosen = rule[0] if z > 0 else rule[1]
        if chosen is not None and chosen[1](member_means) and chosen[0] not in found:
            found.append(chosen[0])
    return found


def _buyers_order_value(rows: Matrix) -> float:
    """Mean log order value of the rows that ordered (0 when none did)."""
    ordered = rows[rows[:, _COLUMN["log_orders"]] > 0] if len(rows) else rows
    return float(ordered[:, _COLUMN["log_order_value"]].mean()) if len(ordered) else 0.0


def name_segments(
    centers_z: Matrix, members: Sequence[Matrix], categories: Sequence[Sequence[CategoryShare]] | None = None
) -> list[str]:
    """One distinct name per segment. `centers_z` are standardized centres; `members[i]` segment i's raw rows;
    `categories[i]` segment i's signature categories (signature_categories), when known."""
    signatures = [signature_of(shares) for shares in categories] if categories else [None] * len(members)
    nouns = [noun(rows) if len(rows) else "visitors" for rows in members]
    everyone = np.vstack(list(members)) if members else np.zeros((0, len(FEATURE_NAMES)))
    population_value = _buyers_order_value(everyone)
    means = []
    for rows in members:
        mean = dict(zip(FEATURE_NAMES, (rows.mean(axis=0) if len(rows) else np.zeros(len(FEATURE_NAMES))), strict=True))
        mean["buyers_order_value"] = _buyers_order_value(rows)
        mean["population_buyers_order_value"] = population_value
        means.append(mean)
    options = [
        qualifiers(center, mean, signature)
        for center, mean, signature in zip(centers_z, means, signatures, strict=True)
    ]
    used = [0 if len(centers_z) == 1 else min(MAX_QUALIFIERS - 1, len(o)) for o in options]

    def render(i: int) -> str:
        return " ".join([*options[i][: used[i]], nouns[i]])

    # Add qualifiers to segments that share a name until they differ or run out of qualifiers.
    for _ in range(MAX_QUALIFIERS + 2):
        names = [render(i) for i in range(len(nouns))]
        clashes = [i for i, name in enumerate(names) if names.count(name) > 1 and used[i] < len(options[i])]
        if not clashes:
            break
        for i in clashes:
            used[i] += 1
    names = [render(i) for i in range(len(nouns))]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name} #{seen[name]}"
    return names
