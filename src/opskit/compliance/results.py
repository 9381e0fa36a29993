"""The typed results of a compliance evaluation.

A `FeatureResult` is one feature of one CI; a `CiCompliance` holds the
feature results of one CI and *computes* its state and counts from them; a
`FleetCompliance` holds many `CiCompliance` and computes the fleet's counts
and compliance rates (as Nornir's ``Result`` / ``AggregatedResult``: the
summary is never stored next to the children it is derived from, so it can
never disagree with them). ``to_dict()`` is the JSON form (the ledger's
``compliance.result`` payload, ``--json``), with every secret opskit has
resolved masked (a device printing a password in clear).

Example (``CiCompliance.to_dict()``, abridged)::

    {
      "ci": "lab-sw01", "platform": "cisco_ios", "state": "non-compliant",
      "counts": {"compliant": 2, "non-compliant": 1, "not-applicable": 1, "unknown": 0},
      "rules_digest": "sha256:9f1c...", "template_digest": "sha256:44ab...",
      "inventory_digest": "sha256:0e3d...", "config_digest": "sha256:7a2b...",
      "reason": null, "unmanaged": ["snmp-server location lab"],
      "features": [
        {"feature": "vlans", "mode": "intended", "state": "non-compliant",
         "missing": ["vlan 10", "  name users"], "extra": [],
         "remediation": ["vlan 10", "  name users", "  exit"], "reason": null,
         "actual": "vlan 1", "intended": "vlan 1\\nvlan 10\\n name users"},
        ...
      ]
    }
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opskit.secrets import REDACTOR


class State(StrEnum):
    """The state of a feature, a CI or a fleet (one vocabulary everywhere)."""

    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    #: the feature does not concern this CI (a false ``when``, or neither the
    #: device nor the intended configuration has a line of it)
    NOT_APPLICABLE = "not-applicable"
    #: could not be evaluated (device unreachable, no backup, no intended
    #: configuration, facts missing); ``reason`` says why
    UNKNOWN = "unknown"


class Mode(StrEnum):
    """How a feature is checked (see docs/compliance.md)."""

    INTENDED = "intended"
    MUST_CONTAIN = "must-contain"
    MUST_NOT_CONTAIN = "must-not-contain"
    STRUCTURED = "structured"


def _masked(data: Any) -> Any:
    # A device's configuration may hold a credential opskit resolved (a
    # password in clear): what leaves as JSON never does.
    return REDACTOR.redact_obj(data) if REDACTOR.values else data


def _counts(states: Iterable[State]) -> dict[str, int]:
    counts = {str(state): 0 for state in State}
    for state in states:
        counts[str(state)] += 1
    return counts


def _summary_state(states: list[State]) -> State:
    """Worst first: non-compliant, unknown, compliant, not applicable."""
    for state in (State.NON_COMPLIANT, State.UNKNOWN, State.COMPLIANT):
        if state in states:
            return state
    return State.NOT_APPLICABLE


@dataclass(frozen=True)
class FeatureResult:
    """One feature of one CI.

    ``missing`` and ``extra`` are configuration lines in their hierarchy (a
    child is indented under its parent line, the parent given for context);
    ``remediation`` is what hier_config would send to make the feature
    compliant (sections entered by their parent line, closed by ``exit``);
    ``actual`` / ``intended`` are the device's and the intended lines of the
    feature (for display and for the ledger). ``reason`` explains an
    ``unknown`` or ``not-applicable`` state, or a non-compliance that the
    lines cannot show (order, a structured check).

    Example::

        FeatureResult(feature="ntp", mode=Mode.MUST_CONTAIN, state=State.NON_COMPLIANT,
                      missing=("ntp server 10.0.0.123",), extra=(),
                      remediation=("ntp server 10.0.0.123",))
    """

    feature: str
    mode: Mode
    state: State
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    remediation: tuple[str, ...] = ()
    reason: str | None = None
    actual: str = ""
    intended: str = ""
    #: a structured check's details (napalm_validate's report), JSON-able
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def compliant(self) -> bool:
        return self.state is State.COMPLIANT

    def to_dict(self, *, texts: bool = True) -> dict[str, Any]:
        """The JSON form, every registered secret masked (`opskit.secrets`);
        without the `actual` and `intended` texts when not `texts`."""
        data: dict[str, Any] = {
            "feature": self.feature,
            "mode": str(self.mode),
            "state": str(self.state),
            "missing": list(self.missing),
            "extra": list(self.extra),
            "remediation": list(self.remediation),
            "reason": self.reason,
        }
        if texts:
            data.update(actual=self.actual, intended=self.intended)
        if self.details:
            data["details"] = dict(self.details)
        return _masked(data)


@dataclass(frozen=True)
class CiCompliance:
    """The compliance of one CI: its feature results and what they were computed from.

    ``state`` and ``counts`` are derived from ``features`` (worst first:
    non-compliant, unknown, compliant, not-applicable); a CI-level ``reason``
    (unreachable, no backup) makes the whole CI ``unknown``. ``unmanaged``
    are the device's top-level lines that no feature claims.
    """

    ci: str
    platform: str
    features: tuple[FeatureResult, ...] = ()
    unmanaged: tuple[str, ...] = ()
    reason: str | None = None
    rules_digest: str | None = None
    template_digest: str | None = None
    inventory_digest: str | None = None
    config_digest: str | None = None

    @classmethod
    def unknown(
        cls,
        ci: str,
        platform: str,
        reason: str,
        *,
        features: Iterable[tuple[str, Mode]] = (),
        rules_digest: str | None = None,
        template_digest: str | None = None,
        inventory_digest: str | None = None,
    ) -> CiCompliance:
        """A CI that could not be evaluated (unreachable, no backup): every
        feature ``unknown`` with ``reason``.

        Example: ``CiCompliance.unknown("lab-sw02", "cisco_ios", "no backup",
        features=[("vlans", Mode.INTENDED)]).state is State.UNKNOWN``.
        """
        results = tuple(
            FeatureResult(feature=name, mode=mode, state=State.UNKNOWN, reason=reason)
            for name, mode in features
        )
        return cls(
            ci=ci,
            platform=platform,
            features=results,
            reason=reason,
            rules_digest=rules_digest,
            template_digest=template_digest,
            inventory_digest=inventory_digest,
        )

    @property
    def state(self) -> State:
        if self.reason is not None:
            return State.UNKNOWN
        return _summary_state([f.state for f in self.features])

    @property
    def compliant(self) -> bool:
        """True when nothing evaluated is non-compliant or unknown."""
        return self.state in (State.COMPLIANT, State.NOT_APPLICABLE)

    @property
    def counts(self) -> dict[str, int]:
        """Number of features in each state (every state present, 0 included)."""
        return _counts(f.state for f in self.features)

    def feature(self, name: str) -> FeatureResult:
        """The result of feature ``name`` (KeyError when the CI has no such feature)."""
        for result in self.features:
            if result.feature == name:
                return result
        raise KeyError(name)

    @property
    def remediation(self) -> list[str]:
        """Every non-compliant feature's remediation, in feature order."""
        return [line for f in self.features for line in f.remediation]

    def to_dict(self, *, texts: bool = True) -> dict[str, Any]:
        """The JSON form, every registered secret masked (`opskit.secrets`);
        the features without their texts when not `texts`."""
        return {
            "ci": self.ci,
            "platform": self.platform,
            "state": str(self.state),
            "counts": self.counts,
            "reason": _masked(self.reason),
            "rules_digest": self.rules_digest,
            "template_digest": self.template_digest,
            "inventory_digest": self.inventory_digest,
            "config_digest": self.config_digest,
            "unmanaged": _masked(list(self.unmanaged)),
            "features": [f.to_dict(texts=texts) for f in self.features],
        }


