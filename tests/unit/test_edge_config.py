"""What publishing a rules document tells the edge: the context dimensions its rules read."""

from __future__ import annotations

from personalization.rules import parse_document
from store.edge_config import dimensions_value


def test_the_stored_value_names_the_dimensions_sorted_and_none_removes_the_key() -> None:
    doc = parse_document(
        {
            "version": "v",
            "dayparts": {"evening": {"start": 18, "end": 24}},
            "rules": [
                {"id": "a", "kind": "pin", "items": ["i"], "position": 1, "when": {"dayparts": ["evening"]}},
                {"id": "b", "kind": "exclude_cart", "when": {"devices": ["mobile"], "channels": ["email"]}},
            ],
        }
    )
    assert dimensions_value(doc.context_dimensions()) == "channel,device,timezone"
    assert dimensions_value(parse_document({"version": "v", "rules": []}).context_dimensions()) is None
