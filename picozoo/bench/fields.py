"""Read parsed JSON into typed records, naming the first field that is wrong; write records
back as JSON-ready data (:func:`plain`).

:class:`Fields` wraps one JSON object and knows where it sits in its document (``$.cells[2]``),
so a problem is reported as ``$.cells[2].threads: expected integer, got str``. Booleans are
not numbers here (JSON ``true`` is not the integer 1).

>>> Fields({"n": 3, "ok": True}, "$.stats").integer("n", minimum=1)
3
>>> Fields({"n": "3"}, "$.stats").integer("n")
Traceback (most recent call last):
...
picozoo.bench.fields.FieldError: $.stats.n: expected integer, got str
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

_KINDS: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


class FieldError(ValueError):
    """A JSON value that does not fit its record: where it is, and what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def type_name(value: Any) -> str:
    """The JSON name of a value's type (``null`` for None).

    >>> type_name(None), type_name(1.5)
    ('null', 'float')
    """
    return "null" if value is None else type(value).__name__


def check(value: Any, kinds: Sequence[str], where: str, minimum: float | None = None) -> Any:
    """``value`` if it is one of the JSON ``kinds`` (and a number >= ``minimum``), else
    :class:`FieldError`.

    >>> check(True, ["integer"], "$.n")
    Traceback (most recent call last):
    ...
    picozoo.bench.fields.FieldError: $.n: expected integer, got bool
    """
    for kind in kinds:
        numeric = kind in ("integer", "number")
        if isinstance(value, _KINDS[kind]) and not (numeric and isinstance(value, bool)):
            if minimum is not None and numeric and cast(float, value) < minimum:
                raise FieldError(where, f"{value!r} is below the minimum {minimum}")
            return value
    raise FieldError(where, f"expected {' or '.join(kinds)}, got {type_name(value)}")


class Fields:
    """One JSON object being read into a record."""

    def __init__(self, data: Any, where: str = "$") -> None:
        self.data: dict[str, Any] = check(data, ["object"], where)
        self.where = where

    def at(self, key: str) -> str:
        return f"{self.where}.{key}"

    def error(self, problem: str, key: str | None = None) -> FieldError:
        return FieldError(self.at(key) if key else self.where, problem)

    def get(
        self, key: str, *kinds: str, optional: bool = False, minimum: float | None = None
    ) -> Any:
        """The value of ``key``: one of ``kinds``; None when ``optional`` and missing or null.

        >>> Fields({"w": "auto"}).get("w", "string", "integer"), Fields({}).get("w", optional=True)
        ('auto', None)
        """
        if key not in self.data and not optional:
            raise self.error(f"missing required property {key!r}")
        value: Any = self.data.get(key)
        if value is None and optional:
            return None
        return check(value, kinds, self.at(key), minimum)

    def string(self, key: str, *, choices: Sequence[str] = ()) -> str:
        value: str = self.get(key, "string")
        if choices and value not in choices:
            raise self.error(f"{value!r} is not one of: {', '.join(choices)}", key)
        return value

    def opt_string(self, key: str) -> str | None:
        return self.get(key, "string", optional=True)

    def integer(self, key: str, *, minimum: int | None = None) -> int:
        return self.get(key, "integer", minimum=minimum)

    def opt_integer(self, key: str) -> int | None:
        return self.get(key, "integer", optional=True)

    def number(self, key: str, *, minimum: float | None = None) -> float:
        return self.get(key, "number", minimum=minimum)

    def opt_number(self, key: str) -> float | None:
        return self.get(key, "number", optional=True)

    def boolean(self, key: str) -> bool:
        return self.get(key, "boolean")

    def obj(self, key: str) -> Fields:
        return Fields(self.get(key, "object"), self.at(key))

    def opt_obj(self, key: str) -> Fields | None:
        value = self.get(key, "object", optional=True)
        return None if value is None else Fields(value, self.at(key))

    def objects(self, key: str) -> list[Fields]:
        return [Fields(v, f"{self.at(key)}[{i}]") for i, v in enumerate(self.get(key, "array"))]

    def items(
        self,
        key: str,
        kind: str,
        *,
        optional: bool = False,
        minimum: float | None = None,
        min_items: int = 0,
    ) -> tuple[Any, ...] | None:
        """The items of array ``key``, each of JSON type ``kind`` (None: optional and absent).

        >>> Fields({"s": [1, 2]}).items("s", "integer", minimum=0)
        (1, 2)
        """
        values = self.get(key, "array", optional=optional)
        if values is None:
            return None
        if len(values) < min_items:
            raise self.error(f"needs at least {min_items} item(s)", key)
        for i, v in enumerate(values):
            check(v, [kind], f"{self.at(key)}[{i}]", minimum)
        return tuple(values)

    def strings(self, key: str) -> tuple[str, ...]:
        return self.items(key, "string") or ()

    def integers(
        self, key: str, *, minimum: int | None = None, min_items: int = 0
    ) -> tuple[int, ...]:
        return self.items(key, "integer", minimum=minimum, min_items=min_items) or ()


def plain(value: Any, *, omit: Collection[str] = ()) -> Any:
    """``value`` as JSON-ready data: records become dicts (fields in order, but those in
    ``omit``), tuples lists, paths strings.

    >>> from picozoo.bench.records import Failure
    >>> plain(Failure("load", "boom"), omit=("hint",))
    {'stage': 'load', 'error': 'boom'}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {f.name: plain(getattr(value, f.name)) for f in fields if f.name not in omit}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value
