"""Checks a JUnit file the way a CI system reads it: valid against the
Apache Ant JUnit schema (tests/data/junit/JUnit.xsd, with lxml), then parsed
back with junitparser into (suite, case, result kind, message) rows."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped
from lxml import etree

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "junit" / "JUnit.xsd"


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def validate(path: Path) -> None:
    """Raises AssertionError with the schema's complaints unless valid."""
    schema = _schema()
    document = etree.parse(str(path))
    assert schema.validate(document), "\n".join(str(e) for e in schema.error_log)


def rows(path: Path) -> list[tuple[str, str, str, str]]:
    """(suite, case, ok|failure|skipped, message), validated first."""
    validate(path)
    found = []
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            kind, message = "ok", ""
            for result in case.result:
                kind = "failure" if isinstance(result, Failure) else "skipped"
                if not isinstance(result, Failure | Skipped):
                    kind = "error"
                message = result.message or ""
            found.append((suite.name, case.name, kind, message))
    return found


def system_out(path: Path) -> dict[str, str]:
    """Each suite's system-out."""
    return {
        suite.name: suite._elem.findtext("system-out") or ""
        for suite in JUnitXml.fromfile(str(path))
    }
