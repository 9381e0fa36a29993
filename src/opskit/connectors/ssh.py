"""paramiko's per-packet MAC comparison, in C.

paramiko compares the MAC of every SSH packet it reads with
`paramiko.util.constant_time_bytes_eq`, a Python loop over the MAC's 32
bytes: about 9 us a packet. CLI devices send many small packets (IOS echoes
each typed character in a packet of its own), so on a fan-out that loop is
a sizeable share of the client's CPU: about 0.6 s for 200 lab devices, some
65,000 packets (`bench/fanout.py`; README, "The SSH transport"). The client
is one Python process held to one core by the GIL, so that CPU is wall time.

The standard library has the same comparison in C: `hmac.compare_digest`
(constant time, False for different lengths), about 0.15 us. `tune_paramiko()`
puts it in place, once per process, when a connector that speaks SSH through
paramiko is loaded. It replaces only paramiko's own pure-Python function (a
paramiko that has changed it, or code that has replaced it, is left alone),
and OPSKIT_STOCK_PARAMIKO=1 turns it off.
"""

from __future__ import annotations

import hmac
import os
import threading

STOCK_ENV = "OPSKIT_STOCK_PARAMIKO"

_lock = threading.Lock()
_tuned: bool | None = None


def tune_paramiko() -> bool:
    """Puts the C comparison in place; True when it is (idempotent, thread-safe)."""
    global _tuned
    if _tuned is None:
        with _lock:
            if _tuned is None:
                _tuned = _install()
    return _tuned


def _install() -> bool:
    if os.environ.get(STOCK_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    import paramiko.util

    if getattr(paramiko.util.constant_time_bytes_eq, "__module__", None) != "paramiko.util":
        return False  # not paramiko's own any more: someone else decided
    # packet.py looks it up at every packet (`util.constant_time_bytes_eq`),
    # so replacing the module attribute suffices.
    paramiko.util.constant_time_bytes_eq = hmac.compare_digest
    return True


__all__ = ["STOCK_ENV", "tune_paramiko"]
