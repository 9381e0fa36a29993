"""Parsing and validating one inventory file, with errors that name the line.

The fast path parses with yaml-rs (Rust) and validates with the shipped JSON
Schema compiled by fastjsonschema. Neither reports line numbers, so only when
the fast path finds a fault is that one file parsed again with
`opskit.yamlfile.load_yaml`, whose `Locator` turns the faulty field's path
into a line. Every fault is one `InventoryError` naming file, line and field,
for example `inventories/lab/cis.yaml:12: cis[0].type: must be one of
switch, router, ... (got 'swtich'); did you mean 'switch'?`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml_rs

from opskit.errors import InventoryError, ValidationError
from opskit.inventory.model import RelationKind
from opskit.inventory.numbers import first_non_finite, may_hold_non_finite
from opskit.inventory.schema import SECRET_REF_MARK, load_shipped_schema
from opskit.yamlfile import field_path, load_yaml


@lru_cache(maxsize=1)
def _validator() -> Any:
    """The shipped schema compiled to Python by fastjsonschema.

    The generated code builds every item's error-path prefix eagerly with
    `"...".format(**locals())`, which is half of its run time on large files;
    the same strings as f-strings give identical results twice as fast.
    """
    code = fastjsonschema.compile_to_code(load_shipped_schema())
    code = _EAGER_FORMAT.sub(r'f"\1"', code)
    namespace: dict[str, Any] = {}
    exec(compile(code, "<opskit inventory schema>", "exec"), namespace)
    return namespace[_ENTRY_POINT]


_EAGER_FORMAT = re.compile(r'"([^"{}]*\{[^"]*)"\.format\(\*\*locals\(\)\)')
_ENTRY_POINT = "validate_https___opskit_dev_schemas_inventory_json"


def parse(text: str) -> Any:
    """yaml-rs data, or the YAMLDecodeError (turned into a precise error later)."""
    try:
        return yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as exc:
        return exc


def check_and_validate(file: Path, text: str, data: Any) -> dict[str, Any]:
    """The file's top-level mapping (`{}` for an empty file), checked
    against the shipped schema, e.g. `{"defaults": {...}, "groups": {...},
    "cis": [...]}`. `data` is what `parse` returned for `text`. Raises one
    `InventoryError` naming file, line and field: invalid YAML, several
    documents, a top level that is not a mapping, a schema violation, NaN or
    an infinity."""
    if isinstance(data, yaml_rs.YAMLDecodeError):
        raise _yaml_error(file, text, data)
    if data is None:
        return {}
    if isinstance(data, list) and len(data) > 1 and re.search(r"^---", text, re.M):
        raise InventoryError("several YAML documents in one file; use one per file", file=file)
    if not isinstance(data, dict):
        raise InventoryError(
            "the top level must be a mapping of defaults, groups and cis", file=file, line=1
        )
    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _schema_error(file, text, data, exc) from None
    if may_hold_non_finite(text):
        where = first_non_finite(data)
        if where is not None:
            loc, value = where
            raise InventoryError(
                f"{value!r} is not a number a CMDB can store; NaN and infinities are not allowed",
                file=file,
                line=locate(file, text, loc),
                field=field_path(loc) or None,
            )
    return data


def _yaml_error(file: Path, text: str, exc: Exception) -> InventoryError:
    # PyYAML gives the line and a familiar message; use it when it agrees.
    try:
        load_yaml(file, text=text)
    except ValidationError as slow:
        return InventoryError(_strip_where(str(slow), file), file=file, line=slow.line)
    first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
    match = re.search(r"line (\d+)", first)
    return InventoryError(
        f"invalid YAML: {first}", file=file, line=int(match[1]) if match else None
    )


def _strip_where(message: str, file: Path) -> str:
    # The slow path's message already starts with "file:line: "; keep the rest.
    prefix = str(file)
    if message.startswith(prefix):
        return message.split(": ", 1)[1] if ": " in message else message
    return message


def locate(file: Path, text: str, loc: Sequence[str | int]) -> int | None:
    """The line of `loc` inside `file`, by the slow (line-aware) parser."""
    try:
        _, locator = load_yaml(file, text=text)
    except ValidationError:
        return None
    return locator.line(loc)


def _schema_path(data: Any, raw: Sequence[str]) -> list[str | int]:
    """fastjsonschema's ['data', 'cis', '0', 'type'] -> ['cis', 0, 'type']."""
    out: list[str | int] = []
    node = data
    for part in raw[1:]:
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            out.append(index)
            node = node[index] if index < len(node) else None
        else:
            out.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _schema_error(
    file: Path, text: str, data: Any, exc: fastjsonschema.JsonSchemaValueException
) -> InventoryError:
    loc = _schema_path(data, exc.path or ["data"])
    rule = exc.rule
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    value = exc.value
    if definition.get("$comment") == SECRET_REF_MARK or rule == "oneOf":
        if isinstance(value, str):
            message = "plain-text secret refused; use a secret reference"
        else:
            message = "not a valid secret reference"
        message += (
            " ({env: VAR}, {file: PATH}, {keyring: {service: S, username: U}} or {prompt: TEXT})"
        )
    elif rule == "additionalProperties" and isinstance(value, dict):
        known = sorted(definition.get("properties", {}))
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            loc.append(unknown[0])
            message = f"unknown field {unknown[0]!r}" + did_you_mean(unknown[0], known)
            if not known:
                message = f"unknown field {unknown[0]!r}"
            elif len(known) <= 12:
                message += f" (allowed: {', '.join(known)})"
        else:
            message = "invalid entry"
    elif rule == "enum":
        choices = [str(c) for c in definition.get("enum", [])]
        message = f"must be one of {', '.join(choices)} (got {value!r})" + did_you_mean(
            str(value), choices
        )
    elif rule == "type":
        message = f"must be {_a(definition.get('type'))} (got {_type_name(value)})"
    elif rule == "required":
        missing = [r for r in definition.get("required", []) if r not in (value or {})]
        message = f"missing required field {missing[0]!r}" if missing else "missing field"
    elif rule == "pattern":
        message = f"invalid value {value!r}: must match {definition.get('pattern')}"
    elif rule in ("minProperties", "maxProperties") and loc and "relationships" in loc:
        kinds = ", ".join(k.value for k in RelationKind)
        message = f"a relationship is one {{kind: target}} pair (kinds: {kinds})"
    elif rule == "uniqueItems":
        message = "duplicate entries"
    elif rule in ("minimum", "maximum"):
        message = (
            f"must be between {definition.get('minimum')} and {definition.get('maximum')}"
            f" (got {value!r})"
        )
    else:
        message = exc.message.split(" ", 1)[1] if " " in exc.message else exc.message
    line = locate(file, text, loc)
    return InventoryError(message, file=file, line=line, field=field_path(loc) or None)


def _a(type_name: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer"}
    if isinstance(type_name, list):
        return " or ".join(names.get(t, t) for t in type_name)
    return names.get(str(type_name), str(type_name))


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "nothing"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return f"text {value!r}" if len(str(value)) < 40 else "text"


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """A hint to append to a message, e.g. `"; did you mean 'switch'?"`,
    or `""` when no choice is close to `word`."""
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
