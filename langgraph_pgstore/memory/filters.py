"""Filters as SQL: namespace prefixes, ``list_namespaces`` match conditions and value filters.

Each function returns ``(composable, params)`` over the ``memory_items`` alias ``i``; user
input only ever travels as parameters. Adding a filter operator = one entry in ``OPERATORS``
and one branch in :func:`_compile_one`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from langgraph.store.base import MatchCondition
from psycopg import sql

from ..errors import InvalidInput
from .validate import dumps, validate_namespace

__all__ = [
    "OPERATORS",
    "and_",
    "compile_filter",
    "match_condition",
    "namespace_condition",
    "prefix_like",
]

OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
Clause = tuple[sql.Composable, list[Any]]
TRUE: Clause = (sql.SQL("TRUE"), [])


def prefix_like(prefix: str) -> str:
    """LIKE pattern for namespaces strictly below ``prefix`` (``_``/``%`` taken literally)."""
    return re.sub(r"([\\%_])", r"\\\1", prefix) + ".%"


def namespace_condition(namespace: tuple[str, ...], column: str = "i.prefix") -> Clause:
    """``namespace`` itself or anything below it, on label boundaries."""
    if not namespace:
        return TRUE
    p = ".".join(namespace)
    col = sql.SQL(column)
    return sql.SQL("({c} = %s OR {c} LIKE %s)").format(c=col), [p, prefix_like(p)]


def compile_filter(flt: Mapping[str, Any] | None) -> Clause:
    """Filter dict -> SQL over ``i.value``.

    ``{"a.b": 1}`` and ``{"a": {"$gt": 5}}`` as LangGraph's stores take them; ordered
    operators compare within one JSON type, so numbers compare as numbers and ``{"$gt": 5}``
    never matches a string.
    """
    if not flt:
        return TRUE
    if not isinstance(flt, Mapping):
        raise InvalidInput(f"filter must be a dict, got {type(flt).__name__}")
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for path, cond in flt.items():
        if not isinstance(path, str):
            raise InvalidInput(f"filter keys must be strings, got {path!r}")
        jp = _json_path(path)
        dollar = (
            [isinstance(k, str) and k.startswith("$") for k in cond]
            if isinstance(cond, Mapping)
            else []
        )
        if dollar and all(dollar):
            ops = cond
        elif any(dollar):
            raise InvalidInput(f"filter on {path!r} mixes operators and fields: {dict(cond)!r}")
        else:
            ops = {"$eq": cond}
        for name, operand in ops.items():
            if name not in OPERATORS:
                raise InvalidInput(
                    f"unknown filter operator {name!r}; expected one of {sorted(OPERATORS)}"
                )
            s, p = _compile_one(jp, name, operand)
            parts.append(s)
            params.extend(p)
    return sql.SQL(" AND ").join(parts), params


def _json_path(path: str) -> list[str]:
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise InvalidInput(f"bad filter path {path!r}")
    return parts


def _compile_one(jp: list[str], name: str, operand: Any) -> Clause:
    at = sql.SQL("(i.value #> %s::text[])")
    if name == "$exists":
        if not isinstance(operand, bool):
            raise InvalidInput(f"$exists takes true or false, got {operand!r}")
        return sql.SQL("{} IS {} NULL").format(at, sql.SQL("NOT" if operand else "")), [jp]
    if name in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise InvalidInput(f"{name} takes a list, got {type(operand).__name__}")
        values = [dumps(v, f"{name} operand") for v in operand]
        if name == "$in":
            return sql.SQL("{} = ANY(%s::jsonb[])").format(at), [jp, values]
        return sql.SQL("NOT coalesce({} = ANY(%s::jsonb[]), false)").format(at), [jp, values]
    encoded = dumps(operand, f"{name} operand")
    if name == "$eq":
        return sql.SQL("{} = %s::jsonb").format(at), [jp, encoded]
    if name == "$ne":
        return sql.SQL("{} IS DISTINCT FROM %s::jsonb").format(at), [jp, encoded]
    if operand is None or isinstance(operand, Mapping):
        raise InvalidInput(f"{name} needs a number, string, boolean or list, got {operand!r}")
    return (
        sql.SQL("(jsonb_typeof({a}) = jsonb_typeof(%s::jsonb) AND {a} {op} %s::jsonb)").format(
            a=at, op=sql.SQL(_ORDER[name])
        ),
        [jp, encoded, jp, encoded],
    )


def _label_regex(label: str) -> str:
    return "[^.]+" if label == "*" else re.sub(r"([^A-Za-z0-9_])", r"\\\1", label)


def match_condition(cond: MatchCondition) -> Clause:
    """A ``list_namespaces`` prefix/suffix condition (``*`` spans one label) as a regex."""
    if not isinstance(cond, MatchCondition) and not (isinstance(cond, tuple) and len(cond) == 2):
        raise InvalidInput(f"match conditions must be MatchCondition, got {cond!r}")
    match_type, path = cond
    labels = list(path)
    for label in labels:
        if label != "*":
            validate_namespace((label,), what="match condition")
    if match_type not in ("prefix", "suffix"):
        raise InvalidInput(f"unknown match type {match_type!r}")
    if not labels:
        return TRUE
    body = r"\.".join(_label_regex(lbl) for lbl in labels)
    pattern = "^" + body + r"(\.|$)" if match_type == "prefix" else r"(^|\.)" + body + "$"
    return sql.SQL("i.prefix ~ %s"), [pattern]


def and_(*clauses: Clause | None) -> Clause:
    """The conjunction of the given clauses (None ones skipped)."""
    parts = [c for c in clauses if c is not None]
    return sql.SQL(" AND ").join(p[0] for p in parts), [x for p in parts for x in p[1]]
