"""Complete change bundles and witnessed checkpoints, with two real witness
processes on loopback, on SQLite and PostgreSQL: every checkpoint is
cosigned, a change's bundle proves that none of its events is missing,
reordered or invented, and nothing is verified without a trust policy."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.changes.journal import Journal
from opskit.ledger import Ledger
from opskit.ledger.bundlecheck import verify_change_bundle
from opskit.ledger.cosignatures import COSIGNATURES
from opskit.tlog.note import Signer
from opskit.tlog.trust import parse_policy
from opskit.workspace import Workspace
from tests.fixtures.postgres import PostgresServer
from tests.ledger.change_bundle_support import (
    opskit_cli,
    set_witnesses,
    trust_policy,
    witnessed_workspace,
)
from tests.tlog.witness_support import WitnessProcess


@pytest.fixture(scope="module")
def witnesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WitnessProcess]]:
    folder = tmp_path_factory.mktemp("witnesses")
    started = [WitnessProcess(folder / n, f"{n}.example/witness") for n in ("w1", "w2")]
    try:
        for witness in started:
            witness.start()
        yield started
    finally:
        for witness in started:
            witness.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> str | None:
    """None: the workspace's own SQLite file; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


def record_change(journal: Journal) -> None:
    """CHG-1 (with a blob, interleaved with CHG-2's events), closed."""
    for n in range(3):
        journal.record("change.noted", actor="alice", change_id="CHG-1", payload={"n": n})
        journal.record("change.noted", actor="bob", change_id="CHG-2", payload={"n": n})
    journal.record(
        "host.backup", actor="ci", change_id="CHG-1", ci="sw1", payload={}, blobs={"cfg": "x\n"}
    )
    journal.record("change.closed", actor="alice", change_id="CHG-1", payload={"to": "closed"})


def test_a_closed_change_bundle_verifies_with_both_cosignatures(
    witnesses: list[WitnessProcess], db: str | None, tmp_path: Path
) -> None:
    ws = witnessed_workspace(tmp_path / "ws", witnesses, db=db)
    record_change(Journal(ws))
    shown = opskit_cli("audit", "checkpoint", ws=ws)
    assert shown.returncode == 0, shown.stderr
    signers = [line.split()[1] for line in shown.stdout.splitlines() if line.startswith("— ")]
    assert signers[1:] == ["w1.example/witness", "w2.example/witness"], shown.stdout
    rows = list(Ledger.open(ws).reader().query(f"SELECT witness, size FROM {COSIGNATURES}"))
    assert sorted(w.split("+")[0] for w, _ in rows) == ["w1.example/witness", "w2.example/witness"]
    second = next(e.seq for e in Ledger.open(ws).events(change_id="CHG-1"))
    bundle = tmp_path / "chg1.json"
    exported = opskit_cli(
        "audit", "export", "--change", "CHG-1", "--out", str(bundle), "--withhold", str(second + 2),
        ws=ws,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    trust = tmp_path / "audit.policy"
    trust.write_text(trust_policy(ws, witnesses, "every"))
    checked = opskit_cli("audit", "verify-bundle", str(bundle), "--trust", str(trust))
    assert checked.returncode == 0, checked.stderr
    line = checked.stdout
    assert "change CHG-1: 5 events (1 withheld, verifiable by digest: seq 3 change.noted)" in line
    assert "complete: closed at seq 8" in line and "witnesses: w1, w2" in line, line
    # The data a bundle carries: one checkpoint, an inclusion proof per event.
    data = json.loads(bundle.read_text())
    assert data["format"] == "opskit.ledger.bundle/2"
    assert [e["seq"] for e in data["events"]] == [1, 3, 5, 7, 8] and data["blobs"]
    # A proof of one record carries the same cosigned checkpoint, and verifies.
    proof = opskit_cli("audit", "prove", "7", "--out", str(tmp_path / "7.tlog-proof"), ws=ws)
    assert proof.returncode == 0, proof.stderr
    assert "— w2.example/witness " in (tmp_path / "7.tlog-proof").read_text()
    checked = opskit_cli(
        "audit", "verify-proof", str(tmp_path / "7.tlog-proof"), "--trust", str(trust)
    )
    assert checked.returncode == 0 and "witnesses: w1, w2" in checked.stdout, checked.stderr
    # The checkpoint an auditor kept, checked under their policy against the ledger.
    (tmp_path / "q3.checkpoint").write_text(shown.stdout)
    held = ("audit", "verify", "--checkpoint", str(tmp_path / "q3.checkpoint"))
    verified = opskit_cli(*held, "--trust", str(trust), ws=ws)
    assert verified.returncode == 0, verified.stderr
    assert "checkpoint of tree size 8 trusted" in verified.stdout
    assert "witnesses: w1, w2" in verified.stdout
    untrusted = opskit_cli(*held, ws=ws)
    assert untrusted.returncode == 3 and "NOT VERIFIED" in untrusted.stderr
    assert "w2.example/witness+" in untrusted.stderr
    # A policy trusting another key for the same origin: not verified, exit 1.
    impostor = Signer.generate(shown.stdout.splitlines()[0]).verifier.vkey
    (tmp_path / "other.policy").write_text(f"log {impostor}\nquorum none\n")
    refused = opskit_cli(*held, "--trust", str(tmp_path / "other.policy"), ws=ws)
    assert refused.returncode == 1 and "no signature by a log key" in refused.stderr
    assert "ledger OK" not in refused.stdout


@pytest.fixture(scope="module")
def closed_bundle(
    witnesses: list[WitnessProcess], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Any]:
    """A closed change's bundle (one event withheld) and the trust policy."""
    folder = tmp_path_factory.mktemp("closed")
    ws = witnessed_workspace(folder / "ws", witnesses)
    journal = Journal(ws)
    record_change(journal)
    journal.ledger.export_bundle("CHG-1", folder / "b.json", withhold={3})
    policy = parse_policy(trust_policy(ws, witnesses, "every"), source="audit.policy")
    return json.loads((folder / "b.json").read_text()), policy


def check(data: dict[str, Any], policy: Any, tmp_path: Path) -> Any:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(data))
    return verify_change_bundle(path, policy)


