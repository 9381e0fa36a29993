"""Ask a C2SP tlog witness to cosign a checkpoint (the client side of tlog-witness).

`submit` posts one add-checkpoint body to ``<prefix>/add-checkpoint`` and
returns a typed result, never raising for what the network or the witness does:

- `Cosigned`: the witness's cosignature line(s), each verified with the
  witness key the caller pinned (a line that does not verify is not returned;
  none verifying makes the answer a `Refused`);
- `Conflict`: 409, the witness last cosigned another size (``size``), so the
  consistency proof must start there;
- `Refused`: any other answer (400, 403, 404, 422...) with its one-line reason;
- `Unreachable`: no answer within the timeout, connection refused, DNS...

`cosign` wraps it for a log: it starts from the size the log believes the
witness holds, and on a `Conflict` with a smaller size retries once with a
proof from that size (``prove(old_size)`` gives the consistency hashes).

Example:

    >>> result = cosign("http://127.0.0.1:7380", witness_vkey, note, prove, known_size=41)
    >>> result
    Cosigned(witness='witness.example/w1+0e4a1b22', signatures=(Signature(...),), old_size=41)
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from opskit.tlog.checkpoint import parse_checkpoint
from opskit.tlog.note import Note, NoteError, Signature, Verifier, parse_signature_line
from opskit.tlog.proof import ConsistencyProof

DEFAULT_TIMEOUT = 10.0
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class Cosigned:
    """Verified cosignature(s) by the witness, for a request from `old_size`."""

    witness: str
    signatures: tuple[Signature, ...]
    old_size: int


@dataclass(frozen=True)
class Conflict:
    """409: the witness's latest cosigned size is `size`, not the one sent."""

    witness: str
    size: int


@dataclass(frozen=True)
class Refused:
    """The witness refused (`status`); `reason` is its one-line answer."""

    witness: str
    status: int
    reason: str


@dataclass(frozen=True)
class Unreachable:
    """No answer: `reason` says what the network said."""

    witness: str
    reason: str


WitnessResult = Cosigned | Conflict | Refused | Unreachable


def _one_line(data: bytes, limit: int = 200) -> str:
    return " ".join(data.decode("utf-8", "replace").split())[:limit]


def _post(url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
    """POST and return (status, content type, body), whatever the status."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return (
                response.status,
                response.headers.get("Content-Type", ""),
                response.read(MAX_ANSWER),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read(MAX_ANSWER)


def submit(
    prefix: str, witness: Verifier, request: ConsistencyProof, *, timeout: float = DEFAULT_TIMEOUT
) -> WitnessResult:
    """Send one add-checkpoint request to the witness at `prefix` (its URL prefix)."""
    name = witness.fingerprint
    if not prefix.startswith(("http://", "https://")):
        return Unreachable(name, f"not an http(s) URL: {prefix!r}")
    url = prefix.rstrip("/") + "/add-checkpoint"
    try:
        status, content_type, answer = _post(url, request.text().encode(), timeout)
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Unreachable(name, f"{url}: {reason}")
    if status == 409:
        text = answer.decode("ascii", "replace")
        if content_type.split(";")[0].strip() == "text/x.tlog.size" and text.endswith("\n"):
            size = text[:-1]
            if size.isascii() and size.isdigit():
                return Conflict(name, int(size))
        return Refused(name, 409, f"conflict without a size: {_one_line(answer)}")
    if status != 200:
        return Refused(name, status, _one_line(answer) or f"HTTP {status}")
    return _verified(name, witness, request, answer)


def _verified(
    name: str, witness: Verifier, request: ConsistencyProof, answer: bytes
) -> WitnessResult:
    """Keep the answer's signature lines that verify with the pinned witness key."""
    text = request.note.text
    good: list[Signature] = []
    try:
        lines = answer.decode("utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            signature = parse_signature_line(line, "witness answer", number)
            if witness.matches(signature) and witness.verify(text, signature.signature):
                good.append(signature)
    except (UnicodeDecodeError, NoteError) as exc:
        return Refused(name, 200, f"malformed answer: {exc}")
    if not good:
        return Refused(name, 200, f"no valid cosignature by {name} in the answer")
    return Cosigned(name, tuple(good), request.old_size)


def cosign(
    prefix: str,
    witness: Verifier,
    note: Note,
    prove: Callable[[int], list[bytes]],
    *,
    known_size: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
) -> WitnessResult:
    """Get the witness's cosignature on the checkpoint `note`.

    `known_size` is the size the log last had cosigned by this witness (0 if
    never); ``prove(old)`` returns the consistency proof hashes from size
    `old` to the checkpoint's size (``[]`` for 0). A 409 naming a size the
    checkpoint extends is retried once from that size; a 409 naming a larger
    size is returned as is (the witness saw more than this log claims).
    """
    checkpoint = parse_checkpoint(note.text)
    old = min(known_size, checkpoint.size)
    result = submit(prefix, witness, _request(old, prove, note), timeout=timeout)
    if isinstance(result, Conflict) and result.size <= checkpoint.size and result.size != old:
        result = submit(prefix, witness, _request(result.size, prove, note), timeout=timeout)
    return result


def _request(old: int, prove: Callable[[int], list[bytes]], note: Note) -> ConsistencyProof:
    checkpoint = parse_checkpoint(note.text)
    hashes = tuple(prove(old)) if 0 < old < checkpoint.size else ()
    return ConsistencyProof(old, hashes, note, checkpoint)