@dataclass(frozen=True)
class FleetCompliance:
    """Many CIs' results; every figure is computed from them.

    Example: ``FleetCompliance((a, b)).rate()`` is ``0.5`` when one of two
    evaluated CIs is compliant; ``.rate("ntp")`` the same for feature ntp.
    """

    results: tuple[CiCompliance, ...] = ()

    @property
    def state(self) -> State:
        return _summary_state([r.state for r in self.results])

    @property
    def compliant(self) -> bool:
        """True when every CI is compliant (or has nothing to evaluate): exit 0."""
        return all(r.compliant for r in self.results)

    @property
    def counts(self) -> dict[str, int]:
        """CIs per state."""
        return _counts(r.state for r in self.results)

    def feature_counts(self) -> dict[str, dict[str, int]]:
        """Per feature name: CIs per state of that feature."""
        out: dict[str, list[State]] = {}
        for result in self.results:
            for feature in result.features:
                out.setdefault(feature.feature, []).append(feature.state)
        return {name: _counts(states) for name, states in sorted(out.items())}

    def rate(self, feature: str | None = None) -> float | None:
        """Compliant share of what was evaluated (compliant or non-compliant:
        unknown and not-applicable are left out); None when nothing was."""
        by_feature = self.feature_counts()
        counts = self.counts if feature is None else by_feature.get(feature, _counts(()))
        judged = counts[State.COMPLIANT] + counts[State.NON_COMPLIANT]
        return counts[State.COMPLIANT] / judged if judged else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "counts": self.counts,
            "rate": self.rate(),
            "features": {
                name: {"counts": counts, "rate": self.rate(name)}
                for name, counts in self.feature_counts().items()
            },
            "results": [r.to_dict() for r in self.results],
        }