def test_the_untouched_bundle_verifies(closed_bundle: Any, tmp_path: Path) -> None:
    data, policy = closed_bundle
    report = check(data, policy, tmp_path)
    assert report.ok, report.problems
    assert (report.closed_at, report.complete_to, report.witnesses) == (8, 8, ("w1", "w2"))


def test_withholding_an_event_entirely_fails(closed_bundle: Any, tmp_path: Path) -> None:
    data, policy = closed_bundle
    for index in (0, 1, 2):  # the first, a withheld one, a middle one
        tampered = copy.deepcopy(data)
        del tampered["events"][index]
        report = check(tampered, policy, tmp_path)
        assert not report.ok and "incomplete or altered change" in (report.problem or ""), index


def test_reordering_events_fails(closed_bundle: Any, tmp_path: Path) -> None:
    data, policy = closed_bundle
    swapped = copy.deepcopy(data)
    swapped["events"][1], swapped["events"][2] = swapped["events"][2], swapped["events"][1]
    assert "reordered" in (check(swapped, policy, tmp_path).problem or "")
    relabelled = copy.deepcopy(data)  # the records swapped, the seqs left in order
    first, third = relabelled["events"][0], relabelled["events"][2]
    first["record"], third["record"] = third["record"], first["record"]
    assert "reordered" in (check(relabelled, policy, tmp_path).problem or "")


def test_inventing_an_event_fails(closed_bundle: Any, tmp_path: Path) -> None:
    data, policy = closed_bundle
    invented = copy.deepcopy(data)
    fake = copy.deepcopy(invented["events"][2])
    record = json.loads(fake["record"])
    record["seq"] = fake["seq"] = 6  # CHG-2's slot, claimed for CHG-1
    record["payload"]["n"] = 99
    fake["record"] = json.dumps(record, separators=(",", ":"), sort_keys=True)
    invented["events"].insert(3, fake)
    assert "is not in the checkpoint's tree" in (check(invented, policy, tmp_path).problem or "")
    # A real record of the other change, disclosed as if it were this one's.
    other = copy.deepcopy(data)
    other["events"].insert(1, dict(other["events"][0], seq=2))
    assert not check(other, policy, tmp_path).ok
    # A withheld event whose digest is changed no longer folds.
    digest = copy.deepcopy(data)
    digest["events"][1]["digest"] = "0" * 64
    assert "incomplete or altered" in (check(digest, policy, tmp_path).problem or "")


