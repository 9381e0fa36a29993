"""`show interfaces` for the emulated IOS switches, in real IOS's layout.

fake-switches has no `show interfaces`. The layout below follows real
captures (ntc-templates' cisco_ios show_interfaces samples): physical ports
print the full Ethernet counter block, SVIs (``Vlan1``) the shorter one, for
which ntc-templates reports no ``output_errors`` — the case the inspection
runbook's thresholds must treat as "not reported". Counters are zero.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InterfaceView:
    name: str
    description: str | None
    shutdown: bool
    address: str | None = None  # "10.0.0.1/24" (SVIs)
    svi: bool = False


_PHYSICAL_COUNTERS = (
    "  MTU 1500 bytes, BW 100000 Kbit/sec, DLY 100 usec,",
    "     reliability 255/255, txload 1/255, rxload 1/255",
    "  Encapsulation ARPA, loopback not set",
    "  Keepalive set (10 sec)",
    "  Full-duplex, 100Mb/s, media type is 10/100BaseTX",
    "  input flow-control is off, output flow-control is unsupported",
    "  ARP type: ARPA, ARP Timeout 04:00:00",
    "  Last input never, output never, output hang never",
    '  Last clearing of "show interface" counters never',
    "  Input queue: 0/75/0/0 (size/max/drops/flushes); Total output drops: 0",
    "  Queueing strategy: fifo",
    "  Output queue: 0/40 (size/max)",
    "  5 minute input rate 0 bits/sec, 0 packets/sec",
    "  5 minute output rate 0 bits/sec, 0 packets/sec",
    "     0 packets input, 0 bytes, 0 no buffer",
    "     Received 0 broadcasts (0 multicasts)",
    "     0 runts, 0 giants, 0 throttles",
    "     0 input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored",
    "     0 watchdog, 0 multicast, 0 pause input",
    "     0 input packets with dribble condition detected",
    "     0 packets output, 0 bytes, 0 underruns",
    "     0 output errors, 0 collisions, 0 interface resets",
    "     0 unknown protocol drops",
    "     0 babbles, 0 late collision, 0 deferred",
    "     0 lost carrier, 0 no carrier, 0 pause output",
    "     0 output buffer failures, 0 output buffers swapped out",
)

_SVI_COUNTERS = (
    "  MTU 1500 bytes, BW 1000000 Kbit/sec, DLY 10 usec,",
    "     reliability 255/255, txload 1/255, rxload 1/255",
    "  Encapsulation ARPA, loopback not set",
    "  Keepalive not supported",
    "  ARP type: ARPA, ARP Timeout 04:00:00",
    "  Last input never, output never, output hang never",
    '  Last clearing of "show interface" counters never',
    "  Input queue: 0/75/0/0 (size/max/drops/flushes); Total output drops: 0",
    "  Queueing strategy: fifo",
    "  Output queue: 0/40 (size/max)",
    "  5 minute input rate 0 bits/sec, 0 packets/sec",
    "  5 minute output rate 0 bits/sec, 0 packets/sec",
    "     0 packets input, 0 bytes, 0 no buffer",
    "     Received 0 broadcasts (0 IP multicasts)",
    "     0 runts, 0 giants, 0 throttles",
    "     0 input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored",
    "     0 packets output, 0 bytes, 0 underruns",
    "     0 output errors, 0 interface resets",
    "     0 unknown protocol drops",
    "     0 output buffer failures, 0 output buffers swapped out",
)


def _mac(index: int) -> str:
    return f"fa16.3e00.{index:04x}"


def _state(view: InterfaceView) -> str:
    if view.shutdown:
        return f"{view.name} is administratively down, line protocol is down (disabled)"
    if view.svi:
        return f"{view.name} is up, line protocol is up"
    return f"{view.name} is up, line protocol is up (connected)"


def _physical(view: InterfaceView, index: int) -> list[str]:
    mac = _mac(index)
    lines = [_state(view), f"  Hardware is Fast Ethernet, address is {mac} (bia {mac})"]
    if view.description:
        lines.append(f"  Description: {view.description}")
    return [*lines, *_PHYSICAL_COUNTERS]


def _svi(view: InterfaceView, index: int) -> list[str]:
    mac = _mac(index)
    lines = [_state(view), f"  Hardware is Ethernet SVI, address is {mac} (bia {mac})"]
    if view.description:
        lines.append(f"  Description: {view.description}")
    if view.address:
        lines.append(f"  Internet address is {view.address}")
    return [*lines, *_SVI_COUNTERS]


def show_interfaces(views: list[InterfaceView]) -> list[str]:
    lines: list[str] = []
    for index, view in enumerate(views, 1):
        lines += _svi(view, index) if view.svi else _physical(view, index)
    return lines
