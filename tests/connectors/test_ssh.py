"""paramiko's MAC comparison in C (opskit.connectors.ssh): same verdicts,
tampered packets still refused, the opt-out honoured, and real sessions work."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys

import paramiko.util
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from paramiko.message import Message
from paramiko.packet import Packetizer
from paramiko.ssh_exception import SSHException

import opskit.connectors.netmiko  # noqa: F401  (loading a paramiko connector tunes it)
from opskit.connectors.ssh import STOCK_ENV, tune_paramiko


def test_loading_the_netmiko_connector_puts_the_c_comparison_in_place() -> None:
    assert tune_paramiko() is True
    assert paramiko.util.constant_time_bytes_eq is hmac.compare_digest


# Fixed values: test ids must be the same in every xdist worker.
MAC32 = hashlib.sha256(b"mac").digest()
MAC20 = hashlib.sha1(b"mac").digest()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (b"\x00" * 32, b"\x00" * 32),
        (MAC32, None),
        (b"abc", b"abd"),
        (b"abc", b"abcd"),
        (b"", b""),
        (MAC20, None),
    ],
    ids=["zeros", "sha256", "differ", "lengths", "empty", "sha1"],
)
def test_same_verdict_as_paramikos_loop(a: bytes, b: bytes | None) -> None:
    from paramiko.hostkeys import constant_time_bytes_eq as stock  # bound before tuning

    assert stock.__module__ == "paramiko.util"
    b = bytes(a) if b is None else b
    assert paramiko.util.constant_time_bytes_eq(a, b) is stock(a, b)
    flipped = bytes([a[0] ^ 1]) + a[1:] if a else b"x"
    assert paramiko.util.constant_time_bytes_eq(a, flipped) is stock(a, flipped) is False


def _packetizers() -> tuple[Packetizer, socket.socket, socket.socket, Packetizer]:
    """A sender and a receiver with the same AES-CTR keys and HMAC-SHA256,
    joined through a relay the test controls (to alter bytes in transit)."""
    send_sock, relay_in = socket.socketpair()
    relay_out, receive_sock = socket.socketpair()
    key, iv, mac_key = os.urandom(16), os.urandom(16), os.urandom(32)
    sender, receiver = Packetizer(send_sock), Packetizer(receive_sock)
    aes = algorithms.AES(key)
    sender.set_outbound_cipher(
        Cipher(aes, modes.CTR(iv)).encryptor(), 16, hashlib.sha256, 32, mac_key, sdctr=True
    )
    receiver.set_inbound_cipher(
        Cipher(aes, modes.CTR(iv)).decryptor(), 16, hashlib.sha256, 32, mac_key
    )
    for sock in (relay_in, receive_sock):
        sock.settimeout(5)
    return sender, relay_in, relay_out, receiver


def _relay(relay_in: socket.socket, relay_out: socket.socket, tamper: int | None) -> None:
    data = bytearray(relay_in.recv(65536))
    if tamper is not None:
        data[tamper] ^= 0x01
    relay_out.sendall(bytes(data))


def _message() -> Message:
    m = Message()
    m.add_byte(bytes([94]))  # MSG_CHANNEL_DATA
    m.add_int(0)
    m.add_string(b"show running-config\r\n")
    return m


def test_an_intact_packet_is_accepted() -> None:
    sender, relay_in, relay_out, receiver = _packetizers()
    sender.send_message(_message())
    _relay(relay_in, relay_out, tamper=None)
    ptype, m = receiver.read_message()
    assert ptype == 94 and m.get_int() == 0 and m.get_binary() == b"show running-config\r\n"


@pytest.mark.parametrize("where", [-1, -32, 20])  # the MAC's last and first byte; the payload
def test_a_tampered_packet_is_refused(where: int) -> None:
    sender, relay_in, relay_out, receiver = _packetizers()
    sender.send_message(_message())
    _relay(relay_in, relay_out, tamper=where)
    with pytest.raises(SSHException, match="Mismatched MAC"):
        receiver.read_message()


def test_the_opt_out_keeps_paramikos_own_function() -> None:
    code = (
        "import opskit.connectors.netmiko, paramiko.util, hmac;"
        "print(paramiko.util.constant_time_bytes_eq is hmac.compare_digest,"
        " paramiko.util.constant_time_bytes_eq.__module__)"
    )
    env = {**os.environ, STOCK_ENV: "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "paramiko.util"]


def test_a_function_replaced_by_someone_else_is_left_alone() -> None:
    code = (
        "import paramiko.util\n"
        "def mine(a, b): return a == b\n"
        "paramiko.util.constant_time_bytes_eq = mine\n"
        "from opskit.connectors.ssh import tune_paramiko\n"
        "print(tune_paramiko(), paramiko.util.constant_time_bytes_eq is mine)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != STOCK_ENV}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "True"]


@pytest.mark.lab
def test_sessions_to_the_lab_work_with_it(lab) -> None:
    """A real SSH session (Twisted conch, hmac-sha2) through the tuned paramiko."""
    from opskit.connectors.netmiko import NetmikoConnector

    assert paramiko.util.constant_time_bytes_eq is hmac.compare_digest
    with NetmikoConnector(lab.switch) as conn:
        config = conn.get_config()
    assert "hostname" in config
