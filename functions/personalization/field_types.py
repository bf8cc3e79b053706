"""Copying, flattening and rebuilding a dataclass's field values from their type hints.

The profile (personalization.profile) is a dataclass of plain values: scalars, tuples of them, dicts and lists
of those, and one nested dataclass (its session). From each field's type hint this module builds, once at
import, what that field needs: a copy that shares nothing mutable (the fold's copy), the value as JSON holds
it, and the value rebuilt from what JSON gave back (the codec). So a field added to the profile is copied,
stored and read without a second list of fields to keep in step. A type outside those shapes is refused at
import, not mishandled at run time.

Written here rather than taken from a library (pydantic, cattrs): the stored form is positional and keyed by
short names to keep DynamoDB items small, and the fold's copy runs on the ingest hot path, where a closure per
field built once is cheaper than a general converter.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from operator import attrgetter
from typing import Any, get_args, get_origin

Convert = Callable[[Any], Any]
_SCALARS = (int, float, str, bool)


def field_hints(cls: type) -> list[tuple[str, Any]]:
    """Each field of a dataclass with its resolved type hint, in declaration order."""
    resolved = typing.get_type_hints(cls)
    return [(f.name, resolved[f.name]) for f in dataclasses.fields(cls)]


def _rebuilder(cls: type, convert: Callable[[Any], Convert | None], make: Callable[[type, list[Any]], Any]) -> Convert:
    """A function making `make(cls, values)` of a dataclass instance's field values, each converted as
    `convert` says for its type: one attrgetter call reads them all, and only the ones needing it are converted
    (the fold copies a profile for every person in a batch)."""
    named = field_hints(cls)
    getter = attrgetter(*(name for name, _ in named))
    read = getter if len(named) > 1 else (lambda value: (getter(value),))
    converts = [(i, c) for i, (_, hint) in enumerate(named) if (c := convert(hint)) is not None]

    def rebuild(value: Any) -> Any:
        parts = list(read(value))
        for i, change in converts:
            parts[i] = change(parts[i])
        return make(cls, parts)

    return rebuild


def _optional(tp: Any) -> Any | None:
    """X for `X | None`; None for any other type."""
    if get_origin(tp) in (types.UnionType, typing.Union):
        rest = [arg for arg in get_args(tp) if arg is not type(None)]
        if len(rest) == 1 and len(get_args(tp)) == 2:
            return rest[0]
        raise TypeError(f"only `X | None` unions are supported, not {tp}")
    return None


def _passing_none(convert: Convert | None) -> Convert | None:
    """`convert` for an `X | None` field: None stays None, anything else is converted as an X."""
    if convert is None:
        return None
    inner = convert
    return lambda value: None if value is None else inner(value)


def copier(tp: Any) -> Convert | None:
    """A function copying a value of type `tp` so that the copy shares nothing mutable; None if the value is
    immutable (scalars, None and tuples of them), so it is shared as it is."""
    inner = _optional(tp)
    if inner is not None:
        return _passing_none(copier(inner))
    if tp in _SCALARS:
        return None
    origin = get_origin(tp)
    if origin is tuple:
        if any(copier(arg) is not None for arg in get_args(tp) if arg is not Ellipsis):
            raise TypeError(f"a tuple of mutable values cannot be shared or copied shallowly: {tp}")
        return None
    if origin is dict:
        key, value_type = get_args(tp)
        copy_value = copier(value_type)
        if copier(key) is not None:
            raise TypeError(f"dict keys must be immutable: {tp}")
        if copy_value is None:
            return dict
        return lambda value: {k: copy_value(v) for k, v in value.items()}
    if origin is list:
        (element,) = get_args(tp)
        copy_element = copier(element)
        if copy_element is None:
            return list
        return lambda value: [copy_element(v) for v in value]
    if dataclasses.is_dataclass(tp):
        return _rebuilder(typing.cast(type, tp), copier, lambda cls, parts: cls(*parts))
    raise TypeError(f"no copy rule for {tp}")


def to_plain(tp: Any) -> Convert | None:
    """A function turning a value of type `tp` into what json.dumps takes; None if it takes the value as it is
    (tuples become arrays). A dataclass becomes the array of its field values, in declaration order."""
    inner = _optional(tp)
    if inner is not None:
        return _passing_none(to_plain(inner))
    if tp in _SCALARS:
        return None
    origin = get_origin(tp)
    if origin in (tuple, dict, list):
        if any(to_plain(arg) is not None for arg in get_args(tp) if arg is not Ellipsis):
            raise TypeError(f"no plain form for a container of dataclasses: {tp}")
        return None
    if dataclasses.is_dataclass(tp):
        return _rebuilder(typing.cast(type, tp), to_plain, lambda _, parts: parts)
    raise TypeError(f"no plain form for {tp}")


def from_plain(tp: Any) -> Convert | None:
    """A function rebuilding a value of type `tp` from what json.loads gave for its plain form; None if that is
    the value already. JSON gives back every scalar as the type it was written as (a float is written with a
    point or an exponent), and dicts and lists as fresh ones, so only the shapes JSON lacks are rebuilt:
    tuples and dataclasses, from arrays (a wrong length raises: a damaged item is never half read)."""
    inner = _optional(tp)
    if inner is not None:
        return _passing_none(from_plain(inner))
    if tp in _SCALARS:
        return None
    origin = get_origin(tp)
    if origin is tuple:
        args = get_args(tp)
        if any(from_plain(arg) for arg in args if arg is not Ellipsis):
            raise TypeError(f"no rule to rebuild a tuple of tuples or dataclasses: {tp}")
        size = None if Ellipsis in args else len(args)

        def build_tuple(value: Any) -> tuple[Any, ...]:
            if size is not None and len(value) != size:
                raise ValueError(f"expected {size} values for {tp}, got {value!r}")
            return tuple(value)

        return build_tuple
    if origin is dict:
        key, value_type = get_args(tp)
        if key is not str:
            raise TypeError(f"JSON object keys are strings, not {key}: {tp}")
        build_value = from_plain(value_type)
        if build_value is None:
            return None
        return lambda value: {k: build_value(v) for k, v in value.items()}
    if origin is list:
        (element,) = get_args(tp)
        build_element = from_plain(element)
        if build_element is None:
            return None
        return lambda value: [build_element(v) for v in value]
    if dataclasses.is_dataclass(tp):
        cls = typing.cast(type, tp)
        fields = [from_plain(hint) for _, hint in field_hints(cls)]
        return lambda value: cls(*[v if build is None else build(v) for build, v in zip(fields, value, strict=True)])
    raise TypeError(f"no rule to rebuild {tp}")
