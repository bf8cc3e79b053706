"""The segments' part of report.md: the selection table, each segment's size, share, name and defining features,
the lift, a 2-D PCA projection of a sample of people coloured by segment, and a heat map of the standardized
centres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from model_export.training.segments import SegmentModel
from personalization.features import FEATURE_NAMES

PROJECTION_SAMPLE = 3_000
SEED = 0


def plot_projection(model: SegmentModel, features: np.ndarray[Any, Any], path: Path) -> None:
    """People in the first two principal components of the features as the clustering saw them (standardized
    and weighted by the lens), coloured by segment."""
    rng = np.random.default_rng(SEED)
    rows = rng.choice(len(features), size=min(PROJECTION_SAMPLE, len(features)), replace=False)
    sample = features[np.sort(rows)]
    scaled = model.pipeline.named_steps["scale"].transform(sample)
    labels = model.labels(sample)
    figure, axis = plt.subplots(figsize=(7, 5.5))
    components = min(2, scaled.shape[1], len(scaled))
    points = PCA(n_components=components, random_state=SEED).fit_transform(scaled) if components else scaled
    if points.shape[1] < 2:
        points = np.column_stack([points, np.zeros((len(points), 2 - points.shape[1]))])
    # A little jitter: many profiles are identical (one view, nothing else) and would hide each other.
    points = points + rng.normal(scale=0.02, size=points.shape)
    for segment in model.segments:
        mine = labels == segment.id
        axis.scatter(points[mine, 0], points[mine, 1], s=6, alpha=0.5, label=f"{segment.id}: {segment.name}")
    axis.set_xlabel("principal component 1")
    axis.set_ylabel("principal component 2")
    axis.set_title(f"{len(sample):,} people, standardized features through the lens, by segment")
    axis.legend(markerscale=3, fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_centres(model: SegmentModel, features: np.ndarray[Any, Any], path: Path) -> None:
    """Each segment's members' mean on every feature, in population standard deviations from the population."""
    scaler = model.pipeline.named_steps["scale"]
    labels = model.labels(features)
    # Population SDs, not the lens's weighted units (the scaler's scales hold the lens): a heat map of
    # standings, comparable across features.
    varies = scaler.var_ > 0
    scaled = (features - scaler.mean_) / np.where(varies, np.sqrt(scaler.var_), 1.0) * varies
    grid = np.stack(
        [
            scaled[labels == s.id].mean(axis=0) if (labels == s.id).any() else np.zeros(len(FEATURE_NAMES))
            for s in model.segments
        ]
    )
    limit = max(1.0, float(np.abs(grid).max(initial=0.0)))
    figure, axis = plt.subplots(figsize=(12, 0.55 * len(model.segments) + 2.8))
    image = axis.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(len(FEATURE_NAMES)), FEATURE_NAMES, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(model.segments)), [f"{s.id}: {s.name}" for s in model.segments], fontsize=8)
    for row in range(grid.shape[0]):
        for col in range(grid.shape[1]):
            if abs(grid[row, col]) >= 0.5:
                axis.text(col, row, f"{grid[row, col]:.1f}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axis, label="SDs from the population mean")
    axis.set_title("Segment centres, standardized")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def segment_lines(model: SegmentModel, block: dict[str, Any]) -> list[str]:
    """Markdown: how the model was chosen, the segments with their defining features, and the lift."""
    lift = block.get("segment_lift")
    lines = [
        f"Chosen: **{model.method}, K = {model.k}** (silhouette {model.silhouette:.3f}, Davies-Bouldin"
        f" {model.davies_bouldin:.3f}, stability {model.stability:.2f} mean ARI over bootstrap refits)."
        f" Lens: what people shop for weighs {model.category_weight:g} behavioural aspects."
        f" Rule: {model.summary()['rule']}. Admissible: smallest segment >= {model.min_share:.0%} of people and"
        " stability >= 0.8.",
    ]
    if model.note:
        lines.append(f"**One segment: {model.note}.**")
    lines += [
        "",
        "| id | name | people | share | defining features (members' mean vs population's; z) |"
        " shops for more than everyone (share of members' interest vs everyone's) |",
        "|---|---|---|---|---|---|",
    ]
    for s in model.segments:
        defining = "; ".join(f"{d.feature} {d.members:.2f} vs {d.population:.2f} (z {d.z:+.1f})" for d in s.defining)
        shops = "; ".join(f"{c.category} {c.members:.0%} vs {c.population:.0%}" for c in s.categories) or "-"
        lines.append(f"| {s.id} | {s.name} | {s.size:,} | {s.share:.1%} | {defining} | {shops} |")
    lines += [
        "",
        f"segment_lift (NDCG@10 of each segment's own best-sellers / the shop's best-sellers, on the members'"
        f" future items): **{lift if lift is not None else 'n/a'}** over {block.get('queries', 0):,} queries"
        f" ({block.get('segment_ndcg@10')} vs {block.get('shop_ndcg@10')}).",
        "",
        "Every method and K compared on the selection sample:",
        "",
        "| lens (category weight) | method | K | silhouette | Davies-Bouldin | smallest share | stability | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in model.candidates:
        stability = "-" if c.stability is None else f"{c.stability:.2f}"
        if c.refusal:
            verdict = f"refused: {c.refusal}"
        else:
            verdict = "admissible" if c.exportable else "admissible, no exporter: reported only"
        lines.append(
            f"| {c.category_weight:g} | {c.method} | {c.k} | {c.silhouette:.3f} | {c.davies_bouldin:.3f}"
            f" | {c.min_share:.1%} | {stability} | {verdict} |"
        )
    return lines
