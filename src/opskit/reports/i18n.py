"""Languages of the reports: gettext catalogs loaded through Babel, and
dates and numbers formatted for the locale.

The catalogs ship as `.po` files (package data, `locale/<lang>/LC_MESSAGES/
opskit_reports.po`) and are compiled in memory by Babel when first used:
the same file works in an editable and a wheel install, with no build step
that could be forgotten. English is the source language (no catalog).

`choose_language(requested, policy_language)`: the requested language, else
the policy's `report_language`, else the locale (`LC_ALL`, `LC_MESSAGES`,
`LANG`: Chinese locales give zh_CN), else English.

Example:
    >>> tr = Translator("zh_CN")
    >>> tr.gettext("Change success rate"), tr.percent(97.5), tr.number(1234)
    ('变更成功率', '97.5%', '1,234')
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from opskit.reports.model import LANGUAGES, ReportOptionError

DOMAIN = "opskit_reports"
# What a report shows for "no value" (an en dash).
NO_VALUE = "\u2013"


def N_(message: str) -> str:
    """Marks `message` for extraction; translated where it is shown."""
    return message


@lru_cache(maxsize=4)
def translations(language: str) -> NullTranslations:
    """The compiled catalog of `language` (English: none)."""
    if language == "en":
        return NullTranslations()
    source = resources.files("opskit.reports").joinpath("locale", language, "LC_MESSAGES")
    po = source.joinpath(f"{DOMAIN}.po")
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def choose_language(requested: str | None, policy_language: str | None = None) -> str:
    """See the module docstring; an unknown `requested` language is one line."""
    if requested is not None:
        if requested not in LANGUAGES:
            raise ReportOptionError(f"--lang {requested!r}: use one of {', '.join(LANGUAGES)}")
        return requested
    if policy_language:
        return policy_language
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value:
            return "zh_CN" if value.lower().startswith("zh") else "en"
    return "en"


class Translator:
    """Messages, dates and numbers of one language."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.locale = Locale.parse(language)
        self._catalog = translations(language)

    def gettext(self, message: str) -> str:
        return self._catalog.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self._catalog.ngettext(singular, plural, count)

    def number(self, value: float | int | None, digits: int = 1) -> str:
        if value is None:
            return NO_VALUE
        pattern = "#,##0" if digits == 0 or isinstance(value, int) else "#,##0." + "#" * digits
        return format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, value: float | None) -> str:
        if value is None:
            return NO_VALUE
        return f"{self.number(value)}%"

    def datetime(self, value: str | datetime | None) -> str:
        """A ledger time (UTC) as the locale writes it, with "UTC"."""
        if value in (None, ""):
            return NO_VALUE
        moment = value if isinstance(value, datetime) else _parse(str(value))
        if moment is None:
            return str(value)
        return format_datetime(moment, "medium", tzinfo="UTC", locale=self.locale) + " UTC"

    def date(self, value: str | datetime | None) -> str:
        if value in (None, ""):
            return NO_VALUE
        moment = value if isinstance(value, datetime) else _parse(str(value))
        if moment is None:
            return str(value)
        return format_datetime(moment, "yyyy-MM-dd", tzinfo="UTC", locale=self.locale)

    def duration(self, seconds: float | None) -> str:
        """Seconds as s, min or h, whichever reads best."""
        if seconds is None:
            return NO_VALUE
        if seconds < 120:
            value, unit = seconds, self.gettext("s")
        elif seconds < 7200:
            value, unit = seconds / 60, self.gettext("min")
        else:
            value, unit = seconds / 3600, self.gettext("h")
        return f"{self.number(value)} {unit}"

    def hours(self, value: float | None) -> str:
        return NO_VALUE if value is None else self.duration(value * 3600)

    def figure(self, figure: dict[str, Any]) -> str:
        """A KPI figure's value in its unit; "not yet measured" without one."""
        if not figure.get("measured"):
            return self.gettext("not yet measured")
        unit = figure["unit"]
        if unit == "percent":
            return self.percent(figure["value"])
        if unit == "hours":
            return self.hours(figure["value"])
        return self.number(figure["value"], 0)


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
