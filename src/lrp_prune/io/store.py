"""Crash-safe file sets: a directory whose files are replaced all at once or not at all.

``convert(..., save_dir_path)`` and :func:`~lrp_prune.io.saved.save_pruned` keep their files
at the top of the directory under fixed names (downstream tools read ``heads_to_prune.pkl``
there). A kill at any instant of a save must still leave a directory from which the complete
old save or the complete new one loads. The design::

    save_dir/
        pruned_config.json, pruned_model.ckpt, ...   the published files: hard links to the
                                                     committed generation's files
        .lrp_prune/
            lock                  held (flock) for the whole save: saves never interleave
            CURRENT               the committed generation's name (replaced by one atomic rename)
            gen-<id>/             a complete set of files + manifest.json (names, sizes, sha256)
            staging-<pid>-<id>/   a set being written (renamed to gen-<id> once complete)

A save writes the new set into ``staging-*``, fsyncs it, renames it to ``gen-<id>``, and only
then *commits* by replacing ``CURRENT``. Readers (:func:`committed_files`) follow ``CURRENT``
and check every file against the manifest, so a save killed before the commit leaves the old
generation in force and one killed after it the new one. After the commit the top-level names
are re-linked to the new files one atomic rename each, then old generations are removed; a kill
in that window leaves some top-level names still showing the old save (the committed set is
complete regardless, and the next save refreshes them).

The library never overwrites or deletes a file it did not write: a top-level file with one of
its names is only replaced if the committed manifest lists it (same size and sha256), or if the
directory holds a save of the library's first format (no ``.lrp_prune/``, a
``pruned_config.json`` of this library). Otherwise the save is refused, naming the file.

Every file-system operation goes through :func:`_op`, so a test can kill the process after
its k-th operation (``tests/io/test_store.py``).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> commit_files(d, {"a.txt": b"one", "b.txt": b"two"})
    >>> sorted(committed_files(d)), (d / "a.txt").read_bytes()
    (['a.txt', 'b.txt'], b'one')
    >>> commit_files(d, {"a.txt": b"ONE"}, ours=("a.txt", "b.txt"))
    >>> sorted(committed_files(d)), (d / "b.txt").exists()
    (['a.txt'], False)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from lrp_prune.errors import LRPPruneError

try:  # POSIX; without it concurrent saves into one directory are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["STORE_DIR", "MANIFEST", "commit_files", "committed_files", "has_store", "FileSource"]

logger = logging.getLogger(__name__)

STORE_DIR = ".lrp_prune"
MANIFEST = "manifest.json"
_CURRENT = "CURRENT"
_FORMAT = "lrp_prune/file-set"

#: A file's content: bytes, or a callable that writes the file at the given path itself
#: (``ms.save_checkpoint`` writes its own files).
FileSource = bytes | Callable[[Path], None]

#: Set by tests: called as ``hook(operation, path)`` before every file-system operation.
_HOOK: Callable[[str, str], None] | None = None


def _op(name: str, path: Path | str) -> None:
    if _HOOK is not None:
        _HOOK(name, str(path))


# ------------------------------------------------------------------------------------ primitives
def _fsync_dir(path: Path) -> None:
    _op("fsync_dir", path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - some file systems refuse to open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write(path: Path, source: FileSource) -> None:
    if callable(source):
        _op("write", path)
        source(path)
        _op("fsync", path)
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
        return
    _op("open", path)
    with open(path, "wb") as handle:
        _op("write", path)
        handle.write(source)
        _op("fsync", path)
        handle.flush()
        os.fsync(handle.fileno())
    _op("close", path)


def _replace(src: Path, dst: Path) -> None:
    _op("replace", dst)
    os.replace(src, dst)


def _link(src: Path, dst: Path) -> None:
    _op("link", dst)
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links: a copy (still renamed into place atomically)
        shutil.copyfile(src, dst)


def _unlink(path: Path) -> None:
    _op("unlink", path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _rmtree(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.is_symlink():
            _rmtree(child)
        else:
            _unlink(child)
    _op("rmdir", path)
    with contextlib.suppress(FileNotFoundError, OSError):
        path.rmdir()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(store: Path) -> Iterator[None]:
    _op("lock", store / "lock")
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(store / "lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------ reading
def has_store(directory: str | Path) -> bool:
    """Whether ``directory`` holds a committed set written by :func:`commit_files`."""
    return (Path(directory) / STORE_DIR / _CURRENT).is_file()


def _read_manifest(gen: Path) -> dict:
    try:
        manifest = json.loads((gen / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LRPPruneError(f"{gen / MANIFEST}: expected the manifest of a committed save, got "
                            f"{type(err).__name__}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or \
            not isinstance(manifest.get("files"), dict):
        raise LRPPruneError(f"{gen / MANIFEST}: expected a manifest of format {_FORMAT!r}, got {manifest!r:.200}")
    return manifest


def committed_files(directory: str | Path, *, verify: bool = True,
                    missing_out: dict[str, Path] | None = None) -> dict[str, Path]:
    """``{name: path}`` of the committed set of ``directory`` (empty if it has none).

    Args:
        directory: a directory written by :func:`commit_files`.
        verify: check each file's size and sha256 against the manifest. A committed file never
            changes during a save, so a mismatch means it was edited or damaged afterwards (the
            published names are hard links to it): that is logged as a warning and the file is
            still returned, so whoever reads it reports what is wrong with its content.

        missing_out: filled with ``{name: path}`` of listed files that are gone (deleted by hand;
            they are logged and left out of the result).

    Raises:
        LRPPruneError: ``CURRENT`` names a missing generation.
    """
    store = Path(directory) / STORE_DIR
    current = store / _CURRENT
    if not current.is_file():
        return {}
    name = current.read_text(encoding="utf-8").strip()
    gen = store / name
    if not name.startswith("gen-") or not gen.is_dir():
        raise LRPPruneError(f"{current}: expected the name of a committed generation in {store}, got {name!r}")
    manifest = _read_manifest(gen)
    files, missing = {}, {}
    for file_name, entry in manifest["files"].items():
        path = gen / file_name
        if not path.is_file():  # deleted by hand: whoever needs it says so (missing[name] names the path)
            logger.warning("%s: listed in %s but missing", file_name, gen / MANIFEST)
            missing[file_name] = path
            continue
        if verify and (path.stat().st_size != entry.get("size") or sha256_file(path) != entry.get("sha256")):
            logger.warning("%s: changed after the save (its size or sha256 differs from %s)", file_name,
                           gen / MANIFEST)
        files[file_name] = path
    if missing_out is not None:
        missing_out.update(missing)
    return files


# ------------------------------------------------------------------------------------ writing
def _legacy_owned(directory: Path, names: Sequence[str], marker: Callable[[Path], bool] | None) -> set[str]:
    """Top-level names of a save in the first format (no store): ours if ``marker`` recognises the dir."""
    if marker is None or not marker(directory):
        return set()
    return {n for n in names if (directory / n).is_file()}


def _owned_top_level(directory: Path, names: Sequence[str], committed: Mapping[str, Path]) -> set[str]:
    """Names whose top-level file is one the library wrote (the committed file itself, or equal to it)."""
    owned = set()
    for name in names:
        top, ours = directory / name, committed.get(name)
        if ours is None or not top.is_file():
            continue
        try:
            same = os.path.samefile(top, ours) or (top.stat().st_size == ours.stat().st_size
                                                   and sha256_file(top) == sha256_file(ours))
        except OSError:
            same = False
        if same:
            owned.add(name)
    return owned


def _cleanup(store: Path, keep: str | None) -> None:
    """Remove staging sets of dead saves and generations other than ``keep`` (we hold the lock,
    so no live save owns any of them)."""
    for child in sorted(store.iterdir()):
        if child.is_dir() and (child.name.startswith("staging-") or
                               (child.name.startswith("gen-") and child.name != keep)):
            logger.info("removing %s (left by an earlier save)", child)
            _rmtree(child)
        elif child.name.startswith(f".{_CURRENT}.") and child.name.endswith(".tmp"):
            _unlink(child)


def commit_files(directory: str | Path, files: Mapping[str, FileSource], *, ours: Sequence[str] = (),
                 legacy_marker: Callable[[Path], bool] | None = None) -> None:
    """Replace the file set of ``directory`` by ``files``, crash-safely (see the module docstring).

    Args:
        directory: the target directory (created if missing).
        files: file name -> content (bytes, or a callable writing the file at a given path).
        ours: every name this kind of save may write; an earlier save's file with one of these
            names that the new set lacks is removed (if the library wrote it).
        legacy_marker: recognises a directory written by the first format (no store) as ours.

    Raises:
        LRPPruneError: a top-level file with one of the names was not written by the library
            (it is never overwritten or deleted); nothing is changed then.
        OSError: the file system failed (the earlier save stays committed and loadable).
    """
    directory = Path(directory)
    store = directory / STORE_DIR
    for name in files:
        if not name or Path(name).name != name or name.startswith("."):
            raise LRPPruneError(f"file set: expected plain file names, got {name!r}")
    _op("mkdir", store)
    store.mkdir(parents=True, exist_ok=True)
    with _locked(store):
        committed = committed_files(directory, verify=False)
        current = (store / _CURRENT).read_text(encoding="utf-8").strip() if committed else None
        _cleanup(store, current)
        for legacy in sorted(directory.glob(".staging.*.tmp")):  # staging of the first format's saves
            if legacy.is_dir():
                _rmtree(legacy)
        names = sorted(set(files) | set(ours))
        present = [n for n in names if (directory / n).exists()]
        owned = _owned_top_level(directory, names, committed) if committed else \
            _legacy_owned(directory, names, legacy_marker)
        conflicts = [n for n in present if n not in owned]
        if conflicts:
            raise LRPPruneError(f"save_dir_path: expected a directory whose files {conflicts} were written by "
                                f"lrp_prune (or absent), got files it did not write in {str(directory)!r}; move "
                                "them or choose another directory (nothing was changed)")
        gen_name = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        staging = store / f"staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _op("mkdir", staging)
            staging.mkdir()
            entries = {}
            for name, source in files.items():
                _write(staging / name, source)
                path = staging / name
                entries[name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
            manifest = {"format": _FORMAT, "generation": gen_name, "files": entries}
            _write(staging / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
            _fsync_dir(staging)
            _replace(staging, store / gen_name)
            _fsync_dir(store)
        except BaseException:
            _rmtree(staging)
            raise
        # ---- the commit: one atomic rename of CURRENT
        pointer = store / f".{_CURRENT}.{uuid.uuid4().hex[:8]}.tmp"
        _write(pointer, gen_name.encode("utf-8"))
        _replace(pointer, store / _CURRENT)
        _fsync_dir(store)
        # ---- publish: the top-level names become links to the committed files
        for name in files:
            tmp = directory / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
            _link(store / gen_name / name, tmp)
            _replace(tmp, directory / name)
        for name in names:
            if name not in files and name in owned:
                _unlink(directory / name)
        _fsync_dir(directory)
        _cleanup(store, gen_name)
