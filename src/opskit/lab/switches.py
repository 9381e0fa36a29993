"""The lab's device process: N emulated Cisco IOS switches (and optionally
Juniper NETCONF devices) in one Twisted reactor.

Run as ``python -m opskit.lab.switches --state-dir DIR --devices N``. Every
switch listens on 127.0.0.1 (or `--address`, e.g. a site's address inside a
network namespace) on a port the kernel picks (so parallel labs never
collide); once all listen, the process writes ``DIR/switches.ready.json``
(name -> port) atomically, which `opskit.lab.Lab` waits for. Secrets come from
files (never the command line, which other users can read in /proc).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

READY_FILE = "switches.ready.json"
JUNOS_MODEL = "juniper_generic"


def switch_names(prefix: str, count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"{prefix}{index:0{width}d}" for index in range(1, count + 1)]


def _read_secret(path: str) -> str:
    return Path(path).read_text().rstrip("\r\n")


def serve(
    state_dir: Path,
    *,
    devices: int,
    prefix: str,
    model: str,
    junos: int = 0,
    junos_prefix: str = "lab-jun",
    username: str,
    password: str,
    enable_secret: str,
    owner_pid: int | None = None,
    address: str = "127.0.0.1",
) -> None:
    from fake_switches import switch_factory
    from fake_switches.transports.ssh_service import SSHDemoRealm, getRSAKeys
    from twisted.conch.ssh import factory, keys
    from twisted.cred import portal
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from opskit.lab.fake_ios import apply_patches

    apply_patches()
    public_key, private_key = getRSAKeys()
    host_keys = (
        {b"ssh-rsa": keys.Key.fromString(data=public_key.encode())},
        {b"ssh-rsa": keys.Key.fromString(data=private_key.encode())},
    )
    factory_of_cores = switch_factory.SwitchFactory()
    ports: dict[str, int] = {}
    kinds: dict[str, str] = {}
    wanted = [(name, model, "ios") for name in switch_names(prefix, devices)]
    # Juniper: NETCONF over the SSH "netconf" subsystem (its CLI shell does not work).
    wanted += [(name, JUNOS_MODEL, "junos") for name in switch_names(junos_prefix, junos)]
    for name, core_model, kind in wanted:
        core = factory_of_cores.get(core_model, name, enable_secret)
        kinds[name] = kind
        ssh_factory = factory.SSHFactory()
        ssh_factory.portal = portal.Portal(SSHDemoRealm(core))
        ssh_factory.portal.registerChecker(_login_checker(core, username, password))
        ssh_factory.publicKeys, ssh_factory.privateKeys = host_keys
        listening = reactor.listenTCP(0, ssh_factory, interface=address, backlog=256)
        ports[name] = listening.getHost().port

    ready = state_dir / READY_FILE
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"pid": os.getpid(), "model": model, "devices": ports, "kinds": kinds})
    )
    tmp.replace(ready)
    logging.getLogger("opskit.lab").warning("%d switches listening", len(ports))

    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    LoopingCall(_watch, state_dir, owner_pid, reactor).start(2.0, now=False)
    reactor.run(installSignalHandlers=False)


def _login_checker(core: object, username: str, password: str) -> object:
    """The lab's login, or any local user configured on this switch
    (`username NAME secret ...`), as with `login local` on IOS."""
    import hmac

    from twisted.cred import credentials, error
    from twisted.cred.checkers import ICredentialsChecker
    from twisted.internet import defer
    from zope.interface import implementer

    from opskit.lab.fake_ios import verify_local_user

    @implementer(ICredentialsChecker)
    class LabLogin:
        credentialInterfaces = (credentials.IUsernamePassword,)

        def requestAvatarId(self, given: credentials.IUsernamePassword) -> defer.Deferred:
            name = given.username.decode(errors="replace")
            typed = given.password.decode(errors="replace")
            if name == username and hmac.compare_digest(typed, password):
                return defer.succeed(given.username)
            if verify_local_user(core.switch_configuration, name, typed):  # type: ignore[attr-defined]
                return defer.succeed(given.username)
            return defer.fail(error.UnauthorizedLogin())

    return LabLogin()


def _watch(state_dir: Path, owner_pid: int | None, reactor: object) -> None:
    """Stops the lab when its workspace state is deleted, or when the process
    it is tied to (a test session) has gone: no emulator outlives its owner."""
    owner_gone = owner_pid is not None and not Path(f"/proc/{owner_pid}").exists()
    if owner_gone or not (state_dir / READY_FILE).exists():
        logging.getLogger("opskit.lab").warning("owner or state gone; stopping")
        reactor.stop()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opskit.lab.switches")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--prefix", default="lab-sw")
    parser.add_argument("--model", default="cisco_generic")
    parser.add_argument("--junos", type=int, default=0, help="Juniper NETCONF devices")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--enable-secret-file", required=True)
    parser.add_argument("--owner-pid", type=int, help="stop when this process is gone")
    parser.add_argument("--address", default="127.0.0.1", help="listen address")
    args = parser.parse_args(argv)
    # fake-switches logs every line at DEBUG; WARNING keeps the reactor fast
    # and keeps typed secrets out of the log.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    serve(
        args.state_dir,
        devices=args.devices,
        prefix=args.prefix,
        model=args.model,
        junos=args.junos,
        username=args.username,
        password=_read_secret(args.password_file),
        enable_secret=_read_secret(args.enable_secret_file),
        owner_pid=args.owner_pid,
        address=args.address,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
