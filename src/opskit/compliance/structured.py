"""The structured mode: a napalm_validate document against parsed state.

The facts a feature reads are given to `evaluate` by source: a NAPALM
getter's result by getter name (``get_vlans``), or a show command's raw
output by command (``show vlan``), parsed here with TextFSM through
ntc-templates for the CI's platform. The document is compared with
napalm's own validation (``napalm.base.validate.compare``: ``_mode:
strict``, ``list:``, ``<``/``>`` and ranges, regular expressions); its report
is the result's ``details``.

Example: the check ``{command: show vlan, validate: {list: [{vlan_id: "1",
status: active}]}}`` on a switch whose VLAN 1 is suspended gives
``state=non-compliant`` and ``missing=("{'vlan_id': '1', 'status': 'active'}",)``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from opskit.compliance.facts import FactUnavailable
from opskit.compliance.model import BoundFeature
from opskit.compliance.results import FeatureResult, State


def _parsed(bound: BoundFeature, facts: Mapping[str, Any], platform: str) -> tuple[Any, str | None]:
    check = bound.feature.check
    assert check is not None  # a structured feature has its check (schema)
    if check.source not in facts:
        return None, f"no facts for {check.source!r} (not collected)"
    raw = facts[check.source]
    if isinstance(raw, FactUnavailable):
        return None, raw.reason
    if check.getter is not None:
        return raw, None
    if not isinstance(raw, str):
        return raw, None  # already parsed by the caller
    from ntc_templates.parse import ParsingException, parse_output

    try:
        return parse_output(platform=platform, command=check.source, data=raw), None
    except ParsingException as exc:
        return None, f"cannot parse {check.source!r} for {platform}: {str(exc)[:160]}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def structured(bound: BoundFeature, facts: Mapping[str, Any], platform: str) -> FeatureResult:
    data, problem = _parsed(bound, facts, platform)
    base = {"feature": bound.name, "mode": bound.mode}
    if problem is not None:
        return FeatureResult(**base, state=State.UNKNOWN, reason=problem)
    # Imported only now: a feature without its facts (a change's verified
    # configuration is judged without any) never pays napalm's 0.2 s import.
    from napalm.base.validate import compare

    document = copy.deepcopy(bound.validate)
    if isinstance(document, dict):  # how to call the getter, not what it returns (NAPALM's form)
        document.pop("_kwargs", None)
        document.pop("_name", None)
    shown = {
        "actual": json.dumps(_jsonable(data), sort_keys=True)[:20000],
        "intended": json.dumps(_jsonable(bound.validate), sort_keys=True),
    }
    try:
        # As JSON: a getter's integer keys (get_vlans) are the document's string keys.
        report = compare(document, _jsonable(data))
    except Exception as exc:  # napalm's comparison on data of another shape
        reason = f"cannot compare the document with {bound.feature.check.source!r}: {exc}"
        return FeatureResult(**base, state=State.UNKNOWN, reason=reason[:300], **shown)
    if isinstance(report, bool):
        report = {"complies": report}
    complies = bool(report.get("complies"))
    missing = tuple(str(m) for m in report.get("missing", []) or [])
    extra = tuple(str(e) for e in report.get("extra", []) or [])
    return FeatureResult(
        **base,
        state=State.COMPLIANT if complies else State.NON_COMPLIANT,
        missing=missing,
        extra=extra,
        reason=None if complies else "the parsed state does not match the document",
        details=_jsonable(report),
        **shown,
    )
