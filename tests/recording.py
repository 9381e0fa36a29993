"""A stand-in for the change engine's recorder callback, for executor tests:
keeps every event in order and, given a ledger, appends it there for real."""

from __future__ import annotations

import json
from typing import Any

from opskit.ledger import Ledger


class Recorder:
    """What the change engine's recorder receives, in order."""

    def __init__(self, ledger: Ledger | None = None, *, change_id: str = "CHG-TEST") -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        self.ledger = ledger
        self.change_id = change_id

    def __call__(self, kind: str, payload: dict[str, Any], blobs: dict[str, Any] | None) -> None:
        self.events.append((kind, payload, blobs))
        if self.ledger is not None:
            self.ledger.append(
                kind,
                actor="tester",
                payload=payload,
                change_id=self.change_id,
                ci=payload["ci"],
                blobs=blobs,
            )

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]

    def get(self, kind: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        for k, payload, blobs in self.events:
            if k == kind:
                return payload, blobs
        raise AssertionError(f"no {kind} in {self.kinds}")

    def dump(self) -> str:
        return json.dumps(self.events, default=str)
