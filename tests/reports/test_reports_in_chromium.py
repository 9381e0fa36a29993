"""Every HTML report of the lab workspace, in both languages, loaded in a
real headless Chromium: the key figures and sections are on the rendered
page, the charts are drawn, the page logs no error and requests nothing
but itself, and the Chinese text is drawn with a CJK font (not boxes).
Screenshots are kept in tests/artifacts/reports/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit import reports
from tests.reports.chromium import Chromium, chromium_path
from tests.reports.conftest import Reported, artifacts_dir

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


def _page(reported: Reported, kind: str, lang: str) -> Path:
    builders = {
        "change": lambda: reports.change_report(reported.ws, reported.rolled_back, lang=lang),
        "changes": lambda: reports.changes_report(reported.ws, lang=lang),
        "kpi": lambda: reports.kpi_report(reported.ws, by="week", lang=lang),
        "compliance": lambda: reports.compliance_report(reported.ws, lang=lang),
        "backups": lambda: reports.backups_report(reported.ws, lang=lang),
        "inspection": lambda: reports.inspection_report(
            reported.ws, seq=reported.inspection_seq, lang=lang
        ),
    }
    out = artifacts_dir() / f"{kind}-{lang}.html"
    reports.write(builders[kind](), "html", out)
    return out


# What each page must show once rendered, per language: sections and figures.
EXPECTED = {
    ("change", "en"): [
        "Change evidence report",
        "Approvals",
        "Rollback",
        "Closing review",
        "restored",
        "naming plan wrong",
        "Records",
    ],
    ("change", "zh_CN"): ["变更证据报告", "变更审批", "回退", "关闭评审", "已恢复", "记录"],
    ("changes", "en"): ["Change log", "Changes per week by outcome", "rolled back"],
    ("changes", "zh_CN"): ["变更记录", "每周变更", "已回退"],
    ("kpi", "en"): [
        "Change success rate",
        "50%",
        "Service interruptions caused by changes",
        "INC-4711",
        "not yet measured",
    ],
    ("kpi", "zh_CN"): ["变更成功率", "50%", "因变更导致的服务中断次数", "变更审批周期", "尚未测量"],
    ("compliance", "en"): ["Compliance report", "not yet measured"],
    ("compliance", "zh_CN"): ["合规报告", "尚未测量"],
    ("backups", "en"): ["Backup log", "lab-sw01", "lab-sw02"],
    ("backups", "zh_CN"): ["备份记录", "lab-sw01"],
    ("inspection", "en"): ["Inspection report", "Exceptions", "All checks", "lab-sw01"],
    ("inspection", "zh_CN"): ["巡检报告", "异常", "全部检查项", "lab-sw02"],
}


@pytest.mark.parametrize(("kind", "lang"), sorted(EXPECTED))
def test_the_report_renders_in_chromium(
    reported: Reported, browser: Chromium, kind: str, lang: str
) -> None:
    page = _page(reported, kind, lang)
    load = browser.load(page)
    shot = browser.screenshot(page.with_suffix(".png"))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    for expected in EXPECTED[(kind, lang)]:
        assert expected in load.text, f"{expected!r} is not on the rendered {kind} page"
    assert load.errors == []
    # The page itself is the only request: no font, style, image or script from elsewhere.
    assert load.requests == [page.resolve().as_uri()]
    assert browser.evaluate("document.scripts.length") == 0
    if lang == "zh_CN":
        fonts = browser.fonts_of("h1")
        cjk = [f for f in fonts if "CJK" in f["familyName"] and f["glyphCount"] > 0]
        assert cjk, f"the Chinese heading was not drawn with a CJK font: {fonts}"


def test_the_charts_are_drawn(reported: Reported, browser: Chromium) -> None:
    browser.load(_page(reported, "kpi", "en"))
    sizes = browser.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().width)"
    )
    assert len(sizes) == 8 and min(sizes) > 300  # changes per week + one trend per figure
    bars = browser.evaluate("document.querySelectorAll('svg.chart rect').length")
    assert bars >= 8


def test_the_configuration_before_is_collapsed(reported: Reported, browser: Chromium) -> None:
    load = browser.load(_page(reported, "change", "en"))
    assert browser.evaluate("document.querySelector('details.config-before').open") is False
    assert "hostname lab-sw02" not in load.text  # collapsed, so not rendered as text
    browser.evaluate("document.querySelector('details.config-before').open = true")
    assert "hostname lab-sw02" in browser.evaluate("document.body.innerText")
