"""The words a report shows for the codes in the data: KPI names and their
definitions (the standards' own terms in Chinese), states, outcomes and
statuses. Marked with `N_` for the catalog; translated when rendered.

Example:
    >>> Translator("zh_CN").gettext(KPI_NAMES["change_success_rate"])
    '变更成功率'
"""

from __future__ import annotations

from opskit.reports.i18n import N_

REPORT_TITLES = {
    "change": N_("Change evidence report"),
    "changes": N_("Change log"),
    "kpi": N_("Change management KPI report"),
    "compliance": N_("Compliance report"),
    "backups": N_("Backup log"),
    "inspection": N_("Inspection report"),
}

KPI_NAMES = {
    "change_success_rate": N_("Change success rate"),
    "changes_caused_failures": N_("Service interruptions caused by changes"),
    "rollback_rate": N_("Rollback rate"),
    "emergency_share": N_("Emergency change share"),
    "approval_lead_time": N_("Approval cycle time"),
    "time_to_implement": N_("Time to implement"),
    "compliance_rate": N_("Compliance rate"),
    "cmdb_accuracy": N_("CMDB accuracy"),
}

KPI_DEFINITIONS = {
    "change_success_rate": N_(
        "Changes that ran in the period and completed, as a share of the changes that ran in "
        "the period and ended (completed, failed, rolled back or partially rolled back)."
    ),
    "changes_caused_failures": N_(
        "Changes that ran in the period and failed or were rolled back, plus earlier completed "
        "changes that a later change ties to an incident: the later change names an incident "
        "ticket (INC...) and targets a CI the earlier change changed in the 30 days before."
    ),
    "rollback_rate": N_(
        "Changes that ran in the period and rolled back at least one host, as a share of the "
        "changes that ran in the period and ended."
    ),
    "emergency_share": N_("Emergency changes as a share of all changes requested in the period."),
    "approval_lead_time": N_(
        "From submission to the final approval, for the changes approved in the period: median "
        "and 90th percentile (the target applies to the 90th percentile)."
    ),
    "time_to_implement": N_(
        "From the start of the rollout to its end (completed, failed or rolled back), for the "
        "changes that ended in the period: median and 90th percentile (the target applies to "
        "the 90th percentile)."
    ),
    "compliance_rate": N_(
        "Compliant CIs among the CIs judged in the period: a CI is compliant when none of its "
        "features' latest state in the period is non-compliant."
    ),
    "cmdb_accuracy": N_(
        "CIs whose declared state matches their latest observed facts, as a share of the CIs "
        "ever observed (now, not per period)."
    ),
}

CODES = {
    # change states and outcomes
    "draft": N_("draft"),
    "submitted": N_("submitted"),
    "assessed": N_("assessed"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
    "scheduled": N_("scheduled"),
    "in_progress": N_("in progress"),
    "verifying": N_("verifying"),
    "completed": N_("completed"),
    "failed": N_("failed"),
    "rolled_back": N_("rolled back"),
    "partially_rolled_back": N_("partially rolled back"),
    "closed": N_("closed"),
    "cancelled": N_("cancelled"),
    "not_run": N_("not run"),
    # change types and risk levels
    "standard": N_("standard"),
    "normal": N_("normal"),
    "emergency": N_("emergency"),
    "low": N_("low"),
    "medium": N_("medium"),
    "high": N_("high"),
    # host, backup, inspection and record statuses
    "ok": N_("ok"),
    "pending": N_("pending"),
    "skipped": N_("skipped"),
    "rollback_failed": N_("rollback failed"),
    "not_restored": N_("not restored"),
    "missing": N_("missing"),
    "stale": N_("stale"),
    "exception": N_("exception"),
    "unavailable": N_("unavailable"),
    "verified": N_("verified"),
    "not verified": N_("not verified"),
    "not started": N_("not started"),
    "approval": N_("approval"),
    "rejection": N_("rejection"),
    "retrospective": N_("retrospective review"),
    "month": N_("month"),
    "week": N_("week"),
    "period": N_("whole period"),
}

NOTES = {
    "no_changes": N_("no changes between %(since)s and %(until)s"),
    "no_compliance": N_(
        "compliance: not yet measured (the ledger holds no compliance results in this period)"
    ),
    "no_inspection": N_("no inspection recorded yet: run 'opskit inspect'"),
    "no_checkpoint": N_(
        "no signed checkpoint covers these records yet: 'opskit audit checkpoint' signs one"
    ),
}
