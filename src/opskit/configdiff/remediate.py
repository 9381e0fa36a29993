"""What to send: remediation, prediction, membership and line-by-line restoration."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hier_config import HConfig, HConfigChild, WorkflowRemediation

from opskit.configdiff.model import ConfigParseError, _Config, driver, hier_platform, parse
from opskit.errors import OpskitError

# Platforms whose lines are negated with a "no" form and entered by their parents.
LINE_BY_LINE_PLATFORMS = frozenset(
    {"cisco_ios", "cisco_xe", "cisco_nxos", "cisco_xr", "arista_eos"}
)


# Texts up to this size (together) are remembered by content: a compliance
# run compares the same small sections on many CIs (the same drift across a
# fleet). Whole configurations are neither small nor repeated.
MEMO_CHARS = 8192


def remediation(
    current: str, target: str, platform: str | None = None, *, host: str | None = None
) -> list[str]:
    """Configuration lines that turn ``current`` into ``target`` (hier_config)."""
    if len(current) + len(target) <= MEMO_CHARS:
        try:
            return list(_remembered_remediation(current, target, platform))
        except OpskitError:
            pass  # not remembered: computed again below to name the host in the error
    return _remediation(current, target, platform, host)


def line_difference(
    current: str, target: str, platform: str | None = None, *, host: str | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the lines of ``target`` that ``current`` lacks, the lines of
    ``current`` that ``target`` lacks), hierarchically (hier_config's
    difference; each line as it is printed, indented under its parents),
    e.g. ``(("vlan 20", " name users"), ())``."""
    if len(current) + len(target) <= MEMO_CHARS:
        try:
            return _remembered_difference(current, target, platform)
        except OpskitError:
            pass  # as in `remediation`
    return _difference(current, target, platform, host)


@functools.lru_cache(maxsize=512)
def _remembered_remediation(current: str, target: str, platform: str | None) -> tuple[str, ...]:
    return tuple(_remediation(current, target, platform, None))