def test_an_untrusted_or_unwitnessed_bundle_is_not_verified(
    closed_bundle: Any, witnesses: list[WitnessProcess], tmp_path: Path
) -> None:
    data, policy = closed_bundle
    report = check(data, None, tmp_path)
    assert not report.ok and "no trust policy" in (report.problem or "")
    assert "w1.example/witness+" in (report.problem or "")  # the fingerprints found
    # A policy asking a witness that did not cosign.
    stranger = WitnessProcess(tmp_path / "w3", "w3.example/witness")
    text = str(policy.logs[0].vkey)
    strict = parse_policy(f"log {text}\nwitness w3 {stranger.verifier.vkey}\nquorum w3\n")
    assert "quorum 'w3' not met" in (check(data, strict, tmp_path).problem or "")
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    result = opskit_cli("audit", "verify-bundle", str(path))
    assert result.returncode == 3 and "NOT TRUSTED" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_open_and_older_changes_say_how_far_completeness_goes(
    witnesses: list[WitnessProcess], tmp_path: Path
) -> None:
    ws = witnessed_workspace(tmp_path / "ws", witnesses)
    journal = Journal(ws)
    for n in range(3):
        journal.record("change.noted", actor="alice", change_id="OPEN", payload={"n": n})
    # Written as a ledger older than format 2 wrote them: no change links.
    for n in range(2):
        journal.ledger.append("change.noted", actor="alice", change_id="OLD", payload={"n": n})
    policy = parse_policy(trust_policy(ws, witnesses, "every"))
    for change, expected in (
        ("OPEN", "complete only up to seq 3 (open change"),
        ("OLD", "completeness cannot be proven (events written before ledger format 2)"),
    ):
        journal.ledger.export_bundle(change, tmp_path / f"{change}.json")
        report = verify_change_bundle(tmp_path / f"{change}.json", policy)
        assert report.ok and expected in report.summary(), report.summary()
    # The latest event withheld: proven only up to the one before.
    journal.ledger.export_bundle("OPEN", tmp_path / "tail.json", withhold={3})
    summary = verify_change_bundle(tmp_path / "tail.json", policy).summary()
    assert "complete only up to seq 2" in summary and "1 later event(s) unproven" in summary


def test_an_unreachable_witness_is_a_warning_never_a_lost_record(
    witnesses: list[WitnessProcess], tmp_path: Path
) -> None:
    ws = witnessed_workspace(tmp_path / "ws", witnesses[:1])
    set_witnesses(ws, witnesses[:1], urls=["http://127.0.0.1:9"])  # nothing listens there
    Journal(Workspace.open(ws.root)).record("change.noted", actor="a", change_id="C", payload={})
    result = opskit_cli("audit", "checkpoint", ws=ws)
    assert result.returncode == 0, result.stderr
    assert "warning: witness w1 unreachable" in result.stderr
    ledger = Ledger.open(Workspace.open(ws.root))
    warned = list(ledger.events(kind="checkpoint.witness_warning"))
    assert len(warned) == 1 and warned[0].payload["tree_size"] == 1
    assert len(ledger.checkpoints()) == 1 and ledger.verify().ok


def test_a_forked_history_is_refused_by_the_witness_and_shown_loudly(
    witnesses: list[WitnessProcess], db: str | None, tmp_path: Path
) -> None:
    ws = witnessed_workspace(tmp_path / "ws", witnesses[:1], db=db)
    journal = Journal(ws)
    journal.record("change.noted", actor="alice", change_id="C", payload={"n": 0})
    journal.ledger.checkpoint("alice")
    fork = _fork(ws, tmp_path / "fork" / "ws", db)  # same folder name: same origin
    for n in range(3):
        journal.record("change.noted", actor="alice", change_id="C", payload={"n": n + 1})
    journal.ledger.checkpoint("alice")  # the witness now holds size 4
    Journal(fork).record("change.noted", actor="mallory", change_id="C", payload={"n": "x"})
    for _ in range(4):
        Journal(fork).record("change.noted", actor="mallory", change_id="D", payload={})
    result = opskit_cli("audit", "checkpoint", ws=fork)
    assert result.returncode == 1
    assert "SPLIT VIEW: witness w1 refused the checkpoint of tree size 6" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    refused = list(Ledger.open(fork).events(kind="checkpoint.witness_refused"))
    assert refused and refused[0].payload["refusals"][0]["witness"] == "w1"


def _fork(ws: Workspace, root: Path, db: str | None) -> Workspace:
    """A copy of the workspace and its database: the same log key, another history."""
    shutil.copytree(ws.root, root)
    if db is None:
        return Workspace.open(root)
    from sqlalchemy import create_engine, text

    ws.close()
    name = db.rsplit("/", 1)[1]
    admin = create_engine(db.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}_fork" TEMPLATE "{name}"'))
    admin.dispose()
    return Workspace.open(root, db=f"{db}_fork")


