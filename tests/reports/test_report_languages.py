"""The report languages: every message the templates and the code mark has
its Chinese translation in the shipped catalog, the standards' own terms are
used, and dates and numbers follow the locale."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import opskit.reports
from opskit.reports.i18n import Translator, choose_language
from opskit.reports.model import ReportError

PACKAGE = Path(opskit.reports.__file__).parent
CATALOG = PACKAGE / "locale" / "zh_CN" / "LC_MESSAGES" / "opskit_reports.po"


def marked_messages() -> set[str]:
    """What Babel's extractors find in the package: `_()`, `N_()` and
    `gettext()` in Python and in the Jinja2 templates."""
    method_map = [("*.py", "python"), ("templates/*", "jinja2.ext:babel_extract")]
    found = extract_from_dir(
        str(PACKAGE),
        method_map,
        keywords={"_": None, "N_": None, "gettext": None},
        options_map={"templates/*": {"extensions": "jinja2.ext.i18n"}},
    )
    return {message for _file, _line, message, _comments, _context in found}


def test_every_marked_message_has_a_chinese_translation() -> None:
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle)
    translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    marked = marked_messages()
    assert len(marked) > 150
    assert sorted(marked - set(translated)) == []
    assert sorted(set(translated) - marked) == []  # no stale entries either


def test_the_standards_terms() -> None:
    tr = Translator("zh_CN")
    assert tr.gettext("Change success rate") == "变更成功率"
    assert tr.gettext("Service interruptions caused by changes") == "因变更导致的服务中断次数"
    assert tr.gettext("Approval cycle time") == "变更审批周期"
    assert tr.gettext("Inspection report") == "巡检报告"


def test_dates_and_numbers_follow_the_locale() -> None:
    moment = datetime(2026, 12, 6, 14, 5, 9, tzinfo=UTC)
    assert Translator("zh_CN").datetime(moment) == "2026年12月6日 14:05:09 UTC"
    assert Translator("en").datetime(moment) == "Dec 6, 2026, 2:05:09\u202fPM UTC"
    assert Translator("zh_CN").number(12345.67) == "12,345.7"
    assert Translator("en").duration(5400) == "90 min"
    assert Translator("zh_CN").duration(5400) == "90 分钟"


def test_the_language_comes_from_the_option_the_policy_then_the_locale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    assert choose_language(None) == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert choose_language(None) == "zh_CN"
    assert choose_language(None, "en") == "en"
    assert choose_language("en", "zh_CN") == "en"
    with pytest.raises(ReportError, match="--lang 'de': use one of zh_CN, en"):
        choose_language("de")