@functools.lru_cache(maxsize=512)
def _remembered_difference(
    current: str, target: str, platform: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _difference(current, target, platform, None)


def _remediation(current: str, target: str, platform: str | None, host: str | None) -> list[str]:
    have, want = parse(current, platform, host=host), parse(target, platform, host=host)
    with _computing("the remediation", host):
        workflow = WorkflowRemediation(have, want)
        # The text form closes each section with "exit", so that a following
        # top-level line is not sent inside the previous sub-mode.
        return _text_lines(str(workflow.remediation_config))


def _difference(
    current: str, target: str, platform: str | None, host: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    have, want = parse(current, platform, host=host), parse(target, platform, host=host)
    with _computing("the difference", host):
        return _lines_of(want.difference(have)), _lines_of(have.difference(want))


def _lines_of(config: HConfig) -> tuple[str, ...]:
    return tuple(part for line in config.lines() for part in line.splitlines())


@contextmanager
def _computing(what: str, host: str | None) -> Iterator[None]:
    """hier_config's computations on unusual input raise its own exceptions:
    one `ConfigComputeError` line instead (the rollback then tries the next method)."""
    try:
        yield
    except OpskitError:
        raise
    except Exception as exc:
        prefix = f"{host}: " if host else ""
        detail = f"{type(exc).__name__}: {exc}"
        raise ConfigComputeError(f"{prefix}cannot compute {what}: {detail}") from exc


class ConfigComputeError(OpskitError):
    """hier_config could read both configurations but not compute the result."""


def line_restoration(
    current: str, target: str, platform: str | None = None, *, host: str | None = None
) -> list[str]:
    """Lines that turn ``current`` into ``target`` counting every copy of a line.

    The last resort of a restoration: each line ``current`` has more often than
    ``target`` (duplicates included) is negated once per extra copy under its
    parents, each line it lacks is added with its children. No remediation
    rule (ordering, idempotent commands) is applied.
    """
    if (platform or "") not in LINE_BY_LINE_PLATFORMS:
        raise ConfigParseError(
            f"line-by-line restoration is not available for platform {platform!r}", host=host
        )
    have = parse(current, platform, host=host, duplicates="keep")
    want = parse(target, platform, host=host, duplicates="keep")
    with _computing("the line-by-line restoration", host):
        out = _Config(driver(hier_platform(platform)), "keep")
        _restore_children(have, want, out)
        return _text_lines("\n".join(out.lines(sectional_exiting=True)))


def _restore_children(
    have: HConfig | HConfigChild, want: HConfig | HConfigChild, out: HConfig
) -> None:
    wanted: dict[str, list[HConfigChild]] = {}
    for child in want.children:
        wanted.setdefault(child.text, []).append(child)
    seen: dict[str, int] = {}
    for child in have.children:
        index = seen.get(child.text, 0)
        seen[child.text] = index + 1
        twins = wanted.get(child.text, [])
        if index >= len(twins):
            _section(out, child).add_child(child.text).negate()
        elif child.children or twins[index].children:
            _restore_children(child, twins[index], out)
    for text, twins in wanted.items():
        for twin in twins[seen.get(text, 0) :]:
            _copy_into(_section(out, twin), twin)


def _copy_into(node: HConfig | HConfigChild, child: HConfigChild) -> None:
    """Adds ``child`` (a leaf once per copy; a section once, merged) under ``node``."""
    if not child.children:
        node.add_child(child.text)
        return
    section = node.children.get(child.text) or node.add_child(child.text)
    for grandchild in child.children:
        _copy_into(section, grandchild)


def _section(out: HConfig, child: HConfigChild) -> HConfig | HConfigChild:
    """The parents of ``child`` in ``out``, created on first use."""
    node: HConfig | HConfigChild = out
    for text in tuple(child.path())[:-1]:
        existing = node.children.get(text)
        node = existing if existing is not None else node.add_child(text)
    return node


def _text_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def predict(
    current: str, lines: Sequence[str], platform: str | None = None, *, host: str | None = None
) -> str:
    """Hierarchical diff ("+"/"-" lines) of merging ``lines`` into ``current``."""
    running, merged = parse(current, platform, host=host), parse(lines, platform, host=host)
    with _computing("the predicted diff", host):
        return "\n".join(running.unified_diff(running.future(merged)))


def hier_diff(
    before: str, after: str, platform: str | None = None, *, host: str | None = None
) -> str:
    """Hierarchical diff ("+"/"-" lines under their parents) of two configurations."""
    old, new = parse(before, platform, host=host), parse(after, platform, host=host)
    with _computing("the configuration diff", host):
        return "\n".join(old.unified_diff(new))


def _leaf_paths(config: HConfig) -> list[tuple[str, ...]]:
    return [tuple(child.path()) for child in config.all_children() if not child.children]


def _all_paths(config: HConfig) -> set[tuple[str, ...]]:
    return {tuple(child.path()) for child in config.all_children()}


def wanted_paths(
    lines: Sequence[str], platform: str | None, host: str | None = None
) -> tuple[tuple[str, ...], ...]:
    """The leaf lines of (hierarchical) ``lines`` as paths, parent lines
    first, as `missing_lines` looks them up, e.g. ``(("vlan 9", "name x"),)``
    for ``["vlan 9", " name x"]``. Parsed once for the same lines."""
    lines = tuple(lines)
    try:
        return _parsed_wanted_paths(lines, platform)
    except ConfigParseError:
        # Not cached: parsed again to name the host in the error.
        return tuple(_leaf_paths(parse(lines, platform, host=host)))


@functools.lru_cache(maxsize=256)
def _parsed_wanted_paths(
    lines: tuple[str, ...], platform: str | None
) -> tuple[tuple[str, ...], ...]:
    # The same lines checked on every host of a change (verify, then the
    # proof): parsed once, not once a host (the host only names it in errors).
    return tuple(_leaf_paths(parse(lines, platform)))


def missing_lines(
    config: str, lines: Sequence[str], platform: str | None = None, *, host: str | None = None
) -> list[str]:
    """The (hierarchical) lines of ``lines`` that ``config`` lacks, as "parent > child"."""
    have = _all_paths(parse(config, platform, host=host))
    return [" > ".join(p) for p in wanted_paths(lines, platform, host) if p not in have]


def present_lines(
    config: str, lines: Sequence[str], platform: str | None = None, *, host: str | None = None
) -> list[str]:
    """The (hierarchical) lines of ``lines`` that ``config`` has, as "parent > child"."""
    have = _all_paths(parse(config, platform, host=host))
    return [" > ".join(p) for p in wanted_paths(lines, platform, host) if p in have]


def contains_lines(
    config: str, lines: Sequence[str], platform: str | None = None, *, host: str | None = None
) -> bool:
    return not missing_lines(config, lines, platform, host=host)
