"""Inline SVG charts for the HTML reports: no script, no external asset.

`Charts(tr)` draws, with the labels of the report's language:
- `trend(title, trend, key, unit, target)`: one figure per period as bars, with the
  target as a dashed line (KPI trends);
- `outcomes(weeks)`: changes per week, stacked by outcome;
- `features(features)`: the compliance rate per feature, as horizontal bars.

Each returns `markupsafe.Markup` (an `<svg role="img">` with a `<title>`);
every text in it is XML-escaped.

Example:
    >>> str(Charts(Translator("en")).outcomes("Changes per week", weeks))[:38]
    '<svg xmlns="http://www.w3.org/2000/sv'
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from opskit.reports.i18n import NO_VALUE, Translator
from opskit.reports.labels import CODES

OUTCOME_COLOURS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "rolled_back": "#ef6c00",
    "not_run": "#9e9e9e",
}
WIDTH, HEIGHT, PAD = 520, 180, 36


def _svg(title: str, body: list[str], height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}">'
        f"{escape(text)}</text>"
    )


class Charts:
    """The charts of one report language (see the module docstring)."""

    def __init__(self, tr: Translator) -> None:
        self.tr = tr

    def trend(
        self, title: str, trend: list[dict[str, Any]], key: str, unit: str, target: float | None
    ) -> Markup:
        """Figure `key` of each period of `trend` (`kpi_data`'s "trend")."""
        points = [(self.tr.date(e["since"]), e["figures"][key]["value"]) for e in trend]
        values = [v for _, v in points if v is not None]
        top = 100.0 if unit == "percent" else (max([*values, target or 0.0]) or 1.0)
        plot_h = HEIGHT - 2 * PAD
        slot = (WIDTH - 2 * PAD) / max(1, len(points))
        body = [
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
            f'y2="{HEIGHT - PAD}" stroke="#555"/>'
        ]
        for index, (label, value) in enumerate(points):
            x = PAD + index * slot + slot * 0.2
            if value is not None:
                h = plot_h * value / top
                body.append(
                    f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{slot * 0.6:.1f}" '
                    f'height="{h:.1f}" fill="#1565c0"/>'
                )
                body.append(_text(x + slot * 0.3, HEIGHT - PAD - h - 4, self._value(value, unit)))
            else:
                body.append(_text(x + slot * 0.3, HEIGHT - PAD - 4, NO_VALUE))
            body.append(_text(x + slot * 0.3, HEIGHT - PAD + 14, label, size=10))
        if target is not None:
            y = HEIGHT - PAD - plot_h * target / top
            body.append(
                f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" '
                'stroke="#c62828" stroke-dasharray="5,4"/>'
            )
            label = self.tr.gettext("target")
            body.append(
                _text(WIDTH - PAD, y - 4, f"{label} {self._value(target, unit)}", "end", 10)
            )
        return _svg(title, body)

    def _value(self, value: float, unit: str) -> str:
        if unit == "percent":
            return self.tr.percent(value)
        if unit == "hours":
            return self.tr.hours(value)
        return self.tr.number(value, 0)

    def outcomes(self, title: str, weeks: list[dict[str, Any]]) -> Markup:
        totals = [sum(w["counts"].values()) for w in weeks]
        top = max([*totals, 1])
        plot_h = HEIGHT - 2 * PAD - 14
        slot = (WIDTH - 2 * PAD) / max(1, len(weeks))
        body = []
        for index, week in enumerate(weeks):
            x, y = PAD + index * slot + slot * 0.15, HEIGHT - PAD
            for outcome, colour in OUTCOME_COLOURS.items():
                count = week["counts"].get(outcome, 0)
                if count:
                    h = plot_h * count / top
                    y -= h
                    body.append(
                        f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                        f'height="{h:.1f}" fill="{colour}"><title>'
                        f"{escape(self._code(outcome))}: {count}</title></rect>"
                    )
            body.append(_text(x + slot * 0.35, y - 4, self.tr.number(totals[index], 0)))
            body.append(
                _text(x + slot * 0.35, HEIGHT - PAD + 14, self.tr.date(week["since"]), size=9)
            )
        legend_x = PAD
        for outcome, colour in OUTCOME_COLOURS.items():
            body.append(f'<rect x="{legend_x}" y="6" width="10" height="10" fill="{colour}"/>')
            body.append(_text(legend_x + 14, 15, self._code(outcome), anchor="start", size=10))
            legend_x += 110
        return _svg(title, body)

    def features(self, title: str, features: list[dict[str, Any]]) -> Markup:
        row_h = 22
        height = max(HEIGHT // 2, PAD + row_h * len(features))
        label_w = 160
        body = []
        for index, feature in enumerate(features):
            y = 10 + index * row_h
            width = (WIDTH - label_w - 60) * feature["rate"] / 100
            body.append(_text(label_w - 6, y + 13, feature["feature"] or NO_VALUE, anchor="end"))
            body.append(
                f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{row_h - 6}" '
                'fill="#2e7d32"/>'
            )
            body.append(
                _text(label_w + width + 4, y + 13, self.tr.percent(feature["rate"]), anchor="start")
            )
        return _svg(title, body, height)

    def _code(self, code: str) -> str:
        return self.tr.gettext(CODES.get(code, code))
