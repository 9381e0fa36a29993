"""Real witness processes on loopback for the tests: `opskit-witness` started
as a subprocess (``python -m opskit.witness``), configured through its own CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import opskit
from opskit.tlog.note import Verifier

SRC = Path(opskit.__file__).resolve().parents[1]
START_TIMEOUT = 30.0


def witness_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``opskit-witness ARGS`` to completion."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "opskit.witness", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@dataclass
class WitnessProcess:
    """One witness: its folder, its vkey, and (while running) its process and URL."""

    folder: Path
    name: str
    verifier: Verifier = field(init=False)
    process: subprocess.Popen[str] | None = None
    url: str = ""

    def __post_init__(self) -> None:
        result = witness_cli("init", self.folder, "--name", self.name)
        assert result.returncode == 0, result.stderr
        self.verifier = Verifier.from_vkey(result.stdout.strip())

    def add_log(self, origin: str, vkey: str) -> None:
        result = witness_cli("add-log", self.folder, "--origin", origin, "--vkey", vkey)
        assert result.returncode == 0, result.stderr

    def start(self) -> str:
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opskit.witness",
                "serve",
                str(self.folder),
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT
        line = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            line = self.process.stdout.readline() if self.process.stdout else ""
            if "listening on" in line:
                self.url = line.split()[-1]
                return self.url
        raise AssertionError(f"witness {self.name} did not start: {line!r}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
