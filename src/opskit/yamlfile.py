"""YAML reading with line numbers for error messages.

`load_yaml` parses a file and returns the data with a `Locator` that maps a
path inside the data (``("cis", 3, "type")``) to the line it came from, so
that every validation error can name the file, the line and the field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from opskit.errors import ValidationError

if TYPE_CHECKING:  # jsonschema is imported by the loaders that validate, not by the CLI
    from jsonschema.exceptions import ValidationError as DocumentError

E = TypeVar("E", bound=ValidationError)

try:  # The C loader is about 4x faster; fall back where libyaml is missing.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class _UniqueKeyLoader(_Loader):  # type: ignore[misc,valid-type]
    """Refuses duplicate mapping keys, which PyYAML silently overwrites."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # `{a: 1}: x` or `[a]: x`: what PyYAML itself would refuse
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping or list cannot be a key", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class Locator:
    """Maps a path inside loaded YAML data to its (1-based) line number."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def line(self, path: Sequence[str | int]) -> int | None:
        node = self._root
        best = node.start_mark.line + 1 if node is not None else None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == str(part):
                        node = value_node
                        best = key_node.start_mark.line + 1
                        break
                else:
                    return best
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return best
                node = node.value[part]
                best = node.start_mark.line + 1
            else:
                return best
        return best


def yaml_error(path: Path | str, exc: yaml.YAMLError, text: str | None = None) -> ValidationError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    line = mark.line + 1 if mark is not None else None
    if line is not None and text is not None:
        # At the end of a truncated file PyYAML marks the line after the last one.
        line = min(line, text.count("\n") + 1)
    return ValidationError(f"invalid YAML: {problem}", file=path, line=line)


def load_yaml(path: Path | str, *, text: str | None = None) -> tuple[Any, Locator]:
    """Loads one YAML document; raises ValidationError naming file and line."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read: {exc.strerror}", file=path) from None
        except UnicodeDecodeError:
            raise ValidationError("not UTF-8 text", file=path) from None
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = _UniqueKeyLoader(text).get_single_data() if node is not None else None
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc, text) from None
    return data, Locator(node)


# Plain scalars that YAML 1.2 (yaml-rs, the inventory's fast parser) reads as a
# number, boolean or null, in the spellings parsers accept (signs, any case).
# PyYAML writes YAML 1.1 and leaves some of them unquoted ("0o17", "1e3").
_YAML12_NOT_TEXT = re.compile(
    r"""^(?:~|null|true|false
    |[-+]?0(?:o[0-7_]+|x[0-9a-f_]+|b[01_]+)
    |[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:e[-+]?[0-9]+)?
    |[-+]?\.inf|\.nan)$""",
    re.IGNORECASE | re.VERBOSE,
)


class _Dumper(yaml.SafeDumper):
    """Quotes every string that a YAML 1.1 or 1.2 reader would take for
    something else, so that what opskit writes reads back as written."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        if _YAML12_NOT_TEXT.match(data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style="'")
        return super().represent_str(data)


_Dumper.add_representer(str, _Dumper.represent_str)


def dump_yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def field_path(loc: Sequence[str | int]) -> str:
    """("cis", 3, "type") -> "cis[3].type"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def json_document(value: Any) -> Any:
    """A YAML document as JSON data: dates become ISO text and keys text,
    so that a JSON Schema and a canonical digest read it (runbooks, rule files)."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_document(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_document(v) for v in value]
    return value


# Format names in a schema error, in words (`format: regex` in the rule schema).
_FORMAT_WORDS = {"regex": "regular expression"}


def deepest_schema_error(errors: Iterable[DocumentError]) -> DocumentError | None:
    """jsonschema's best match among `errors`, followed down into oneOf/anyOf:
    their top error is vague ("is not valid under any of the given schemas"),
    the deepest context says what is wrong. None when there is no error."""
    from jsonschema.exceptions import best_match

    error = best_match(errors)
    while error is not None and error.context:
        deeper = best_match(error.context)
        if deeper is None or deeper is error:
            break
        error = deeper
    return error


def schema_error(
    errors: Iterable[DocumentError],
    path: Path,
    locator: Locator,
    error_class: type[E] = ValidationError,  # type: ignore[assignment]
) -> E | None:
    """The first JSON Schema error of a YAML document read by `load_yaml`, as
    one `error_class` naming the file, the line and the field (None: valid).
    An unknown or missing field is named in the field, e.g. the message
    ``book.yaml:7 [apply[0].params.lnies]: unknown field 'lnies'``."""
    error = deepest_schema_error(errors)
    if error is None:
        return None
    loc: list[str | int] = list(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and "unexpected" in message:
        extra = re.findall(r"'([^']+)'", message.split("(", 1)[-1])
        if extra:
            loc, message = [*loc, extra[0]], f"unknown field '{extra[0]}'"
    elif error.validator == "required" and "'" in message:
        missing = message.split("'")[1]
        loc, message = [*loc, missing], f"missing required field '{missing}'"
    elif error.validator == "format":
        word = _FORMAT_WORDS.get(str(error.validator_value), str(error.validator_value))
        message = f"not a valid {word}: {error.instance!r}"
    return error_class(message, file=path, line=locator.line(loc), field=field_path(loc) or None)
