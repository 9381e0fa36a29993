"""`opskit.yamlfile.schema_error`: the one way a YAML document's JSON Schema
error becomes one line naming the file, the line and the field (runbooks and
compliance rule files both report through it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from opskit.compliance.model import RuleError
from opskit.compliance.rules import load_rule_file
from opskit.errors import RunbookError, ValidationError
from opskit.runbooks import load_runbook
from opskit.yamlfile import deepest_schema_error, load_yaml, schema_error

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["steps"],
    "properties": {
        "steps": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "object", "required": ["lines"], "additionalProperties": False,
                     "properties": {"lines": {"type": "array"}}},
                    {"type": "object", "required": ["match"], "additionalProperties": False,
                     "properties": {"match": {"type": "string", "format": "regex"}}},
                ]
            },
        },
    },
}  # fmt: skip


def first_error(tmp_path: Path, text: str) -> ValidationError | None:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    data, locator = load_yaml(path)
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    return schema_error(validator.iter_errors(data), path, locator)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("steps: []\nextra: 1\n", ":2 [extra]: unknown field 'extra'"),
        ("{}\n", ":1 [steps]: missing required field 'steps'"),
        # oneOf: the deepest context, not "is not valid under any of the given schemas"
        ("steps:\n  - lines: x\n", ":2 [steps[0].lines]: 'x' is not of type 'array'"),
        ("steps:\n  - match: '['\n", ":2 [steps[0].match]: not a valid regular expression: '['"),
    ],
)
def test_one_line_naming_file_line_and_field(tmp_path: Path, text: str, said: str) -> None:
    error = first_error(tmp_path, text)
    assert error is not None and str(error) == f"{tmp_path / 'doc.yaml'}{said}"


def test_a_valid_document_has_none(tmp_path: Path) -> None:
    assert first_error(tmp_path, "steps:\n  - {lines: [a]}\n  - {match: a+}\n") is None
    assert deepest_schema_error(iter(())) is None


def test_the_loaders_report_through_it(tmp_path: Path) -> None:
    book = tmp_path / "runbooks" / "x" / "1.0.0.yaml"
    book.parent.mkdir(parents=True)
    book.write_text("name: x\nversion: 1.0.0\nsurprise: 1\n")
    with pytest.raises(RunbookError, match=r"1\.0\.0\.yaml:3 \[surprise\]: unknown field"):
        load_runbook(book, tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nplatform: cisco_ios\nsurprise: 1\nfeatures: []\n")
    with pytest.raises(RuleError, match=r"rules\.yaml:3 \[surprise\]: unknown field"):
        load_rule_file(rules)
