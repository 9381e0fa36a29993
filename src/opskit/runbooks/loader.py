"""Loading runbook files and the versioned catalog.

- ``load_runbook(path, root=None) -> Runbook``: reads one YAML file, validates
  it against ``opskit/schemas/runbook.json`` and the rules a schema cannot say
  (known connector actions, one kind per expectation, Jinja2 syntax,
  referenced playbooks/templates exist), and computes its digest. Every
  error is a `RunbookError` naming the file, the line and the field.
  ``root`` is the workspace (referenced files are looked up in its
  ``playbooks/`` and ``templates/``); default: three levels above the file
  (``<root>/runbooks/<name>/<version>.yaml``).
- ``runbook_digest(data, files) -> "sha256:..."``: SHA-256 over the canonical
  JSON of ``{"runbook": <document>, "files": {relative path: sha256 of bytes}}``
  (sorted keys, no whitespace, UTF-8). A changed playbook or template changes
  the digest; reformatting the YAML or reordering keys does not.
- ``RunbookCatalog(ws_or_root)``: ``.list() -> list[Runbook]`` (every version,
  sorted by name then semantic version; an invalid file raises),
  ``.scan() -> (runbooks, [InvalidRunbook(path, error)])`` (every valid
  version and every invalid file with its error), ``.versions(name)``,
  ``.get("name@version")`` or ``.get("name")`` (the latest version); an unknown
  name or version raises `RunbookError` listing what exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from jinja2 import TemplateSyntaxError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from opskit.connectors.base import Capability
from opskit.digests import canonical_digest, sha256_bytes
from opskit.errors import OpskitError, RunbookError
from opskit.runbooks.model import (
    EXPECTATION_KINDS,
    BackupSpec,
    Expectation,
    Revision,
    Runbook,
    StateSnapshotSpec,
    Step,
    Strategy,
    Targets,
)
from opskit.runbooks.parameters import schema_problems
from opskit.runbooks.rendercheck import TemplateFiles, check_document
from opskit.runbooks.templating import ENV
from opskit.secrets import SecretRef
from opskit.yamlfile import Locator, field_path, json_document, load_yaml, schema_error

if TYPE_CHECKING:
    # Not at run time: the workspace module brings the database layer, which
    # reading runbooks does not need.
    from opskit.workspace import Workspace

RUNBOOK_SUFFIXES = (".yaml", ".yml")
# Step params whose value names a file the runbook depends on, and where it lives.
_FILE_KEYS = {"playbook": "playbooks", "template": "templates", "src_template": "templates"}
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?")


@cache
def runbook_schema() -> dict[str, Any]:
    text = resources.files("opskit").joinpath("schemas/runbook.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(runbook_schema())


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    match = _SEMVER.match(version)
    if not match:
        return (0, 0, 0, 0, version)
    major, minor, patch, pre = match.groups()
    # A pre-release sorts before its release.
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre or "")


def runbook_digest(data: Mapping[str, Any], files: Mapping[str, str]) -> str:
    return canonical_digest({"runbook": data, "files": dict(files)})


def _connector_actions(name: str) -> frozenset[str] | None:
    """Every action a step may ask of a connector (the built-in ones and its
    own, from `opskit.connectors.actions`: loading a runbook imports no vendor
    library); None for a connector opskit does not know."""
    from opskit.connectors import actions

    try:
        return actions(name)
    except OpskitError:
        return None


def _walk_strings(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk_strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_strings(v, (*path, i))


def _walk_file_refs(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    """(path, folder, relative file) for every param naming a playbook or template."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k in _FILE_KEYS and not isinstance(v, Mapping | list):  # not a module's args
                yield (*path, k), _FILE_KEYS[k], v
            else:
                yield from _walk_file_refs(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_file_refs(v, (*path, i))


# Task keys naming another file a playbook runs or reads (the value's first word).
_INCLUDE_KEYS = (
    "include_tasks",
    "import_tasks",
    "import_playbook",
    "include_vars",
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
    "ansible.builtin.import_playbook",
    "ansible.builtin.include_vars",
)


def _walk_any(value: Any, key: str) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == key:
                yield value, v
            else:
                yield from _walk_any(v, key)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_any(item, key)


def _walk_keys(value: Any, key: str) -> Iterator[tuple[Any, str]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == key and isinstance(v, str):
                yield value, v
            else:
                yield from _walk_keys(v, key)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_keys(item, key)


class _Builder:
    def __init__(self, path: Path, root: Path, data: dict[str, Any], locator: Locator) -> None:
        self.path = path
        self.root = root
        self.data = data
        self.locator = locator
        self.files: dict[str, str] = {}

    def error(self, message: str, loc: list[str | int]) -> RunbookError:
        return RunbookError(
            message, file=self.path, line=self.locator.line(loc), field=field_path(loc) or None
        )

    def file_digest(self, folder: str, rel: Any, loc: list[str | int]) -> None:
        # A file chosen at run time (a templated name) would escape the digest,
        # and with it the approval's binding: names are literal.
        if not isinstance(rel, str) or not rel or "{{" in rel or "{%" in rel:
            raise self.error(
                f"a referenced file is a literal path inside {folder}/ (got {rel!r})", loc
            )
        target = (self.root / folder / rel).resolve()
        base = (self.root / folder).resolve()
        if not target.is_relative_to(base):
            raise self.error(f"{rel!r} must stay inside {folder}/", loc)
        if not target.is_file():
            raise self.error(f"referenced file {folder}/{rel} does not exist", loc)
        digest = sha256_bytes(target.read_bytes())
        self.files[f"{folder}/{rel}"] = digest
        if folder == "playbooks":
            self.playbook_files(target)

    def playbook_files(self, playbook: Path, seen: set[Path] | None = None) -> None:
        """Files a playbook uses count too: ``src:`` of copy/template tasks, and
        included or imported task files, playbooks and variable files (followed)."""
        seen = seen if seen is not None else set()
        if playbook.resolve() in seen:
            return
        seen.add(playbook.resolve())
        try:
            data = yaml.safe_load(playbook.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return  # ansible reports a broken playbook when it runs
        for _, src in _walk_keys(data, "src"):
            self.playbook_file(playbook, src, ("", "files", "templates"))
        for key in _INCLUDE_KEYS:
            for _, value in _walk_any(data, key):
                name = value.get("file") if isinstance(value, Mapping) else value
                if not isinstance(name, str) or not name.strip():
                    continue
                found = self.playbook_file(playbook, name.split()[0], ("",))
                if found is not None and not key.endswith("include_vars"):
                    self.playbook_files(found, seen)
        for _, names in _walk_any(data, "vars_files"):
            for name in names if isinstance(names, list) else [names]:
                if isinstance(name, str):
                    self.playbook_file(playbook, name, ("",))

    def playbook_file(self, playbook: Path, name: str, folders: tuple[str, ...]) -> Path | None:
        """Digests `name` as Ansible finds it next to `playbook`; None when it is
        templated or not a file inside playbooks/ (Ansible reports that)."""
        if "{{" in name:
            return None
        base = (self.root / "playbooks").resolve()
        for folder in folders:
            candidate = (playbook.parent / folder / name).resolve()
            if candidate.is_file() and candidate.is_relative_to(base):
                rel = candidate.relative_to(self.root.resolve()).as_posix()
                self.files[rel] = sha256_bytes(candidate.read_bytes())
                return candidate
        return None

    def check_secret_defaults(self, parameters: Mapping[str, Any]) -> None:
        """A secret parameter's default is a reference: a literal would put the
        secret into the runbook file, its digest document and `runbook doc`."""
        props = parameters.get("properties", {}) or {}
        for name, spec in props.items():
            if isinstance(spec, Mapping) and spec.get("secret") and "default" in spec:
                try:
                    SecretRef.parse(spec["default"])
                except OpskitError:
                    raise self.error(
                        f"secret parameter {name!r}: the default must be a secret reference "
                        "({env: VAR}, {file: PATH}, {keyring: ...} or {prompt: TEXT})",
                        ["parameters", "properties", name, "default"],
                    ) from None

    def check_templates(self) -> None:
        """Every Jinja string and template file parses, compiles and uses only
        what rendering allows; files a template includes count in the digest."""
        files = TemplateFiles()
        for problem in check_document(self.data, self.root / "templates", files):
            raise self.error(problem.message, list(problem.loc))
        for rel in sorted(files.reached):
            self.file_digest("templates", rel, ["apply"])

    def check_selection(self, expression: str) -> None:
        try:
            from opskit.inventory.select import compile_selection
        except ImportError:  # pragma: no cover - the inventory is part of opskit
            return
        try:
            compile_selection(expression)
        except OpskitError as exc:
            raise self.error(f"invalid selection: {exc}", ["targets", "select"]) from None

    def connector_actions(self, connector: str, loc: list[str | int]) -> frozenset[str]:
        """The actions of a registered connector; a one-line error for any other."""
        known = _connector_actions(connector)
        if known is None:
            from opskit.connectors import connector_names

            raise self.error(f"{connector!r} is not one of {connector_names()}", loc)
        return known

    def steps(self, phase: str, items: list[dict[str, Any]] | None) -> tuple[Step, ...]:
        steps = []
        for index, raw in enumerate(items or []):
            loc: list[str | int] = [phase, index]
            connector = raw["connector"]
            action = raw["action"]
            known = self.connector_actions(connector, [*loc, "connector"])
            if action not in known:
                allowed = ", ".join(sorted(known))
                raise self.error(
                    f"connector {connector} has no action {action!r} (known: {allowed})",
                    [*loc, "action"],
                )
            params = raw.get("params", {}) or {}
            for sub, text in _walk_strings(params):
                try:
                    ENV.parse(text)
                except TemplateSyntaxError as exc:
                    raise self.error(
                        f"step '{raw['name']}': template syntax error: {exc.message}",
                        [*loc, "params", *sub],
                    ) from None
            for sub, folder, rel in _walk_file_refs(params):
                self.file_digest(folder, rel, [*loc, "params", *sub])
            expects = []
            for e_index, spec in enumerate(raw.get("expect", []) or []):
                kinds = [k for k in spec if k in EXPECTATION_KINDS]
                if len(kinds) != 1:
                    raise self.error(
                        "an expectation has exactly one of: " + ", ".join(EXPECTATION_KINDS),
                        [*loc, "expect", e_index],
                    )
                kind = kinds[0]
                if kind == "textfsm":
                    template = spec[kind]["template"]
                    if template.endswith((".textfsm", ".template", ".tpl")):
                        self.file_digest(
                            "templates", template, [*loc, "expect", e_index, kind, "template"]
                        )
                if kind == "regex":
                    try:
                        re.compile(spec[kind])
                    except re.error as exc:
                        raise self.error(
                            f"invalid regex: {exc}", [*loc, "expect", e_index, kind]
                        ) from None
                expects.append(Expectation(kind, spec[kind], spec.get("description")))
            steps.append(
                Step(
                    phase=phase,
                    index=index,
                    name=raw["name"],
                    connector=connector,
                    action=action,
                    params=params,
                    expect=tuple(expects),
                    platforms=tuple(raw.get("platforms", ()) or ()),
                    on_fail=raw.get("on_fail", "fail"),
                    check=raw.get("check"),
                    description=raw.get("description"),
                    line=self.locator.line(loc),
                )
            )
        return tuple(steps)

    def build(self) -> Runbook:
        data = self.data
        backup_raw = data.get("backup", True)
        if isinstance(backup_raw, bool):
            backup = BackupSpec(enabled=backup_raw)
        else:
            if backup_raw.get("connector"):
                self.connector_actions(backup_raw["connector"], ["backup", "connector"])
            for platform, override in (backup_raw.get("by_platform") or {}).items():
                if override.get("connector"):
                    loc: list[str | int] = ["backup", "by_platform", platform, "connector"]
                    self.connector_actions(override["connector"], loc)
            backup = BackupSpec(
                enabled=True,
                connector=backup_raw.get("connector"),
                source=backup_raw.get("source", "running"),
                files=tuple(backup_raw.get("files", ())),
                platforms=tuple(backup_raw.get("platforms", ())),
                by_platform=backup_raw.get("by_platform", {}) or {},
            )
        state = data.get("state_snapshot")
        if state is not None and state.get("connector"):
            self.connector_actions(state["connector"], ["state_snapshot", "connector"])
        rollback_raw = data.get("rollback", "auto")
        if rollback_raw == []:
            # No steps would report a host "rolled back" with nothing done.
            raise self.error(
                "rollback: no steps given; list them, or say auto or none", ["rollback"]
            )
        rollback: Any = (
            rollback_raw if isinstance(rollback_raw, str) else self.steps("rollback", rollback_raw)
        )
        if rollback == "auto" and not backup.enabled and data.get("apply"):
            raise self.error(
                "rollback: auto needs the backup phase (backup: false given)", ["rollback"]
            )
        strategy_raw = data.get("strategy", {}) or {}
        budget = strategy_raw.get("error_budget", {}) or {}
        canary = strategy_raw.get("canary", 0)
        strategy = Strategy(
            canary=tuple(canary) if isinstance(canary, list) else canary,
            batch=strategy_raw.get("batch", "100%"),
            concurrency=strategy_raw.get("concurrency", 10),
            max_failed=budget.get("max_failed", 0 if "max_failed_percent" not in budget else None),
            max_failed_percent=budget.get("max_failed_percent"),
            on_failure=strategy_raw.get("on_failure", "rollback_host"),
        )
        parameters = data.get("parameters", {}) or {}
        try:
            Draft202012Validator.check_schema(parameters)
        except SchemaError as exc:
            loc = ["parameters", *exc.absolute_path]
            raise self.error(f"not a valid JSON Schema: {exc.message}", loc) from None
        for loc, message in schema_problems(parameters):
            raise self.error(message, ["parameters", *loc])
        self.check_secret_defaults(parameters)
        targets = data["targets"]
        if targets.get("select"):
            self.check_selection(targets["select"])
        precheck = self.steps("precheck", data.get("precheck"))
        apply = self.steps("apply", data.get("apply"))
        verify = self.steps("verify", data.get("verify"))
        self.check_templates()
        if self.path.stem != data["version"]:
            raise self.error(
                f"file name {self.path.name} does not match version {data['version']!r} "
                "(expected runbooks/<name>/<version>.yaml)",
                ["version"],
            )
        if self.path.parent.name != data["name"] and self.path.parent.parent.name == "runbooks":
            raise self.error(
                f"runbook {data['name']!r} lives in folder {self.path.parent.name!r}", ["name"]
            )
        return Runbook(
            name=data["name"],
            version=data["version"],
            description=data["description"].strip(),
            owner=data["owner"],
            risk=data["risk"],
            targets=Targets(platforms=tuple(targets["platforms"]), select=targets.get("select")),
            digest=runbook_digest(data, self.files),
            change_types=tuple(data.get("change_types", ("normal", "emergency"))),
            standard=bool(data.get("standard", False)),
            parameters=parameters,
            requires=frozenset(Capability(c) for c in data.get("requires", ())),
            history=tuple(Revision(**h) for h in data.get("history", ())),
            precheck=precheck,
            backup=backup,
            apply=apply,
            verify=verify,
            rollback=rollback,
            state_snapshot=None if state is None else StateSnapshotSpec.from_raw(state),
            strategy=strategy,
            path=self.path,
            files=dict(sorted(self.files.items())),
            raw=data,
        )


def load_runbook(path: str | Path, root: str | Path | None = None) -> Runbook:
    """Loads and validates one runbook file (see the module docstring)."""
    path = Path(path)
    data, locator = load_yaml(path)
    if not isinstance(data, Mapping):
        raise RunbookError("a runbook is a YAML mapping", file=path, line=1)
    data = json_document(data)
    error = schema_error(_validator().iter_errors(data), path, locator, RunbookError)
    if error is not None:
        raise error
    root_path = Path(root) if root is not None else path.resolve().parents[2]
    return _Builder(path, root_path, data, locator).build()


@dataclass(frozen=True)
class InvalidRunbook:
    """A file in the catalog that is not a valid runbook, and why (one line)."""

    path: Path
    error: OpskitError

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def version(self) -> str:
        return self.path.stem


class RunbookCatalog:
    """Every runbook version under a workspace's ``runbooks/`` folder."""

    def __init__(self, workspace: Workspace | str | Path) -> None:
        self.root = Path(workspace) if isinstance(workspace, str | Path) else workspace.root
        self.dir = self.root / "runbooks"
        self._cache: dict[Path, tuple[float, Runbook]] = {}

    def paths(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(
            p for p in self.dir.glob("*/*") if p.suffix in RUNBOOK_SUFFIXES and p.is_file()
        )

    def load(self, path: Path) -> Runbook:
        return load_runbook(path, self.root)

    def names(self) -> list[str]:
        return sorted({p.parent.name for p in self.paths()})

    def versions(self, name: str) -> list[str]:
        return sorted((p.stem for p in self.paths() if p.parent.name == name), key=semver_key)

    def list(self) -> list[Runbook]:
        """Every version of every runbook (the first invalid file raises)."""
        books, invalid = self.scan()
        if invalid:
            raise invalid[0].error
        return books

    def scan(self) -> tuple[list[Runbook], list[InvalidRunbook]]:
        """Every valid version of every runbook, and every file that is not a
        valid runbook with its error; each sorted by name then version. One
        broken file does not hide the others (``opskit runbook list``)."""
        books: list[Runbook] = []
        invalid: list[InvalidRunbook] = []
        for path in self.paths():
            try:
                books.append(self.load(path))
            except OpskitError as exc:
                invalid.append(InvalidRunbook(path, exc))
        books.sort(key=lambda b: (b.name, semver_key(b.version)))
        invalid.sort(key=lambda i: (i.name, semver_key(i.version)))
        return books, invalid

    def get(self, ref: str) -> Runbook:
        """``name@version`` or ``name`` (the latest version)."""
        name, _, version = ref.partition("@")
        names = self.names()
        if name not in names:
            known = ", ".join(names) or "none"
            raise RunbookError(f"unknown runbook {name!r} (known: {known})")
        versions = self.versions(name)
        if not version:
            version = versions[-1]
        elif version not in versions:
            raise RunbookError(
                f"runbook {name!r} has no version {version!r} (versions: {', '.join(versions)})"
            )
        for suffix in RUNBOOK_SUFFIXES:
            path = self.dir / name / f"{version}{suffix}"
            if path.is_file():
                return self.load(path)
        raise RunbookError(f"runbook {name}@{version}: file vanished")  # pragma: no cover

    def resolve(self, ref_or_path: str) -> Runbook:
        """A catalog reference, or a path to a runbook file."""
        candidate = Path(ref_or_path)
        if candidate.suffix in RUNBOOK_SUFFIXES and candidate.is_file():
            root = self.root if candidate.resolve().is_relative_to(self.root.resolve()) else None
            return load_runbook(candidate, root)
        return self.get(ref_or_path)