def test_the_documented_stand_alone_check_agrees(closed_bundle: Any, tmp_path: Path) -> None:
    """The ledger-format page's check (standard library + Ed25519) accepts a
    real cosigned bundle and refuses a withheld event or a forged cosignature."""
    docs = (Path(__file__).parents[2] / "docs" / "ledger-format.md").read_text()
    script = docs.split("<!-- change-bundle-check -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "check.py").write_text(script)
    data, policy = closed_bundle
    vkeys = [policy.logs[0].vkey, *(w.vkey for w in policy.witnesses.values())]

    def run(bundle: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        (tmp_path / "b.json").write_text(json.dumps(bundle))
        return subprocess.run(
            [sys.executable, "check.py", "b.json", *vkeys],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    result = run(data)
    assert result.returncode == 0, result.stderr
    assert "change CHG-1: 5 events" in result.stdout and "closed at seq 8" in result.stdout
    assert "cosigned by w1.example/witness, w2.example/witness" in result.stdout
    dropped = copy.deepcopy(data)
    del dropped["events"][2]
    assert "missing or invented" in run(dropped).stderr
    forged = copy.deepcopy(data)
    lines = forged["checkpoint"].splitlines()
    name, blob = lines[-1].removeprefix("— ").split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    lines[-1] = f"— {name} {base64.b64encode(bytes(raw)).decode()}"
    forged["checkpoint"] = "\n".join(lines) + "\n"
    assert "InvalidSignature" in run(forged).stderr


def test_one_trust_file_format(closed_bundle: Any, tmp_path: Path) -> None:
    """The trust policy is the format of every --trust; the old one-key-a-line
    file is read for old bundles with a deprecation line, and refused with a
    one-line hint where a checkpoint note must be checked."""
    data, policy = closed_bundle
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps(data))
    raw = base64.b64encode(policy.logs[0].public_key).decode()
    old = tmp_path / "old.trust"
    old.write_text(f"# the old format: a base64 key\n{raw}\n")
    result = opskit_cli("audit", "verify-bundle", str(bundle), "--trust", str(old))
    assert "deprecated trust file format (one key a line)" in result.stderr
    assert result.returncode == 0, result.stderr  # a pinned key: a log key, no witness quorum
    proof = tmp_path / "p.tlog-proof"
    proof.write_text(
        "c2sp.org/tlog-proof@v1\nindex 0\n"
        + "".join(h + "\n" for h in data["events"][0]["proof"])
        + "\n"
        + data["checkpoint"]
    )
    refused = opskit_cli("audit", "verify-proof", str(proof), "--trust", str(old))
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "write a trust policy, `log <vkey>`" in refused.stderr


def test_a_secret_in_a_witness_answer_or_url_never_reaches_the_ledger(
    witnesses: list[WitnessProcess], tmp_path: Path
) -> None:
    from opskit.secrets import REDACTOR

    canary = "canary-s3cr3t-7f1e"
    REDACTOR.register(canary)
    ws = witnessed_workspace(tmp_path / "ws", witnesses[:1])
    set_witnesses(ws, witnesses[:1], urls=[f"http://ops:{canary}@127.0.0.1:9"])
    journal = Journal(Workspace.open(ws.root))
    journal.record("change.noted", actor="a", change_id="C", payload={})
    journal.checkpoint("alice")  # unreachable: a warning, recorded without the secret
    warned = list(journal.ledger.events(kind="checkpoint.witness_warning"))
    assert len(warned) == 1 and canary not in json.dumps(warned[0].payload)
    assert all(canary not in w for w in journal.ledger.last_witnessing.warnings)


def test_links_hold_across_threads_group_commits_and_other_writers(
    witnesses: list[WitnessProcess], db: str | None, tmp_path: Path
) -> None:
    """Events of two changes from four threads sharing commits, a refused
    guarded event rolled back in the middle, and another writer (its own
    journal and ledger) in between: every event links to its change's
    previous one, so both bundles verify complete."""
    from concurrent.futures import ThreadPoolExecutor

    from opskit.errors import ChangeError

    ws = witnessed_workspace(tmp_path / "ws", witnesses[:1], db=db)
    journal, other = Journal(ws), Journal(Workspace.open(ws.root, db=db))

    def refuse(batch: Any) -> None:
        raise ChangeError("refused by its guard")

    def work(thread: int) -> None:
        for n in range(15):
            change = "A" if (thread + n) % 2 else "B"
            payload = {"t": thread, "n": n}
            if n % 5 == 4:
                journal.record_later("step", actor="ci", change_id=change, payload=payload)()
            else:
                journal.record("step", actor="ci", change_id=change, payload=payload)

    with journal.group_commit(), ThreadPoolExecutor(4) as threads:
        futures = [threads.submit(work, t) for t in range(4)]
        other.record("step", actor="other", change_id="A", payload={"other": 1})
        with pytest.raises(ChangeError):
            journal.record("step", actor="ci", change_id="B", payload={}, guard=refuse)
        for future in futures:
            future.result()
    other.record("step", actor="other", change_id="B", payload={"other": 2})
    journal.record("step", actor="ci", change_id="A", payload={"last": True})
    policy = parse_policy(trust_policy(ws, witnesses[:1], "w1"))
    for change, count in (("A", 32), ("B", 31)):
        journal.ledger.export_bundle(change, tmp_path / f"{change}.json")
        report = verify_change_bundle(tmp_path / f"{change}.json", policy)
        assert report.ok, report.problems
        assert report.events == count and report.later_unproven == 0, report.summary()
