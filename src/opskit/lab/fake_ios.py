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
- ``show privilege`` answers like IOS (Ansible's enable step relies on it);
- ``write memory`` keeps a copy that ``show startup-config`` prints (stock:
  no startup configuration at all), so saving can be verified;
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
from fake_switches.command_processing.base_command_processor import BaseCommandProcessor
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
_STOCK_SHOW_TOPICS = ("running-config", "vlan", "etherchannel", "ip", "version")


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
    ConfigCommandProcessor.parse_and_execute_command = _config_parse
    EnabledCommandProcessor.parse_and_execute_command = _exec_parse
    DefaultCommandProcessor.parse_and_execute_command = _exec_parse
    cisco_core.CiscoShellSession.handle_unknown_command = _unknown_command
    ShellSession.receive = _receive
    terminal.LoggingTerminalController.write = _quiet_write
    _applied = True
