"""The policy's `schedules:` (recurring read-only jobs): a bad entry is one
PolicyError naming the file, the line and the field; any cron text either
loads or is refused that way, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import PolicyError
from opskit.policy import load_policy

PEOPLE = (
    "people:\n  alice: {roles: [requester, implementer]}\n  bob: {roles: [change_manager, cab]}\n"
)
PEOPLE += "  carol: {roles: [cab]}\n  dave: {roles: [governance]}\n"


def write(tmp_path: Path, entry: str) -> Path:
    (tmp_path / "inventories" / "example").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "opskit.yaml"
    path.write_text(PEOPLE + "schedules:\n  - " + entry + "\n")
    return path


def refused(tmp_path: Path, entry: str) -> str:
    path = write(tmp_path, entry)
    with pytest.raises(PolicyError) as info:
        load_policy(path, inventories_dir=tmp_path / "inventories")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:7 ")  # the entry's line
    return message[len(f"{path}:7 ") :]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            '{name: n, job: backup, cron: "61 * * * *"}',
            "[schedules[0].cron]: cron '61 * * * *': Invalid end range: 61 > 59.",
        ),
        (
            '{name: n, job: backup, cron: "0 3 * *"}',
            "[schedules[0].cron]: cron '0 3 * *': needs five fields "
            "(minute hour day month weekday)",
        ),
        (
            '{name: n, job: backup, cron: "0 0 31 2 *"}',
            "[schedules[0].cron]: cron '0 0 31 2 *': Invalid crontab: day_of_month '31' never "
            "occurs in month_of_year '2'.",
        ),
        (
            "{name: n, job: restore, every: 60}",
            "[schedules[0].job]: must be one of backup, compliance, inspect (got 'restore')",
        ),
        (
            "{name: n, job: change, every: 60}",
            "[schedules[0].job]: must be one of backup, compliance, inspect (got 'change')",
        ),
        (
            '{name: n, job: backup, every: 60, select: "grup:core"}',
            "[schedules[0].select]: selection 'grup:core': unknown key 'grup' (keys: name, group, "
            "platform, type, site, lifecycle, criticality, owner, department, host, attr.NAME=) "
            "at column 1",
        ),
        (
            "{name: n, job: backup}",
            "[schedules[0]]: give either cron (five fields) or every (seconds), not both",
        ),
        (
            '{name: n, job: backup, every: 60, cron: "* * * * *"}',
            "[schedules[0]]: give either cron (five fields) or every (seconds), not both",
        ),
        (
            "{name: n, job: backup, every: 0.5}",
            "[schedules[0].every]: must be at least 1.0 (got 0.5)",
        ),
        (
            "{name: n, job: backup, every: 60, source: backup, params: {cpu_max_percent: 5}}",
            "[schedules[0]]: params are for inspect jobs, not backup",
        ),
        (
            "{name: n, job: backup, every: 60, queu: dc1}",
            "[schedules[0].queu]: unknown field 'queu'; did you mean 'queue'? (allowed: cron, "
            "every, job, name, params, queue, select, source)",
        ),
    ],
)
def test_a_bad_schedule_is_one_line_naming_the_field(
    tmp_path: Path, entry: str, message: str
) -> None:
    assert refused(tmp_path, entry) == message


def test_a_schedule_named_twice(tmp_path: Path) -> None:
    path = write(
        tmp_path, "{name: n, job: backup, every: 60}\n  - {name: n, job: inspect, every: 9}"
    )
    with pytest.raises(PolicyError, match=r"\[schedules\]: schedule 'n' is named twice$"):
        load_policy(path)


def test_a_valid_schedule_loads(tmp_path: Path) -> None:
    entry = (
        '{name: nightly.backup, job: compliance, select: "group:core", cron: "30 2 * * mon-fri",'
        " source: backup}"
    )
    schedule = load_policy(write(tmp_path, entry)).schedules[0]
    assert (schedule.name, schedule.job, schedule.cron, schedule.every) == (
        "nightly.backup",
        "compliance",
        "30 2 * * mon-fri",
        None,
    )


FIELD = st.text(alphabet="0123456789*/,-LW#?abcdefghijklmnopqrstuvwxyz ", max_size=8)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(FIELD, min_size=0, max_size=7))
def test_any_cron_text_loads_or_is_refused_in_one_line(tmp_path: Path, fields: list[str]) -> None:
    cron = " ".join(fields).replace('"', "")
    path = write(tmp_path, f'{{name: n, job: backup, cron: "{cron}"}}')
    try:
        schedule = load_policy(path).schedules[0]
    except PolicyError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith(f"{path}:7 [schedules[0].cron]: cron ")
    else:
        from celery.schedules import crontab

        assert len(schedule.cron.split()) == 5  # type: ignore[union-attr]
        crontab.from_string(schedule.cron)  # the beat builds it the same way
