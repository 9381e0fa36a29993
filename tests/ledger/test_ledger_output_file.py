"""Exports (checkpoints, evidence bundles) to a place that cannot be written
are refused before anything is signed or stored; missing folders are made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.errors import LedgerError
from opskit.ledger import Checkpoint, Ledger
from opskit.ledger.output import OutputFile
from tests.fixtures.postgres import open_ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "keys")
    ledger.append("change.created", payload={"title": "x"}, change_id="CHG-000001", actor="alice")
    yield ledger
    ledger.engine.dispose()


def _unwritable(tmp_path: Path) -> list[Path]:
    (tmp_path / "taken").write_text("a file, not a folder\n")
    return [tmp_path, tmp_path / "taken" / "cp.json", tmp_path / "taken" / "deeper" / "cp.json"]


def test_an_unwritable_checkpoint_file_signs_and_stores_nothing(
    ledger: Ledger, tmp_path: Path
) -> None:
    for out in _unwritable(tmp_path):
        with pytest.raises(LedgerError, match="cannot write"):
            ledger.checkpoint("auditor", out=out)
    assert ledger.checkpoints() == []
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("ledger.db"))
    assert left == ["keys", "taken"]  # no temporary file, no folder made


def test_an_unwritable_bundle_file_signs_no_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    for out in _unwritable(tmp_path):
        with pytest.raises(LedgerError, match="cannot write"):
            ledger.export_bundle("CHG-000001", out, actor="auditor")
    assert ledger.checkpoints() == []


def test_a_failed_write_rolls_the_checkpoint_back(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk cannot be made on demand: the write itself is made to fail.
    def full(self: OutputFile, text: str) -> None:
        raise LedgerError(f"{self.path}: cannot write (No space left on device)")

    monkeypatch.setattr(OutputFile, "stage", full)
    with pytest.raises(LedgerError, match="No space left"):
        ledger.checkpoint("auditor", out=tmp_path / "new" / "cp.json")
    assert ledger.checkpoints() == []
    assert not (tmp_path / "new").exists()


def test_missing_folders_are_made_and_the_file_is_complete(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "evidence" / "2026" / "cp.json"
    signed = ledger.checkpoint("auditor", out=out)
    assert Checkpoint.load(out) == signed
    assert ledger.checkpoints() == [signed]
    bundle = ledger.export_bundle("CHG-000001", tmp_path / "b" / "bundle.json", actor="auditor")
    assert bundle.read_text().startswith("{")
    assert sorted(p.name for p in out.parent.iterdir()) == ["cp.json"]  # no temporary file left
    assert out.stat().st_mode & 0o044  # readable by others, as an export is meant to be shared
