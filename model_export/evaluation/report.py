"""report.md and its PNG plots, from one Evaluation: what was measured, how, and how sure we can be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine
import matplotlib.pyplot as plt

from model_export.evaluation.evaluate import ONNX, TARGET_RATIO, Evaluation
from model_export.evaluation.segment_report import plot_centres, plot_projection, segment_lines
from model_export.training.tuning import CRITERION, FIGURES, figure

METRICS = ("ndcg@10", "recall@20", "mrr", "coverage")
PROTOCOLS = {"user": "User split (future items of known users)", "session": "Session next-item"}


def _plot_metrics(evaluation: Evaluation, path: Path) -> None:
    models = list(evaluation.results)
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    width = 0.8 / 3
    for axis, (protocol, title) in zip(axes, PROTOCOLS.items(), strict=True):
        for offset, metric in enumerate(METRICS[:3]):
            values = [evaluation.results[m][protocol][metric] for m in models]
            errors = [evaluation.spread[m][protocol][metric] for m in models]
            positions = [i + (offset - 1) * width for i in range(len(models))]
            axis.bar(positions, values, width, yerr=errors, capsize=2, label=metric)
        axis.set_xticks(range(len(models)), models, rotation=30, ha="right")
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    figure.suptitle("Metrics per model and protocol (error bars: 95% bootstrap interval)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_segments(evaluation: Evaluation, path: Path) -> None:
    segments = evaluation.trained.segments.segments
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(segments) + 1.5))
    axis.barh([f"{s.id}: {s.name}" for s in segments], [s.size for s in segments])
    axis.invert_yaxis()
    axis.set_xlabel("users (training period)")
    axis.set_title("Segment sizes")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _table(evaluation: Evaluation, protocol: str) -> list[str]:
    lines = [
        "| model | NDCG@10 | Recall@20 | MRR@20 | coverage@10 | chosen on validation |",
        "|---|---|---|---|---|---|",
    ]
    for model, by_protocol in evaluation.results.items():
        found, spread = by_protocol[protocol], evaluation.spread[model][protocol]
        cells = [f"{found[m]:.4f} ± {spread[m]:.4f}" for m in METRICS[:3]] + [f"{found['coverage']:.4f}"]
        chosen = ", ".join(f"{k}={v}" for k, v in evaluation.chosen.get(model, {}).items())
        name = f"**{model}**" if model == ONNX else model
        lines.append(f"| {name} | {' | '.join(cells)} | {chosen} |")
    return lines


def _targets(evaluation: Evaluation) -> list[str]:
    """The bars of the evaluation's last JSON line, one line each."""
    targets = evaluation.targets()
    lines = []
    for key, found in targets.items():
        if not isinstance(found, dict):
            continue
        ratio = "n/a (no other model finds anything)" if found["ratio"] is None else f"{found['ratio']:.2f}x"
        lines.append(
            f"- {key}: onnx {found['onnx']:.4f} against {found['best_other']} {found['best_other_value']:.4f}:"
            f" {ratio} ({'met' if found['ok'] else 'MISSED'}; the bar is {TARGET_RATIO:.2f}x)."
        )
    versus = targets["user/ndcg@10_vs_popularity"]
    lines.append(f"- User split NDCG@10 against popularity: {'n/a' if versus is None else f'{versus:.2f}x'}.")
    return lines


