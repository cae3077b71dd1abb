"""Writing key material and state files so that no one else can read them, on any OS."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation in os.write


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``data``, refusing to replace a file that exists.

    The file is created with its final mode (``O_EXCL``), so a private key is
    never readable by others, not even between ``open`` and ``chmod``.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)  # the umask may have removed bits of a public file's mode


def write_replace(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` atomically: a reader sees the old or the new content, never half.

    The temporary file is created 0600 in the same directory and renamed over
    ``path``, so an existing file's looser mode does not carry over.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_dir(path: Path) -> Path:
    """A directory only its owner may enter (secrets)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
