"""Atomic file output: write to a temporary name in the destination folder, then rename."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "output_folder", "claim_outputs", "folder_lock", "LOCK_FILE", "MANIFEST", "manifest_files",
           "staged_outputs", "StagedOutputs"]

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
        # writers that replace the file (safetensors writes a new 0600 one) lose the mode set above
        os.chmod(tmp_path, 0o666 & ~_umask())
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


#: the list of files a command wrote into its output folder: the only files ``--overwrite`` replaces
MANIFEST = ".hit-decoder-outputs.json"


def _inside(folder: Path, name: object) -> str | None:
    """``name`` as a relative path that stays inside ``folder`` (no absolute path, no ``..``, no link
    out of it), or None."""
    if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in Path(name).parts:
        return None
    real, root = os.path.realpath(folder / name), os.path.realpath(folder)
    return Path(name).as_posix() if real.startswith(root + os.sep) else None


def manifest_files(folder: str | os.PathLike) -> list[str]:
    """The files an earlier command wrote into ``folder``, from its manifest: only names that stay
    inside the folder and are regular files there (anything else in the manifest is ignored)."""
    folder = Path(folder)
    try:
        names = json.loads((folder / MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    out = []
    for name in names if isinstance(names, list) else []:
        rel = _inside(folder, name)
        if rel is not None and (folder / rel).is_file() and not (folder / rel).is_symlink():
            out.append(rel)
    return sorted(set(out))


class StagedOutputs:
    """New outputs of a command, written under :attr:`dir` (a temporary folder beside ``folder``) and
    moved into ``folder`` by :meth:`commit` once all of them are ready; see :func:`staged_outputs`."""

    def __init__(self, folder: Path, earlier: list[str], staging: Path) -> None:
        self.folder, self.earlier, self.dir = folder, earlier, staging

    def final(self, path: str | os.PathLike) -> Path:
        """Where a file written under :attr:`dir` will be once committed."""
        return self.folder / Path(path).relative_to(self.dir)

    def commit(self) -> list[Path]:
        """Replace the earlier outputs (those in the manifest) by the new ones; returns the new paths."""
        new = sorted(p.relative_to(self.dir).as_posix() for p in self.dir.rglob("*") if p.is_file())
        strangers = [n for n in new if (self.folder / n).exists() and n not in self.earlier]
        if strangers:
            raise FileExistsError(f"{self.folder} now holds {', '.join(strangers[:5])}, which this library did not "
                                  f"write; nothing was replaced. Move them away and run again")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in self.earlier:
            if name not in new:
                (self.folder / name).unlink(missing_ok=True)
        for name in new:
            (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / name, self.folder / name)
        with atomic_path(self.folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps({"files": new}, indent=1))
        return [self.folder / n for n in new]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


@contextlib.contextmanager
def staged_outputs(folder: str | os.PathLike, patterns: Iterable[str], *, overwrite: bool, what: str,
                   how: str) -> Iterator[StagedOutputs]:
    """Write a command's outputs into a temporary folder beside ``folder``, then move them in.

    Before anything runs: files in ``folder`` that this command would write (``patterns``, globs) or
    that an earlier command wrote (its manifest) are an error naming them and ``how`` to proceed,
    unless ``overwrite``; even then a file the manifest does not list is never replaced. When the
    body succeeds, :meth:`StagedOutputs.commit` removes the earlier
    outputs, moves the new ones in and writes the new manifest; when it fails, ``folder`` is left as
    it was."""
    folder = output_folder(folder, what)
    earlier = manifest_files(folder) if folder.is_dir() else []
    matched = sorted({p.relative_to(folder).as_posix() for pat in patterns for p in folder.glob(pat)
                      if p.is_file() or p.is_symlink()} if folder.is_dir() else set())
    strangers = [n for n in matched if n not in earlier]
    if strangers:
        raise FileExistsError(f"{what}: {folder} holds {_shown(strangers)}, which this command would write but which "
                              f"hit-decoder did not write there (not in its {MANIFEST}); it replaces only its own "
                              f"outputs: move them away or choose another {what}")
    if earlier and not overwrite:
        raise FileExistsError(f"{what}: {folder} already holds earlier outputs ({_shown(earlier)}); {how}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    except OSError as exc:
        raise OSError(f"{what}: cannot write next to {folder} ({exc}); choose a writable {what}") from None
    if folder.is_dir():  # the new outputs are moved in at the end: check now that they can be
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise OSError(f"{what}: cannot write into {folder} ({exc}); choose a writable {what}") from None
    stage = StagedOutputs(folder, earlier, staging)
    try:
        yield stage
        stage.commit()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