def _families(evaluation: Evaluation) -> list[str]:
    """Each family's chosen trial on the validation split, and why the winner won."""
    selection = evaluation.trained.selection
    if selection is None:
        return [f"No validation split could be carved; the exported family is {evaluation.trained.recs.family}."]
    lines = [
        f"Criterion: {CRITERION}.",
        "",
        "| family | user NDCG@10 | user Recall@20 | session NDCG@10 | session Recall@20 | worst ratio | mean ratio"
        " | trials | chosen hyperparameters |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in selection.families.items():
        cells = [f"{figure(result.metrics, *key):.4f}" for key in FIGURES]
        params = ", ".join(f"{k}={v}" for k, v in result.params.items())
        label = f"**{name}**" if name == selection.family else name
        lines.append(
            f"| {label} | {' | '.join(cells)} | {result.score[0]:.3f} | {result.score[1]:.3f} | {result.tried}"
            f" | {params} |"
        )
    lines += ["", f"Winner: {selection.reason()}"]
    return lines


def write_report(evaluation: Evaluation, out: Path, source: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    _plot_metrics(evaluation, out / "metrics.png")
    _plot_segments(evaluation, out / "segments.png")
    plot_projection(evaluation.trained.segments, evaluation.trained.features, out / "segments_pca.png")
    plot_centres(evaluation.trained.segments, evaluation.trained.features, out / "segments_centres.png")
    trained = evaluation.trained
    user, session = evaluation.protocols
    lines: list[str] = [
        "# Offline evaluation",
        "",
        f"Events: `{source}`, {evaluation.events:,} events. Test period: from {evaluation.cutoff.isoformat()}"
        f" (the last part of the timeline); the models were trained only on what came before it"
        f" ({len(trained.profiles):,} users, {len(trained.index):,} items) in {evaluation.train_s:.1f} s.",
        "Hyperparameters of every model, ours and the baselines, were chosen on a validation split carved from"
        " the end of the training period (model_export/training/tuning.py), never on the test.",
        "",
        "## Protocols",
        f"- **User split**: {len(user.queries):,} users with history before the cutoff, each asked once with the"
        " recent items of their replayed profile and scored on the items they touched afterwards that they"
        " had never touched (items unseen in training stay in the targets as misses). Every model excludes"
        " the user's past items.",
        f"- **Session next-item**: {len(session.queries):,} prefixes of sessions that start in the test period;"
        " the prefix is the recent items (built by personalization.recommend, as serve builds them) and the"
        f" next item is the target. {session.skipped_repeats:,} next events that returned to an item already in"
        " the prefix were not asked (a recommendation slot offers new items; every model excludes the"
        " prefix).",
        "- Each query's inputs are the same for every model. `onnx` is the exported recs.onnx run through"
        " onnxruntime, one query at a time; the others are scored in batches by their reference code.",
        "- ± is the half-width of a 95% bootstrap interval of the mean: differences smaller than it are noise.",
        "",
        "## User split",
        *_table(evaluation, "user"),
        "",
        "## Session next-item (Recall@20 is the hit rate)",
        *_table(evaluation, "session"),
        "",
        "![metrics per model and protocol](metrics.png)",
        "",
        "## Against the targets",
        *_targets(evaluation),
        "",
        "## Recommender families on the validation split (the choice; the test split played no part)",
        *_families(evaluation),
        "",
        f"Notes: `onnx` is the exported family ({evaluation.trained.recs.family}), refitted on the whole"
        " training period. The hybrid uses item categories when the data has them; the collaborative baselines"
        " do not, and `category_popularity` shows what categories alone achieve. `ease` is full-catalog EASE, run"
        " only when the catalog is small enough for its dense inverse; the EASE family keeps its best-supported"
        " items' top-M weights. Rows the event schema refused (by ingest's reason): "
        f"{evaluation.refused or 'none'}.",
        "",
        "## Segments",
        *segment_lines(trained.segments, evaluation.segments),
        "",
        "![segment sizes](segments.png)",
        "",
        "![people by segment, first two principal components](segments_pca.png)",
        "",
        "![standardized segment centres](segments_centres.png)",
        "",
        "## Parity (exported graphs against their references)",
        _parity_line(trained.parity.to_dict()),
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _parity_line(parity: dict[str, Any]) -> str:
    return (
        f"{parity['users']} users: {parity['segment_label_mismatches']} segment label mismatches (max |distance"
        f" difference| {parity['segment_max_distance_diff']:.1e}),"
        f" {parity['top10_set_mismatches']} top-10 mismatches beyond the score tolerance"
        f" ({parity.get('top10_tie_swaps', 0)} swaps of items tied within it), max |score difference|"
        f" {parity['max_abs_score_diff']:.2e} ({'ok' if parity['ok'] else 'FAILED'})."
    )


def table_text(evaluation: Evaluation) -> str:
    """The results as a readable table for the terminal."""
    header = f"{'model':22s} {'protocol':8s} " + " ".join(f"{m:>10s}" for m in METRICS)
    rows = [header, "-" * len(header)]
    for protocol in PROTOCOLS:
        for model, by_protocol in evaluation.results.items():
            values = " ".join(f"{by_protocol[protocol][m]:10.4f}" for m in METRICS)
            rows.append(f"{model:22s} {protocol:8s} {values}")
    return "\n".join(rows)
