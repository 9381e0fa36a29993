"""Fixes to fake-switches' Cisco IOS model, applied before the reactor starts.

fake-switches 1.5.0 was written for Python 2 and an older IOS feel. These
monkey-patches make it behave like a real IOS device for the clients opskit
drives (netmiko, NAPALM's ios driver, Ansible's cisco.ios network_cli):

- the enable secret is compared as ``str`` and only the configured secret
  is accepted (stock: bytes, and an empty answer always enters enable mode);
- ``end`` leaves configuration mode from any sub-mode (stock: none, and the
  prefix match turns ``end`` into ``enable``, so netmiko stays in config mode);
- a global command typed in a sub-mode leaves the sub-mode, and an EXEC
  command in config mode is invalid input (stock: both printed no prompt,
  so clients hung until their read timeout);
- ``show interfaces`` answers like IOS (ports and SVIs; see ``ios_interfaces``);
- ``show privilege`` answers like IOS (Ansible's enable step relies on it);
- ``write memory`` keeps a copy that ``show startup-config`` prints (stock:
  no startup configuration at all), so saving can be verified;
- ``terminal ...`` is accepted in user mode (network_cli sends it before enable);
- an unknown or malformed command gets IOS's ``% Invalid input`` answer
  instead of "No such command" or a crash that ends the SSH session;
- every reply is no longer formatted into a debug log line (``repr`` of each
  write costs CPU on the single-threaded reactor serving hundreds of devices);
- local users: ``username NAME [privilege N] secret|password ...`` and
  ``no username NAME`` (stock: unknown). A secret is kept only as its IOS
  type 9 (scrypt) hash, which ``show running-config`` prints like IOS
  (``username NAME privilege 15 secret 9 $9$...``); ``verify_local_user``
  lets the lab's SSH server log such a user in.

Only this module imports fake-switches; it runs inside the lab's own process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fake_switches import terminal
from fake_switches.cisco import cisco_core
from fake_switches.cisco.command_processor.config import ConfigCommandProcessor
from fake_switches.cisco.command_processor.default import DefaultCommandProcessor
from fake_switches.cisco.command_processor.enabled import (
    EnabledCommandProcessor,
    build_running_interface,
    build_running_vlan,
    build_static_routes,
)
from fake_switches.command_processing.base_command_processor import BaseCommandProcessor
from fake_switches.command_processing.shell_session import ShellSession

from opskit.lab.ios_interfaces import InterfaceView, show_interfaces

_applied = False


def _invalid_input(processor: Any) -> None:
    processor.write_line("% Invalid input detected at '^' marker.")
    processor.write_line("")


def _continue_enabling(self: DefaultCommandProcessor, line: str) -> None:
    self.replace_input = False
    passwords = [
        p.decode() if isinstance(p, bytes) else p
        for p in self.switch_configuration.privileged_passwords
    ]
    # Real IOS: an empty answer only works when no enable secret is set.
    if line in passwords or (line == "" and not any(passwords)):
        self.move_to(self.enabled_processor)
    else:
        self.write_line("% Access denied")
        self.write_line("")


def _user_show(self: DefaultCommandProcessor, *args: str) -> None:
    if args and len(args[0]) >= 4 and "privilege".startswith(args[0]):
        self.write_line("Current privilege level is 1")
    else:
        _invalid_input(self)


def _user_terminal(self: DefaultCommandProcessor, *args: str) -> None:
    """`terminal length 0` / `terminal width N` work in user mode on IOS."""


_stock_enabled_show = EnabledCommandProcessor.do_show
_STOCK_SHOW_TOPICS = ("running-config", "vlan", "etherchannel", "ip", "version")


def _show_interfaces(self: EnabledCommandProcessor) -> None:
    """`show interfaces` (stock: invalid input), laid out as real IOS prints it."""
    config = self.switch_configuration
    views = [
        InterfaceView(port.name, port.description, bool(port.shutdown))
        for port in config.get_physical_ports()
    ]
    for port in config.get_vlan_ports():
        address = str(port.ips[0]) if port.ips else None
        views.append(InterfaceView(port.name, port.description, bool(port.shutdown), address, True))
    for line in show_interfaces(views):
        self.write_line(line)


def _running_lines(self: EnabledCommandProcessor) -> list[str]:
    """The lines `show running-config` prints, captured instead of written."""
    captured: list[str] = []
    self.write_line = captured.append  # instance attribute shadows the method
    try:
        self.show_run()
    finally:
        del self.write_line
    return captured


def _enabled_write(self: EnabledCommandProcessor, *args: str) -> None:
    """`write memory` / `copy running-config startup-config`: keeps a startup copy."""
    self.write_line("Building configuration...")
    lines = _running_lines(self)
    config = lines[lines.index("version 12.1") :] if "version 12.1" in lines else lines
    self.switch_configuration.opskit_startup_config = config
    self.switch_configuration.commit()
    self.write_line("[OK]")


def _show_startup(self: EnabledCommandProcessor) -> None:
    config = getattr(self.switch_configuration, "opskit_startup_config", None)
    if config is None:
        self.write_line("startup-config is not present")
        return
    self.write_line(f"Using {len(chr(10).join(config))} out of 524288 bytes")
    for line in config:
        self.write_line(line)


def _enabled_show(self: EnabledCommandProcessor, *args: str) -> None:
    if not args:
        self.write_line('% Type "show ?" for a list of subcommands')
        self.write_line("")
        return
    if len(args[0]) >= 4 and "privilege".startswith(args[0]):
        self.write_line("Current privilege level is 15")
        return
    if len(args[0]) >= 3 and "startup-config".startswith(args[0]):
        _show_startup(self)
        return
    if len(args[0]) >= 5 and "interfaces".startswith(args[0]) and len(args) == 1:
        _show_interfaces(self)
        return
    if not any(topic.startswith(args[0]) for topic in _STOCK_SHOW_TOPICS):
        _invalid_input(self)
        return
    try:
        _stock_enabled_show(self, *args)
    except (IndexError, ValueError):
        # e.g. `show ip` or `show running-config vlan x`: the stock code indexes blindly.
        self.write_line("% Incomplete command.")
        self.write_line("")


_stock_parse = BaseCommandProcessor.parse_and_execute_command


def _config_parse(self: ConfigCommandProcessor, line: str) -> bool:
    """A global command typed in a sub-mode (`interface`, `vlan`) leaves that
    sub-mode, as on IOS. Stock: the sub-mode stays, so no prompt is printed
    and the client waits for one forever."""
    previous = self.sub_processor
    handled = _stock_parse(self, line)
    if handled and previous is not None and self.sub_processor is previous:
        self.sub_processor = None
    return handled


def _exec_parse(self: BaseCommandProcessor, line: str) -> bool:
    """EXEC commands are not configuration commands: in config mode they are
    invalid input (stock: they ran, and no prompt followed)."""
    if self.sub_processor is not None:
        return False
    return _stock_parse(self, line)


def _config_end(self: ConfigCommandProcessor, *args: str) -> None:
    """`end` (or Ctrl-Z) returns to privileged EXEC mode from any config sub-mode."""
    self.is_done = True


def _unknown_command(self: cisco_core.CiscoShellSession, line: str) -> None:
    controller = self.command_processor.terminal_controller
    controller.write("% Invalid input detected at '^' marker.\n\n")


_stock_receive = ShellSession.receive  # kept before apply_patches() replaces it


def _receive(self: ShellSession, line: str) -> bool:
    try:
        return _stock_receive(self, line)
    except Exception:
        self.command_processor.logger.exception("command failed: %s", line.split(" ", 1)[0])
        processor = self.command_processor
        while processor.sub_processor is not None:
            processor = processor.sub_processor
        processor.continue_to(None)
        processor.finish_piping()
        self.command_processor.terminal_controller.write(
            "% Invalid input detected at '^' marker.\n\n"
        )
        self.command_processor.show_prompt()
        return True


# --- local users -----------------------------------------------------------

# Cisco's type 8/9 hashes use the crypt(3) alphabet in place of base64's.
_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_CRYPT = str.maketrans(_B64_ALPHABET, _CRYPT_ALPHABET)
# Type 7 (`service password-encryption`) is the well-known reversible XOR.
_TYPE7_KEY = b"dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87"


def type9_hash(secret: str, salt: str | None = None) -> str:
    """IOS `secret 9`: scrypt (N=16384, r=1, p=1) over a 14-character salt."""
    salt = salt or "".join(secrets.choice(_CRYPT_ALPHABET) for _ in range(14))
    digest = hashlib.scrypt(secret.encode(), salt=salt.encode(), n=16384, r=1, p=1, dklen=32)
    encoded = base64.b64encode(digest).decode().rstrip("=").translate(_TO_CRYPT)
    return f"$9${salt}${encoded}"


def _type7(password: str) -> str:
    seed = secrets.randbelow(16)
    return f"{seed:02d}" + "".join(
        f"{ord(char) ^ _TYPE7_KEY[(seed + i) % len(_TYPE7_KEY)]:02X}"
        for i, char in enumerate(password)
    )


def _untype7(encoded: str) -> str | None:
    try:
        seed = int(encoded[:2])
        pairs = [int(encoded[i : i + 2], 16) for i in range(2, len(encoded), 2)]
    except ValueError:
        return None
    return "".join(chr(b ^ _TYPE7_KEY[(seed + i) % len(_TYPE7_KEY)]) for i, b in enumerate(pairs))


@dataclass
class LocalUser:
    """One `username` entry. Only hashes (or type 7, as IOS with
    `service password-encryption`) are kept: never the clear text."""

    name: str
    privilege: int | None = None
    kind: str | None = None  # "secret", "password", "nopassword" or None (not set)
    encryption: str = ""  # "9", "5", "8" for secrets; "7" for passwords
    value: str = ""

    def line(self) -> str:
        words = ["username", self.name]
        if self.privilege is not None and self.privilege != 1:
            words += ["privilege", str(self.privilege)]
        if self.kind == "nopassword":
            words.append("nopassword")
        elif self.kind is not None:
            words += [self.kind, self.encryption, self.value]
        return " ".join(words)

    def accepts(self, password: str) -> bool:
        if self.kind == "password" and self.encryption == "7":
            clear = _untype7(self.value)
            return clear is not None and hmac.compare_digest(clear, password)
        if self.kind == "secret" and self.encryption == "9" and self.value.count("$") == 3:
            salt = self.value.split("$")[2]
            return hmac.compare_digest(type9_hash(password, salt), self.value)
        return False  # type 5/8 hashes are kept as given but not verified here


def local_users(switch_configuration: Any) -> dict[str, LocalUser]:
    users: dict[str, LocalUser] | None = getattr(switch_configuration, "opskit_users", None)
    if users is None:
        users = switch_configuration.opskit_users = {}
    return users


def verify_local_user(switch_configuration: Any, name: str, password: str) -> bool:
    """True when ``name`` is a local user of this switch whose password or secret
    is ``password`` (the lab's SSH server asks this for every login)."""
    user = local_users(switch_configuration).get(name)
    return user is not None and user.accepts(password)


def _incomplete(processor: Any) -> None:
    processor.write_line("% Incomplete command.")
    processor.write_line("")


def _config_username(self: ConfigCommandProcessor, *args: str) -> None:
    """`username NAME [privilege N] [secret [0|5|8|9] S | password [0|7] P | nopassword]`.
    An existing user keeps what the line does not set, as on IOS."""
    if not args:
        _incomplete(self)
        return
    name, words = args[0], list(args[1:])
    if not words:
        _incomplete(self)
        return
    privilege: int | None = None
    credential: tuple[str | None, str, str] | None = None
    while words:
        keyword = words.pop(0)
        if keyword == "privilege":
            if not words:
                _incomplete(self)
                return
            if not words[0].isdigit() or not 0 <= int(words[0]) <= 15:
                _invalid_input(self)
                return
            privilege = int(words.pop(0))
        elif keyword in ("secret", "password"):
            types = ("0", "5", "8", "9") if keyword == "secret" else ("0", "7")
            encryption = words.pop(0) if len(words) > 1 and words[0] in types else "0"
            if not words:
                _incomplete(self)
                return
            # The rest of the line is the secret (it may hold spaces).
            given, words = " ".join(words), []
            if encryption == "0":
                credential = (
                    (keyword, "9", type9_hash(given))
                    if keyword == "secret"
                    else (keyword, "7", _type7(given))
                )
            else:
                credential = (keyword, encryption, given)
        elif keyword == "nopassword":
            credential = ("nopassword", "", "")
        else:
            _invalid_input(self)
            return
    users = local_users(self.switch_configuration)
    user = users.setdefault(name, LocalUser(name))
    if privilege is not None:
        user.privilege = privilege
    if credential is not None:
        user.kind, user.encryption, user.value = credential


def _config_no_username(self: ConfigCommandProcessor, *args: str) -> None:
    """`no username NAME [...]` removes the user (IOS ignores what follows the name)."""
    if not args:
        _incomplete(self)
        return
    local_users(self.switch_configuration).pop(args[0], None)


def _show_run(self: EnabledCommandProcessor) -> None:
    """The stock `show running-config`, with the local users where IOS puts them
    (after the hostname, before the VLANs)."""
    configuration = self.switch_configuration
    all_data = ["version 12.1", "!", f"hostname {configuration.name}", "!", "!"]
    users = local_users(configuration)
    if users:
        all_data += [*(user.line() for user in users.values()), "!"]
    for vlan in configuration.vlans:
        all_data += [*build_running_vlan(vlan), "!"]
    for interface in configuration.get_physical_ports() + configuration.get_vlan_ports():
        all_data += [*build_running_interface(interface), "!"]
    if configuration.static_routes:
        all_data += [build_static_routes(route) for route in configuration.static_routes]
        all_data.append("!")
    all_data += ["end", ""]
    self.write_line("Building configuration...")
    self.write_line("")
    size = len("\n".join(all_data)) + 1
    self.write_line(f"Current configuration : {size} bytes")
    for line in all_data:
        self.write_line(line)


def _quiet_write(self: terminal.LoggingTerminalController, text: str) -> None:
    return self.terminal_controller.write(text)


def apply_patches() -> None:
    """Installs the fixes (idempotent)."""
    global _applied
    if _applied:
        return
    DefaultCommandProcessor.continue_enabling = _continue_enabling
    DefaultCommandProcessor.do_show = _user_show
    DefaultCommandProcessor.do_terminal = _user_terminal
    EnabledCommandProcessor.do_show = _enabled_show
    EnabledCommandProcessor.do_write = _enabled_write
    ConfigCommandProcessor.do_end = _config_end
    ConfigCommandProcessor.do_username = _config_username
    ConfigCommandProcessor.do_no_username = _config_no_username
    EnabledCommandProcessor.show_run = _show_run
    ConfigCommandProcessor.parse_and_execute_command = _config_parse
    EnabledCommandProcessor.parse_and_execute_command = _exec_parse
    DefaultCommandProcessor.parse_and_execute_command = _exec_parse
    cisco_core.CiscoShellSession.handle_unknown_command = _unknown_command
    ShellSession.receive = _receive
    terminal.LoggingTerminalController.write = _quiet_write
    _applied = True
