"""What the fragment pipeline reads, as narrow interfaces: profiles, models, catalog and rules of one version.

The pipeline never sees ServeState (config, stores, rollout): a request takes one `Sources` (serve.wiring builds it
from the snapshot it took), and tests build one from a catalog, a model and a dict of profiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from personalization.catalog import Catalog
from personalization.fragments import Reason
from personalization.models import Models
from personalization.profile import FoldSettings
from personalization.rules import RulePlan, RuleRequest, RulesDocument
from store.profiles import StoredProfile


class Profiles(Protocol):
    def get(self, user_id: str) -> StoredProfile | None:
        """The person's profile; None when there is none or they were erased. May raise (a store outage)."""
        ...


class ModelsInForce(Protocol):
    """One model version as serve answers with it (serve.snapshot.Snapshot)."""

    @property
    def version(self) -> str: ...

    @property
    def error(self) -> Reason | None:
        """Why this version answers with the popular fallback (None: it serves as published)."""
        ...

    @property
    def models(self) -> Models | None: ...

    def models_for(self, version: str | None) -> tuple[Models | None, str]:
        """The models of `version` (an experiment variant's), else the live ones: never raises."""
        ...


class RulesInForce(Protocol):
    """The rules document in force, compiled against the version's catalog (personalization.rules.RuleEngine)."""

    @property
    def document(self) -> RulesDocument: ...

    @property
    def version(self) -> str: ...

    def plan(self, request: RuleRequest) -> RulePlan:
        """What the rules do to one request's candidates."""
        ...


class Trending(Protocol):
    """What is selling right now (serve.trending.TrendingView)."""

    def ranked(self, now_ms: int) -> list[tuple[str, float]]:
        """Items by current score, highest first; raises serve.trending.TrendingUnavailable when unreadable."""
        ...


@dataclass(frozen=True, slots=True)
class Sources:
    profiles: Profiles
    models: ModelsInForce
    # The version's catalog: a value the ranking functions read, not a service to stand in for.
    catalog: Catalog
    # None: no rules document in force.
    rules: RulesInForce | None
    fold_settings: FoldSettings
    # How long an item a person dismissed stays out of their fragments (ServeConfig.dismiss_days).
    dismiss_ms: int = 30 * 24 * 3600 * 1000
    # None: no trending aggregate (the trending slot answers with the flagged popular fallback).
    trending: Trending | None = None
