"""The promotion gate: a candidate becomes `current` only when it is not worse than the live version.

Parity is checked while training (a candidate whose graphs disagree with their references never gets this far:
`parity_refused`). Then, on the most recent day's questions (user split), the candidate's NDCG@10 must be at
least (1 - tolerance) x the live version's; with no usable live version it must beat popularity, so that a
first model is never worse than the fallback serve would otherwise answer with.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_export.publishing.scoring import Scores

PROMOTED = "promoted"
REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Decision:
    promote: bool
    reason: str

    @property
    def outcome(self) -> str:
        return PROMOTED if self.promote else REJECTED


def parity_refused(detail: str) -> Decision:
    return Decision(False, f"parity failed: the exported graphs disagree with their references ({detail})")


def decide(
    candidate: Scores, popularity: Scores, live: Scores | None, tolerance: float, live_problem: str | None = None
) -> Decision:
    """`live` is None when there is no live version or it cannot be served (`live_problem` says why)."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError("tolerance is a fraction in [0, 1)")
    if candidate.queries == 0:
        return Decision(False, "no evaluation questions on the latest day (no known user came back to new items)")
    if live is None:
        why = live_problem or "no live version"
        if candidate.ndcg > popularity.ndcg:
            return Decision(
                True, f"{why}; candidate NDCG@10 {candidate.ndcg:.4f} beats popularity {popularity.ndcg:.4f}"
            )
        return Decision(
            False, f"{why}; candidate NDCG@10 {candidate.ndcg:.4f} does not beat popularity {popularity.ndcg:.4f}"
        )
    floor = (1.0 - tolerance) * live.ndcg
    comparison = (
        f"candidate NDCG@10 {candidate.ndcg:.4f} (+-{candidate.ndcg_interval:.4f}) vs (1 - {tolerance:g}) x live "
        f"{live.ndcg:.4f} = {floor:.4f}"
    )
    if candidate.ndcg >= floor:
        return Decision(True, f"{comparison}: not worse")
    return Decision(False, f"{comparison}: worse than the live version")
