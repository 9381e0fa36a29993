"""NAPALM's own validate documents (tests/data/napalm-validate, from NAPALM's
repository) are accepted as the napalm-merge runbook's `validation` parameter,
and the napalm connector hands them to NAPALM's real `compliance_report`
(through NAPALM's mock driver, answering with NAPALM's own mocked getter data)
with the result NAPALM's tests expect."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.connectors.napalm import NapalmConnector
from opskit.errors import RunbookError
from opskit.hoststate import HostState
from opskit.inventory import CI, CIType
from opskit.runbooks import RunbookCatalog

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "napalm-validate"
DOCUMENTS = sorted(DATA.glob("*.yml"))
BASE = {"lines": ["vlan 400"]}


def document(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_corpus_is_there() -> None:
    assert len(DOCUMENTS) >= 8
    assert any(
        Counter(next(iter(check)) for check in document(p))["ping"] > 1 for p in DOCUMENTS
    ), "a document repeating a getter"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_napalm_document_is_accepted(path: Path) -> None:
    book = RunbookCatalog(REPO).get("napalm-merge")
    values = book.validate_params({**BASE, "validation": document(path)})
    assert values["validation"] == document(path)
    # Through JSON too (the CLI's --param and the change record).
    again = book.validate_params({**BASE, "validation": json.loads(json.dumps(document(path)))})
    assert again["validation"] == values["validation"]


def test_the_older_single_mapping_still_works_and_bad_ones_are_short() -> None:
    book = RunbookCatalog(REPO).get("napalm-merge")
    assert book.validate_params({**BASE, "validation": {"get_facts": {"hostname": "r1"}}})
    assert book.validate_params(BASE)["validation"] == []
    big = [{"get_facts": {"hostname": "r1"}, "ping": {"x": "y" * 5000}}]  # two getters in one
    with pytest.raises(RunbookError) as info:
        book.validate_params({**BASE, "validation": big})
    message = str(info.value)
    assert "parameter 'validation" in message and "y" * 100 not in message and len(message) < 400


def mock_answers(path: Path, case: str, target: Path) -> Path:
    """NAPALM's mocked getter answers, one file per call (`ping.1`, `ping.2`)."""
    target.mkdir()
    counts = Counter(next(iter(check)) for check in document(path))
    for getter, count in counts.items():
        for call in range(1, count + 1):
            shutil.copy(DATA / "mocked" / case / f"{getter}.json", target / f"{getter}.{call}")
    return target


RUNNABLE = [p for p in DOCUMENTS if (DATA / "mocked" / p.stem).is_dir() and "skip" not in p.stem]


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.stem)
def test_the_connector_runs_napalm_compliance_report(path: Path, tmp_path: Path) -> None:
    book = RunbookCatalog(REPO).get("napalm-merge")
    validation = book.validate_params({**BASE, "validation": document(path)})["validation"]
    answers = mock_answers(path, path.stem, tmp_path / "answers")
    ci = CI(
        name="mock-r1",
        type=CIType.ROUTER,
        platform="cisco_ios",
        host="127.0.0.1",
        credentials={"username": "opskit", "password": "not-used"},
        connection_options={"napalm": {"driver": "mock", "optional_args": {"path": str(answers)}}},
    )
    conn = NapalmConnector(ci)
    conn.open()
    try:
        result = conn.perform("validate", {"validation": validation})
    finally:
        conn.close()
    expected = yaml.safe_load((DATA / "mocked" / path.stem / "report.yml").read_text())
    report = result.data["report"]
    assert report["complies"] is expected["complies"]
    assert (result.status == HostState.OK) is expected["complies"]
    # Repeated getters are reported under their own names (ping1, ping2).
    assert set(expected) - {"skipped"} <= set(report)
    assert validation == document(path)  # NAPALM worked on a copy
