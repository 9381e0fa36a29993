"""Checks of a policy document beyond its shape, and the wording of its errors.

`opskit.policy.load_policy` runs these in order: numbers are finite, the
version is one this opskit reads, the shape (pydantic, its errors worded like
the inventory's: file:line [field], "did you mean ...?"), then what the
shape cannot say: every approval rule can be met by the people listed (a
requester's own role never counting), every `signing_key` is an Ed25519
public key, and the default inventory exists.
Each failure is one `PolicyError`; nothing is checked further after it.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import re
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from opskit.errors import PolicyError
from opskit.yamlfile import Locator, field_path

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from opskit.policy import ApprovalRule, Policy

SUPPORTED_VERSIONS = (1,)
# A folder name under inventories/ (no path, not too long for the file system).
INVENTORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
Loc = tuple[str | int, ...]


class PolicyFile:
    """The policy file being checked: its path, raw data and line locator."""

    def __init__(self, path: Path, data: Any, locator: Locator) -> None:
        self.path = path
        self.data = data
        self.locator = locator

    def error(self, message: str, loc: Sequence[str | int] = ()) -> PolicyError:
        return PolicyError(
            message,
            file=self.path,
            line=self.locator.line(loc) or 1,
            field=field_path(loc) or None,
        )

    def has(self, loc: Sequence[str | int]) -> bool:
        """True when `loc` is written in the file (not a default)."""
        node = self.data
        for part in loc:
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if not (in_list or (isinstance(node, dict) and part in node)):
                return False
            node = node[part]
        return True


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


# -- before the shape ----------------------------------------------------------------
def check_finite(doc: PolicyFile) -> None:
    """No NaN or infinity anywhere (`.nan`, `.inf` are valid YAML floats)."""
    for loc, value in _leaves(doc.data, ()):
        if isinstance(value, float) and not math.isfinite(value):
            raise doc.error(f"{value!r} is not a finite number", loc)


def _leaves(node: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*loc, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*loc, index))
    else:
        yield loc, node


def check_version(doc: PolicyFile) -> None:
    """A newer policy format is refused before its unknown fields are."""
    version = doc.data.get("version", 1)
    is_int = isinstance(version, int) and not isinstance(version, bool)
    if is_int and version not in SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise doc.error(
            f"unsupported policy version {version}; this opskit reads version {known}",
            ("version",),
        )


# -- the shape: pydantic's first error, in the inventory's words -------------------------
def first_error(errors: Sequence[ErrorDetails]) -> ErrorDetails:
    """The first error; an unknown field beside it first, as it is often the
    cause (`rols:` for `roles:` also makes `roles` missing)."""
    first = errors[0]
    parent = tuple(first["loc"][:-1])
    for err in errors:
        if err["type"] == "extra_forbidden" and tuple(err["loc"][:-1]) == parent:
            return err
    return first


def shape_error(doc: PolicyFile, err: ErrorDetails, model: type[BaseModel]) -> PolicyError:
    loc: Loc = tuple(part for part in err["loc"] if part != "[key]")
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        known = sorted(_fields_at(model, loc[:-1]))
        word = str(loc[-1])
        message = f"unknown field {word!r}" + did_you_mean(word, known)
        if known:
            message += f" (allowed: {', '.join(known)})"
    elif kind == "missing":
        message = f"missing required field {loc[-1]!r}"
    elif kind in ("enum", "literal_error"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"must be one of {', '.join(choices)} (got {_shown(value)})" + did_you_mean(
            str(value), choices
        )
    elif kind in _EXPECTED:
        message = f"must be {_EXPECTED[kind]} (got {_shown(value)})"
    elif kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        word = "at least" if kind == "greater_than_equal" else "at most"
        message = f"must be {word} {bound} (got {_shown(value)})"
    elif kind == "too_short":
        message = "must not be empty"
    elif kind == "string_pattern_mismatch":
        message = f"invalid value {_shown(value)}: must match {ctx.get('pattern')}"
    elif kind == "value_error":
        message = str(ctx.get("error") or err["msg"])
    else:
        message = err["msg"]
    if err["loc"] and err["loc"][-1] == "[key]":
        message = f"names must be text (got {_shown(loc[-1])})"
    return doc.error(message, loc)


_TIME = 'a time of day in quotes, e.g. "22:00"'
_DATETIME = 'a date and time with an offset, e.g. "2026-12-20T00:00:00+01:00"'
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "time_type": _TIME,
    "time_parsing": _TIME,
    "datetime_type": _DATETIME,
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names allowed at `loc` (a path into `model`'s data)."""
    target: Any = model
    for part in loc:
        target = _unwrap(target)
        if isinstance(target, type) and issubclass(target, BaseModel):
            field = target.model_fields.get(str(part))
            if field is None:
                return []
            target = field.annotation
        elif typing.get_origin(target) is list:
            target = typing.get_args(target)[0]
        elif typing.get_origin(target) is dict:
            target = typing.get_args(target)[1]
        else:
            return []
    target = _unwrap(target)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


