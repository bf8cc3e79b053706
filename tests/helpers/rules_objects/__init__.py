"""The rules' object path as it was before candidates travelled as arrays (main at f32d4ab: plan.py, selection.py
and engine.py copied unchanged but for their imports; RuleRequest, RuledList and Exclusions, which did not
change, are the production ones), kept as the oracle the array path must equal: the same items, scores, notes
and applied rules for any document, catalog, request and candidates (tests/unit/test_rules_arrays.py). Not
maintained: it answers what the previous code answered."""

from tests.helpers.rules_objects.engine import RuleEngine

__all__ = ["RuleEngine"]
