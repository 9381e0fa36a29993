"""Process helpers shared by the lab and the change engine."""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """True when process `pid` exists and is not a zombie (killed, not yet
    reaped), whether or not we may signal it."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
