"""The explainable risk score of a change.

Each factor contributes points with a reason; the sum (0..100) maps to a
level, which is never below the runbook's declared risk. The level picks the
approval rule of the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from opskit.policy import Risk

CRITICALITY_POINTS = {"low": 0, "medium": 10, "high": 20, "critical": 30}
RUNBOOK_RISK_POINTS = {"low": 0, "medium": 15, "high": 30}
LEVEL_THRESHOLDS = ((60, Risk.HIGH), (30, Risk.MEDIUM), (0, Risk.LOW))
RISK_ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}


@dataclass(frozen=True)
class RiskFactor:
    """One reason a change is risky and what it adds to the score, e.g.
    `RiskFactor("criticality", 20, "most critical target core-sw1 is high")`.
    """

    name: str
    points: int
    reason: str


@dataclass(frozen=True)
class RiskScore:
    """A change's risk: the sum of its factors' points and the level that sum
    reaches (`level_for`). `to_dict()` is what the change stores, e.g.
    `{"score": 35, "level": "medium", "factors": [{"name": ..., "points": 20,
    "reason": ...}]}`.
    """

    score: int
    level: Risk
    factors: tuple[RiskFactor, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "level": str(self.level),
            "factors": [asdict(f) for f in self.factors],
        }


def level_for(score: int) -> Risk:
    return next(level for threshold, level in LEVEL_THRESHOLDS if score >= threshold)


def assess_risk(
    *,
    target_criticality: Mapping[str, str],
    dependants: int,
    runbook_risk: str,
    missing_capabilities: Mapping[str, Iterable[str]],
    history: Mapping[str, int],
) -> RiskScore:
    """`target_criticality`: CI -> criticality; `dependants`: how many CIs depend
    on the targets (transitively); `missing_capabilities`: CI -> capabilities
    the runbook would like but the CI's connector lacks (e.g. native_rollback);
    `history`: outcome -> count of past changes with this runbook version."""
    factors: list[RiskFactor] = []

    if target_criticality:
        worst_ci, worst = max(
            target_criticality.items(), key=lambda item: CRITICALITY_POINTS.get(item[1], 0)
        )
        factors.append(
            RiskFactor(
                "criticality",
                CRITICALITY_POINTS.get(worst, 0),
                f"most critical target {worst_ci} is {worst}",
            )
        )

    targets = len(target_criticality)
    blast = min(25, 2 * targets + 3 * dependants)
    factors.append(
        RiskFactor(
            "blast_radius",
            blast,
            f"{targets} target(s) and {dependants} dependant CI(s) "
            "(2 points a target, 3 a dependant, at most 25)",
        )
    )

    factors.append(
        RiskFactor(
            "runbook_risk",
            RUNBOOK_RISK_POINTS.get(runbook_risk, 0),
            f"the runbook declares {runbook_risk} risk",
        )
    )

    lacking = {ci: sorted(set(caps)) for ci, caps in missing_capabilities.items() if caps}
    if lacking:
        kinds = sorted({cap for caps in lacking.values() for cap in caps})
        points = min(15, 5 * len(kinds))
        sample = ", ".join(sorted(lacking)[:3]) + (" ..." if len(lacking) > 3 else "")
        factors.append(
            RiskFactor(
                "missing_capabilities",
                points,
                f"{len(lacking)} target(s) lack {', '.join(kinds)} ({sample}); "
                "rollback relies on generated commands",
            )
        )
    else:
        factors.append(RiskFactor("missing_capabilities", 0, "every target has what it needs"))

    done = sum(history.values())
    failed = history.get("failed", 0) + history.get("rolled_back", 0)
    if done == 0:
        factors.append(RiskFactor("history", 5, "no past change has used this runbook version"))
    else:
        rate = (done - failed) / done
        if rate < 0.8:
            points = 15
        elif rate < 1.0:
            points = 5
        else:
            points = -5 if done >= 3 else 0
        factors.append(
            RiskFactor(
                "history",
                points,
                f"{done - failed} of {done} past change(s) with this runbook version succeeded",
            )
        )

    score = max(0, min(100, sum(f.points for f in factors)))
    level = level_for(score)
    declared = Risk(runbook_risk) if runbook_risk in Risk.__members__.values() else Risk.LOW
    if RISK_ORDER[declared] > RISK_ORDER[level]:
        factors.append(RiskFactor("floor", 0, f"level raised to the runbook's {declared} risk"))
        level = declared
    return RiskScore(score=score, level=level, factors=tuple(factors))
