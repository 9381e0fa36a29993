"""Writing an export (a checkpoint, an evidence bundle) so that a place that
cannot be written is found before anything is signed or recorded.

`OutputFile` creates the missing folders and a temporary file beside the
target at once (the proof the place is writable); the text is written to it
and renamed over the target only when everything else has succeeded. Leaving
the block without `commit` removes the temporary file and the folders made.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from types import TracebackType

from opskit.errors import LedgerError


class OutputFile:
    """A file written whole or not at all (see the module). Use::

        with OutputFile(path) as out:   # folders and a temporary file made now
            out.stage(text)             # a full disk shows here
            ...                         # sign, record...
            out.commit()                # renamed over `path`

    A place that cannot be written raises `LedgerError` on entering, before
    anything else happens; leaving without `commit` leaves nothing behind.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._temp: Path | None = None
        self._made: list[Path] = []  # folders this file created, outermost first

    def __enter__(self) -> OutputFile:
        try:
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            self._make_folders()
            fd, name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            os.close(fd)
            self._temp = Path(name)
        except OSError as exc:
            self._clean_up()
            raise self._error(exc) from None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._clean_up()

    def stage(self, text: str) -> None:
        """Writes the content to the temporary file (a full disk shows here)."""
        assert self._temp is not None, "stage() outside the with block"
        try:
            self._temp.write_text(text, encoding="utf-8")
            # mkstemp makes the file private; an export is meant to be shared.
            self._temp.chmod(0o666 & ~_umask())
        except OSError as exc:
            raise self._error(exc) from None

    def commit(self) -> None:
        """Puts the staged content in place."""
        assert self._temp is not None, "commit() outside the with block"
        try:
            os.replace(self._temp, self.path)
        except OSError as exc:
            raise self._error(exc) from None
        self._temp = None
        self._made = []

    def write(self, text: str) -> None:
        self.stage(text)
        self.commit()

    def _make_folders(self) -> None:
        missing = []
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            folder.mkdir()
            self._made.append(folder)

    def _clean_up(self) -> None:
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:  # something else was put there meanwhile: keep it
                break
        self._made = []

    def _error(self, exc: OSError) -> LedgerError:
        return LedgerError(f"{self.path}: cannot write ({exc.strerror or exc})")


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
