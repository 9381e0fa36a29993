"""Delivering write-back rows to Nautobot (a `writeback:` entry, `source: nautobot`).

`NautobotWriter(ws, entry).write(document)` takes one row's document
(`opskit.notify.writeback`) and, through Nautobot's REST API:

- a finished change: a journal entry (`extras/notes`) on each touched device
  or VM; with `last_change_field`, its custom field `opskit_last_change` (text);
- a compliance result: with `compliance: journal` (the default) a journal
  entry when the CI's state changed; with `custom_field` its custom field
  `opskit_compliance` (JSON: state, per-feature states, run, seq); `both`.

The object of a CI is `attributes.source_id` / `source_kind` in the
entry's inventory (what `opskit inventory sync` writes), else the device or
VM of that name; a CI Nautobot does not have is skipped. Each journal entry
names the row's delivery id, and is not written again when a retry finds it
(at least once, never twice per device). The custom fields must exist in
Nautobot (an administrator creates them; a missing one is an error line).

Every failure is one `OpskitError` line, recorded as the attempt's error in
the outbox (`opskit notify status`), e.g.
``nautobot http://nb:8080: extras.notes: access refused (403: You do not
have permission to perform this action.); the token needs permission to add
notes``. The token is a secret reference, resolved here only: it is never in
the outbox, the ledger, a log line or an error.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from opskit.errors import OpskitError
from opskit.notify.events import COMPLIANCE_RESULT
from opskit.secrets import REDACTOR, SecretRef

log = logging.getLogger("opskit.notify")

if TYPE_CHECKING:
    from opskit.inventory import Inventory
    from opskit.policy import Writeback
    from opskit.workspace import Workspace

LAST_CHANGE_FIELD = "opskit_last_change"
COMPLIANCE_FIELD = "opskit_compliance"
# CI attributes.source_kind -> (content type, REST path).
OBJECT_KINDS = {
    "device": ("dcim.device", "dcim/devices"),
    "virtual_machine": ("virtualization.virtualmachine", "virtualization/virtual-machines"),
}
# What each write needs, named when the token lacks it.
NEEDS = {"GET": "view", "POST": "add", "PATCH": "change"}


class NautobotWriter:
    """Writes row documents back to one Nautobot (see the module docstring).

    A writer caches what it looks up (the inventories, each CI's object, the
    token) for its lifetime: the sender makes a new one for each pass.
    """

    def __init__(self, ws: Workspace, entry: Writeback) -> None:
        self.ws = ws
        self.entry = entry
        self.base = entry.url.rstrip("/")
        self._token: str | None = None
        self._objects: dict[tuple[str | None, str], tuple[str, str, str] | None] = {}
        self._inventories: dict[str | None, Inventory | None] = {}

    def write(self, document: dict[str, Any]) -> list[str]:
        """Writes one document; returns the CIs skipped (not in Nautobot)."""
        if document.get("event") == COMPLIANCE_RESULT:
            return self._compliance(document)
        return self._change(document)

    # -- the two documents ------------------------------------------------------
    def _change(self, document: dict[str, Any]) -> list[str]:
        skipped = []
        for ci in document.get("cis") or ():
            found = self._object(document.get("inventory"), ci)
            if found is None:
                skipped.append(ci)
                continue
            self._note(found, document, change_note(document))
            if self.entry.last_change_field:
                value = (
                    f"{document['change_id']} {document['outcome']}"
                    f" (ledger seq {document['seq']}, {document['at']})"
                )
                self._custom_fields(found, {LAST_CHANGE_FIELD: value})
        return skipped

    def _compliance(self, document: dict[str, Any]) -> list[str]:
        ci = str(document.get("ci"))
        found = self._object(self.entry.inventory, ci)
        if found is None:
            return [ci]
        mode = self.entry.compliance
        if mode in ("journal", "both") and document.get("state") != document.get("previous"):
            self._note(found, document, compliance_note(document))
        if mode in ("custom_field", "both"):
            value = {k: document.get(k) for k in ("state", "features", "run", "seq", "at")}
            self._custom_fields(found, {COMPLIANCE_FIELD: value})
        return []

    # -- Nautobot objects ---------------------------------------------------------
    def _object(self, inventory: str | None, ci: str) -> tuple[str, str, str] | None:
        """(content type, REST path, id) of the CI's object, None: not in Nautobot."""
        key = (inventory, ci)
        if key not in self._objects:
            self._objects[key] = self._synced(inventory, ci) or self._by_name(ci)
        return self._objects[key]

    def _synced(self, inventory: str | None, ci: str) -> tuple[str, str, str] | None:
        from opskit.inventory import load_workspace_inventory

        if inventory not in self._inventories:
            try:
                self._inventories[inventory] = load_workspace_inventory(self.ws, inventory)
            except OpskitError as exc:
                self._inventories[inventory] = None  # gone: CIs are looked up by name
                log.warning(
                    "nautobot %s: inventory %s not read (%s): its CIs are looked up by name",
                    self.base,
                    inventory or "(the default)",
                    REDACTOR.redact(str(exc)),
                )
        loaded = self._inventories[inventory]
        found = loaded.cis.get(ci) if loaded is not None else None
        if found is None:
            return None
        attributes = found.attributes
        kind = OBJECT_KINDS.get(str(attributes.get("source_kind")))
        source_id = attributes.get("source_id")
        return (*kind, str(source_id)) if kind and source_id else None

    def _by_name(self, ci: str) -> tuple[str, str, str] | None:
        for content_type, path in OBJECT_KINDS.values():
            found = self._request("GET", path, params={"name": ci}).get("results") or []
            if found:
                return content_type, path, self._object_id(found[0], path)
        return None

    def _object_id(self, found: object, path: str) -> str:
        """The id of a search result; a result without one means the URL is
        not Nautobot's (one line, not a crash or a note on object "None")."""
        object_id = found.get("id") if isinstance(found, dict) else None
        if not object_id or not isinstance(object_id, str | int):
            raise OpskitError(
                f"nautobot {self.base}: {path.replace('/', '.')}: not a Nautobot answer "
                "(no object id)"
            )
        return str(object_id)

    def _note(self, found: tuple[str, str, str], document: dict[str, Any], text: str) -> None:
        content_type, _path, object_id = found
        marker = {"assigned_object_id": object_id, "note__ic": document["delivery"]}
        if self._request("GET", "extras/notes", params=marker).get("count"):
            return  # written by an earlier attempt of this row
        body = {"assigned_object_type": content_type, "assigned_object_id": object_id, "note": text}
        self._request("POST", "extras/notes", body=body)

    def _custom_fields(self, found: tuple[str, str, str], values: dict[str, Any]) -> None:
        _content_type, path, object_id = found
        self._request("PATCH", f"{path}/{object_id}", body={"custom_fields": values})

    # -- HTTP ---------------------------------------------------------------------
    def _token_value(self) -> str:
        if self._token is None:
            ref = SecretRef.parse(self.entry.token, where=f"writeback {self.base}: token")
            self._token = ref.resolve(base_dir=self.ws.root)
        return self._token

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.base}/api/{path}/"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Token {self._token_value()}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": "opskit-writeback",
            },
        )
        what = path.split("/")[0] + "." + path.split("/")[1]
        try:
            with urllib.request.urlopen(request, timeout=self.entry.timeout) as response:
                answer = response.read()
        except urllib.error.HTTPError as exc:
            raise OpskitError(self._refusal(method, what, exc)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OpskitError(f"nautobot {self.base}: unreachable ({reason})") from None
        try:
            parsed = json.loads(answer) if answer else {}
        except ValueError:
            raise OpskitError(f"nautobot {self.base}: {what}: not a JSON answer") from None
        return parsed if isinstance(parsed, dict) else {}

    def _refusal(self, method: str, what: str, exc: urllib.error.HTTPError) -> str:
        detail = _detail(exc)
        if exc.code in (401, 403):
            need = NEEDS.get(method, method.lower())
            return REDACTOR.redact(
                f"nautobot {self.base}: {what}: access refused ({exc.code}: {detail}); "
                f"the token needs permission to {need} {what}"
            )
        return REDACTOR.redact(f"nautobot {self.base}: {what}: HTTP {exc.code}: {detail}")


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"null")
    except ValueError:
        return str(exc.reason or "no detail")
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return " ".join(json.dumps(body, ensure_ascii=False).split())[:300]


def change_note(document: dict[str, Any]) -> str:
    """The journal entry of a finished change (Markdown)."""
    lines = [
        f"**opskit {document['change_id']} {document['outcome']}**: {document.get('title') or ''}",
        "",
        f"- runbook: {document.get('runbook')}",
        f"- outcome: {document['outcome']} ({document['actor']}, {document['at']})",
        f"- ledger: seq {document['seq']}, hash {document['hash']}"
        f" (`opskit audit prove {document['seq']}`)",
    ]
    if document.get("report_url"):
        lines.append(f"- evidence: {document['report_url']}")
    lines.append(f"- opskit delivery {document['delivery']}")
    return "\n".join(lines)


def compliance_note(document: dict[str, Any]) -> str:
    """The journal entry of a compliance state change (Markdown)."""
    features = document.get("features") or {}
    previous = document.get("previous")
    before = f"was {previous}" if previous else "first result"
    lines = [
        f"**opskit compliance: {document.get('state')}** ({before})",
        "",
        *(f"- {name}: {state}" for name, state in sorted(features.items())),
        f"- ledger: seq {document['seq']}, hash {document['hash']} (run {document.get('run')})",
        f"- opskit delivery {document['delivery']}",
    ]
    return "\n".join(lines)
