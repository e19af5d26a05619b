"""Atomic file output: write to a temporary name in the destination folder, then rename."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "output_folder", "claim_outputs", "folder_lock", "LOCK_FILE"]

#: the lock file :func:`folder_lock` keeps in a folder while a run writes there
LOCK_FILE = ".hit-decoder.lock"


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched, so readers
    never see a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would give 0666 & ~umask
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def output_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as an output folder: an existing *file* there is an error naming ``what`` (the option)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what}: {path} is an existing file, not a folder; give the path of a new or existing folder")
    return path


def claim_outputs(folder: str | os.PathLike, patterns: Iterable[str], *, overwrite: bool, what: str, how: str) -> None:
    """Refuse to replace earlier outputs in ``folder`` unless ``overwrite``: files matching ``patterns``
    (globs relative to ``folder``) are an error naming them and ``how`` to proceed. With ``overwrite``
    they are removed first, so none of them can survive a failed run looking current."""
    folder = output_folder(folder, what)
    found = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file() or p.is_symlink()})
    if not found:
        return
    if not overwrite:
        shown = ", ".join(str(p.relative_to(folder)) for p in found[:5]) + (
            f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise FileExistsError(f"{what}: {folder} already holds earlier outputs ({shown}); {how}")
    for p in found:
        p.unlink()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``folder/.hit-decoder.lock`` (created with the folder if needed) for the duration: the file
    holds this process's id, and an exclusive ``flock`` that the OS releases if the process dies. A
    second holder is refused with an error naming the first one's process; the lock file of a process
    that is gone (killed) is taken over with a warning. The file is removed on exit."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FileExistsError(f"{what}: {folder} is in use by another run (process {holder}, lock file {path}); "
                                  f"wait for it to finish or stop it, or choose another {what}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file while we waited: lock the new one
    stale = os.pread(fd, 100, 0).decode(errors="replace").strip()
    if stale:
        logging.getLogger("hit_decoder").warning(
            "%s: taking over the lock %s of process %s, which is no longer running", what, path, stale)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
