"""Variants of the lab's inventory for the compliance tests: the same
switches (same names, credentials and CMDB data) with some of them on a
port nobody listens on, as a device that is down."""

from __future__ import annotations

import re
import socket

from tests.fixtures.lab import LabEnv


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lab_variant(lab: LabEnv, name: str, down: list[str], spare: str | None = None) -> str:
    """Writes inventory `name` (the lab's, with the CIs in `down` on a
    closed port, and with `spare`: a copy of that CI named `<spare>-spare`)
    into the lab workspace; returns its name."""
    text = (lab.inventory_path / "lab.yaml").read_text()
    if spare is not None:
        start = text.index(f"- name: {spare}\n")
        end = text.find("\n- name:", start + 1)
        entry = text[start : len(text) if end < 0 else end]
        text = (
            text.rstrip("\n") + "\n" + entry.replace(spare, f"{spare}-spare", 1).rstrip("\n") + "\n"
        )
    for ci in down:
        port = lab.ci(ci).port
        start = text.index(f"- name: {ci}\n")
        end = text.find("\n- name:", start + 1)
        end = len(text) if end < 0 else end
        entry = re.sub(rf"port: {port}\b", f"port: {closed_port()}", text[start:end])
        text = text[:start] + entry + text[end:]
    folder = lab.ws.inventories_dir / name
    folder.mkdir(exist_ok=True)
    (folder / "lab.yaml").write_text(text)
    return name