# -- after the shape ---------------------------------------------------------------------
def check_meaning(doc: PolicyFile, policy: Policy, inventories_dir: Path | None) -> None:
    check_people(doc, policy)
    check_quorums(doc, policy)
    check_signing_keys(doc, policy)
    if inventories_dir is not None:
        check_inventory(doc, policy, inventories_dir)


def check_people(doc: PolicyFile, policy: Policy) -> None:
    if not policy.people:
        raise doc.error(
            "no people in the policy: nobody may request, approve or apply a change"
            " (list each person with their roles; 'opskit init' writes a starter policy)",
            ("people",),
        )


def _rules(policy: Policy) -> Iterator[tuple[Loc, ApprovalRule]]:
    approvals = policy.approvals
    yield ("approvals", "low"), approvals.low
    yield ("approvals", "medium"), approvals.medium
    yield ("approvals", "high"), approvals.high
    yield ("approvals", "emergency"), approvals.emergency
    yield ("approvals", "emergency", "retrospective"), approvals.emergency.retrospective
    if approvals.standard is not None:
        yield ("approvals", "standard"), approvals.standard
    for index, freeze in enumerate(policy.freezes):
        if freeze.emergency_override is not None:
            yield ("freezes", index, "emergency_override"), freeze.emergency_override


def check_quorums(doc: PolicyFile, policy: Policy) -> None:
    """Every approval rule can be met by `count` people holding one of its
    roles, whoever requests: a requester never approves their own change
    (four-eyes, as `opskit.changes.rules.required_approvals` applies it)."""
    # "requester" is Role.REQUESTER (a StrEnum), without importing opskit.policy back.
    requesters = [name for name, p in policy.people.items() if "requester" in p.roles]
    for loc, rule in _rules(policy):
        problem = _quorum_problem(rule, policy.people_with(rule.roles), requesters)
        if problem is None:
            continue
        default = "" if doc.has(loc) else " by default"
        roles = " or ".join(str(r) for r in rule.roles) or "no role"
        raise doc.error(
            f"needs {rule.count} approval(s){default} from {roles}, but only {problem}",
            (*loc, "count") if doc.has((*loc, "count")) else loc,
        )


def _quorum_problem(rule: ApprovalRule, eligible: list[str], requesters: list[str]) -> str | None:
    """Why `rule` can never be met (the end of the error message), or None."""
    if rule.count > len(eligible):
        who = f" ({', '.join(eligible)})" if eligible else ""
        return f"{len(eligible)} person(s) hold that role{who}: the quorum can never be reached"
    for requester in requesters:
        others = [p for p in eligible if p != requester]
        if requester in eligible and rule.count > len(others):
            who = f" ({', '.join(others)})" if others else ""
            return (
                f"{len(others)} person(s) other than the requester {requester} hold that"
                f" role{who}: a requester cannot approve their own change (four-eyes), so"
                f" the quorum can never be reached for {requester}"
            )
    return None


def check_signing_keys(doc: PolicyFile, policy: Policy) -> None:
    for name, person in policy.people.items():
        if person.signing_key is not None and not _is_ed25519_public_key(person.signing_key):
            raise doc.error(
                "not an Ed25519 public key: expected the base64 of its 32 raw bytes,"
                " as printed by 'opskit change keygen'",
                ("people", name, "signing_key"),
            )


def _is_ed25519_public_key(text: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(text.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        return False
    return True


def check_inventory(doc: PolicyFile, policy: Policy, inventories_dir: Path) -> None:
    name = policy.inventory
    loc = ("inventory",)
    if not INVENTORY_NAME.match(name):
        raise doc.error(
            f"{_shown(name)} is not an inventory name: use a folder name under inventories/",
            loc,
        )
    if (inventories_dir / name).is_dir():
        return
    have = sorted(p.name for p in inventories_dir.glob("*") if p.is_dir())
    hint = did_you_mean(name, have)
    if not hint:
        hint = (
            f" (have: {', '.join(have)})"
            if have
            else ": it has none; 'opskit init --examples' adds the shipped ones"
        )
    default = "" if doc.has(loc) else " (the default)"
    raise doc.error(f"no inventory {name!r}{default} in {inventories_dir}{hint}", loc)
