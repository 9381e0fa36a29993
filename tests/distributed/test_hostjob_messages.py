"""Host job messages (what crosses the broker): a round trip keeps the job,
anything else a hand could put in the queue is one `ValidationError` naming
the field, never another exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.changes.runners import HostJob
from opskit.errors import ValidationError

text = st.text(min_size=1, max_size=40).filter(str.isprintable)
jobs = st.builds(
    HostJob,
    change_id=text,
    ci=text,
    phase=st.sampled_from(["run", "rollback"]),
    runbook_digest=text,
    batch=st.none() | st.integers(0, 10_000),
    actor=text,
)
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@given(jobs)
def test_a_job_survives_its_message(job: HostJob) -> None:
    message = job.to_message()
    assert HostJob.from_message(message) == job
    assert message["key"] == f"{job.change_id}/{job.ci}/{job.phase}"


@given(jobs, st.sampled_from(["change_id", "ci", "phase", "runbook_digest", "batch"]), anything)
def test_a_broken_message_is_one_error_naming_the_field(
    job: HostJob, name: str, value: Any
) -> None:
    message = {**job.to_message(), name: value}
    try:
        parsed = HostJob.from_message(message)
    except ValidationError as exc:
        assert exc.field == name
        assert "\n" not in str(exc)
        return
    assert getattr(parsed, name) == value  # only a valid value gets through


@given(anything)
def test_not_a_mapping_or_not_a_job(value: Any) -> None:
    with pytest.raises(ValidationError):
        HostJob.from_message(value)
