"""Fixes to fake-switches' Cisco IOS model, applied before the reactor starts.

fake-switches 1.5.0 was written for Python 2 and an older IOS feel. These
monkey-patches make it behave like a real IOS device for the clients opskit
drives (netmiko, NAPALM's ios driver, Ansible's cisco.ios network_cli):

- the enable secret is compared as ``str`` and only the configured secret
  is accepted (stock: bytes, and an empty answer always enters enable mode);
- ``end`` leaves configuration mode from any sub-mode (stock: none, and the
  prefix match turns ``end`` into ``enable``, so netmiko stays in config mode);
- ``show privilege`` answers like IOS (Ansible's enable step relies on it);
- ``terminal ...`` is accepted in user mode (network_cli sends it before enable);
- an unknown or malformed command gets IOS's ``% Invalid input`` answer
  instead of "No such command" or a crash that ends the SSH session;
- every reply is no longer formatted into a debug log line (``repr`` of each
  write costs CPU on the single-threaded reactor serving hundreds of devices).

Only this module imports fake-switches; it runs inside the lab's own process.
"""

from __future__ import annotations

from typing import Any

from fake_switches import terminal
from fake_switches.cisco import cisco_core
from fake_switches.cisco.command_processor.config import ConfigCommandProcessor
from fake_switches.cisco.command_processor.default import DefaultCommandProcessor
from fake_switches.cisco.command_processor.enabled import EnabledCommandProcessor
from fake_switches.command_processing.shell_session import ShellSession

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


def _enabled_show(self: EnabledCommandProcessor, *args: str) -> None:
    if not args:
        self.write_line('% Type "show ?" for a list of subcommands')
        self.write_line("")
        return
    if len(args[0]) >= 4 and "privilege".startswith(args[0]):
        self.write_line("Current privilege level is 15")
        return
    try:
        _stock_enabled_show(self, *args)
    except (IndexError, ValueError):
        # e.g. `show ip` or `show running-config vlan x`: the stock code indexes blindly.
        self.write_line("% Incomplete command.")
        self.write_line("")


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
    ConfigCommandProcessor.do_end = _config_end
    cisco_core.CiscoShellSession.handle_unknown_command = _unknown_command
    ShellSession.receive = _receive
    terminal.LoggingTerminalController.write = _quiet_write
    _applied = True
