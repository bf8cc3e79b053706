"""The profile's fields are declared once; the codec, the fold's copy and forgetting follow from them.

Profiles here are arbitrary values of every field's declared type, built from the type hints, so a field
added to Profile is covered without changing this module.
"""

import copy
import dataclasses
import types
import typing
from typing import Any, get_args, get_origin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.field_types import copier, field_hints, from_plain, to_plain
from personalization.profile import STORED_FIELDS, Profile, _copy, _forget
from store import codec

HISTORY = [f.name for f in STORED_FIELDS if f.metadata["history"]]
KEPT = [f.name for f in dataclasses.fields(Profile) if f.name not in HISTORY]


def values_of(tp: Any) -> st.SearchStrategy[Any]:
    """Any value of the type `tp` (finite floats: a stored NaN would never equal itself)."""
    if get_origin(tp) in (types.UnionType, typing.Union):
        return st.one_of(*(values_of(arg) for arg in get_args(tp)))
    if tp is type(None):
        return st.none()
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp in (int, str, bool):
        return st.from_type(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is dict:
        return st.dictionaries(values_of(args[0]), values_of(args[1]), max_size=4)
    if origin is list:
        return st.lists(values_of(args[0]), max_size=4)
    if origin is tuple and args[-1] is Ellipsis:
        return st.lists(values_of(args[0]), max_size=4).map(tuple)
    if origin is tuple:
        return st.tuples(*(values_of(arg) for arg in args))
    if dataclasses.is_dataclass(tp):
        cls = typing.cast(type, tp)
        return st.builds(cls, *(values_of(hint) for _, hint in field_hints(cls)))
    raise AssertionError(f"no strategy for {tp}")


profiles = st.builds(Profile, *(values_of(hint) for _, hint in field_hints(Profile)))


def test_every_field_but_the_key_is_stored_under_its_own_key() -> None:
    keys = [f.metadata["key"] for f in STORED_FIELDS]
    assert len(set(keys)) == len(keys)
    assert [f.name for f in dataclasses.fields(Profile) if f not in STORED_FIELDS] == ["user_id"]


@settings(max_examples=200)
@given(profiles)
def test_any_profile_decodes_to_itself(profile: Profile) -> None:
    assert codec.decode(profile.user_id, codec.encode(profile)) == profile


@given(profiles)
def test_a_field_at_its_default_costs_no_byte(profile: Profile) -> None:
    # Given a profile with every history field at its default (as after a withdrawal)
    _forget(profile)
    stored = codec.profile_to_dict(profile)
    # Then none of them is written
    keys = {f.metadata["key"] for f in STORED_FIELDS if f.metadata["history"]}
    assert not keys & set(stored)


@given(profiles)
def test_the_copy_equals_the_profile_and_shares_nothing_mutable(profile: Profile) -> None:
    before = copy.deepcopy(profile)
    copied = _copy(profile)
    assert copied == profile
    # When every container of the copy is changed
    for name, _ in field_hints(Profile):
        value = getattr(copied, name)
        if isinstance(value, dict):
            value["changed"] = value.get("changed", 0) + 1
        elif isinstance(value, list):
            value.append(value[0] if value else 0)
        elif dataclasses.is_dataclass(value):
            value.items.append("changed")  # type: ignore[union-attr]
    # Then the original is as it was
    assert profile == before


@given(profiles)
def test_forgetting_resets_the_history_and_keeps_consent_and_bookkeeping(profile: Profile) -> None:
    before = copy.deepcopy(profile)
    _forget(profile)
    blank = Profile(profile.user_id)
    assert not profile.has_history
    assert all(getattr(profile, name) == getattr(blank, name) for name in HISTORY)
    assert all(getattr(profile, name) == getattr(before, name) for name in KEPT)


@given(profiles)
def test_a_profile_has_history_exactly_when_a_history_field_is_not_at_its_default(profile: Profile) -> None:
    blank = Profile(profile.user_id)
    assert profile.has_history == any(getattr(profile, name) != getattr(blank, name) for name in HISTORY)


def test_a_stored_value_of_the_wrong_shape_is_refused() -> None:
    data = codec.profile_to_dict(Profile("u", recent=[("i1", "v", 1)]))
    data["r"] = [["i1", "v"]]
    with pytest.raises(ValueError, match="expected 3 values"):
        codec.profile_from_dict("u", data)


@pytest.mark.parametrize(
    ("rule", "tp"),
    [
        (copier, list[set[int]]),
        (copier, int | str | None),
        (to_plain, list[Profile]),
        (to_plain, set[int]),
        (from_plain, dict[int, str]),
        (from_plain, tuple[Profile, int]),
    ],
)
def test_a_type_without_a_rule_is_refused_when_the_rules_are_built(rule: Any, tp: Any) -> None:
    with pytest.raises(TypeError):
        rule(tp)
