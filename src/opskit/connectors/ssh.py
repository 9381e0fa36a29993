"""paramiko's per-packet MAC comparison, in C.

paramiko compares the MAC of every SSH packet it reads with
`paramiko.util.constant_time_bytes_eq`, a Python loop over the MAC's 32
bytes: about 9 us a packet. CLI devices send many small packets (IOS echoes
each typed character in a packet of its own), so on a fan-out that loop is
a sizeable share of the client's CPU: about 0.6 s for 200 lab devices, some
65,000 packets (`bench/fanout.py`; docs/connectors.md, "The SSH transport"). The client
is one Python process held to one core by the GIL, so that CPU is wall time.

The standard library has the same comparison in C: `hmac.compare_digest`
(constant time, False for different lengths), about 0.15 us. `tune_paramiko()`
puts it in place, once per process, when a connector that speaks SSH through
paramiko is loaded. It replaces only paramiko's own pure-Python function (a
paramiko that has changed it, or code that has replaced it, is left alone),
and OPSKIT_STOCK_PARAMIKO=1 turns it off.

`quiet_library_logs()` keeps the SSH libraries' own log records off stderr.
paramiko's transport thread logs every failed handshake (a port that accepts
and closes, or never sends a banner) as a dozen-line traceback at ERROR, and
with no handler configured Python's last-resort handler prints it: dozens of
lines for one unreachable host, which the connector already reports as one
`ConnectorError` naming the host. The records are re-logged at DEBUG on
`opskit.connectors.transport` (OPSKIT_DEBUG=1 shows them, see opskit.cli).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading

STOCK_ENV = "OPSKIT_STOCK_PARAMIKO"

#: The libraries under the SSH/NETCONF connectors whose records go to DEBUG.
LIBRARY_LOGGERS = ("paramiko", "netmiko", "napalm", "ncclient")
TRANSPORT_LOG = logging.getLogger("opskit.connectors.transport")

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


class _DemoteToDebug(logging.Handler):
    """Re-logs a library record at DEBUG on `TRANSPORT_LOG`, traceback included."""

    def emit(self, record: logging.LogRecord) -> None:
        if TRANSPORT_LOG.isEnabledFor(logging.DEBUG):
            TRANSPORT_LOG.debug(
                "%s: %s", record.name, record.getMessage(), exc_info=record.exc_info
            )


_DEMOTE = _DemoteToDebug()


def quiet_library_logs() -> None:
    """Routes the SSH libraries' records to DEBUG instead of stderr (idempotent)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _DEMOTE not in logger.handlers:
            logger.addHandler(_DEMOTE)
        # Not to the root logger's handlers either: the host's failure is
        # reported once, as the connector's error.
        logger.propagate = False


__all__ = ["LIBRARY_LOGGERS", "STOCK_ENV", "TRANSPORT_LOG", "quiet_library_logs", "tune_paramiko"]
