"""The dataset lookup order (cache, mirror, download, error) and the loaders.

Downloads are tested against an HTTP server on the loopback interface that the test starts;
nothing here reaches the internet.
"""

import dataclasses
import hashlib
import io
import os
import socket
import urllib.request
import zipfile
from pathlib import Path

import pytest

from shared import datasets
from shared.datasets import Archive, DataFile, DatasetSpec
from shared.download import digest_of, download_verified
from shared.errors import DatasetError
from shared.testing import dataset_or_skip, serve_directory

CONTENT = b"To be, or not to be, that is the question.\n" * 50
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache and no mirror, whatever the developer's environment says."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DATASETS_CACHE", str(cache))
    monkeypatch.delenv("DATASETS_MIRROR", raising=False)
    monkeypatch.delenv("DATASETS_OFFLINE", raising=False)
    return cache


def _register(monkeypatch, url: str | None, sha256: str = SHA) -> None:
    spec = DatasetSpec(
        name="toy",
        description="a test corpus",
        source="a loopback server",
        attribution="the test",
        files=(DataFile("input.txt", sha256, url),),
        loader=lambda folder: {"train": (folder / "input.txt").read_text()},
    )
    monkeypatch.setitem(datasets.REGISTRY, "toy", spec)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_success_is_verified_and_cached(isolated, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_bytes(CONTENT)
    with serve_directory(served) as base:
        _register(monkeypatch, base + "input.txt")
        assert datasets.load("toy")["train"].encode() == CONTENT
    assert (isolated / "toy" / "input.txt").read_bytes() == CONTENT
    # Served no more: the cache alone answers now.
    assert datasets.load("toy")["train"].encode() == CONTENT
    assert sorted(p.name for p in (isolated / "toy").iterdir()) == ["input.txt"]


def test_checksum_mismatch_leaves_nothing_in_the_cache(isolated, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_bytes(CONTENT + b"tampered")
    with serve_directory(served) as base:
        _register(monkeypatch, base + "input.txt")
        with pytest.raises(DatasetError, match="checksum mismatch for input.txt"):
            datasets.load("toy")
    leftovers = list((isolated / "toy").iterdir()) if (isolated / "toy").exists() else []
    assert leftovers == []


def test_unreachable_server_gives_a_clear_error(isolated, monkeypatch):
    _register(monkeypatch, f"http://127.0.0.1:{_free_port()}/input.txt")
    monkeypatch.setattr("shared.download.time.sleep", lambda s: None)  # no backoff waits
    with pytest.raises(DatasetError) as info:
        datasets.load("toy")
    message = str(info.value)
    assert "dataset 'toy' is unavailable" in message
    assert "could not download" in message and "after 3 tries" in message
    assert "tools/fetch_datasets.py toy" in message and "\n" not in message


def test_download_retries_then_succeeds(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_bytes(CONTENT)
    calls = []
    real_urlopen = urllib.request.urlopen

    def flaky(url, timeout):
        calls.append(url)
        if len(calls) == 1:
            raise TimeoutError("timed out")
        return real_urlopen(url, timeout=timeout)

    monkeypatch.setattr("shared.download.urllib.request.urlopen", flaky)
    monkeypatch.setattr("shared.download.time.sleep", lambda s: None)
    with serve_directory(served) as base:
        download_verified(base + "input.txt", tmp_path / "out.txt", SHA)
    assert len(calls) == 2 and (tmp_path / "out.txt").read_bytes() == CONTENT


def test_mirror_is_copied_into_the_cache(isolated, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "input.txt").write_bytes(CONTENT)
    os.chmod(mirror / "toy" / "input.txt", 0o444)  # mirrors may be read-only
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    _register(monkeypatch, url=None)
    assert datasets.load("toy")["train"].encode() == CONTENT
    assert (isolated / "toy" / "input.txt").read_bytes() == CONTENT


def test_corrupt_cache_file_is_replaced_from_the_mirror(isolated, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "input.txt").write_bytes(CONTENT)
    (isolated / "toy").mkdir(parents=True)
    (isolated / "toy" / "input.txt").write_bytes(b"truncated")
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    _register(monkeypatch, url=None)
    datasets.locate("toy")
    assert (isolated / "toy" / "input.txt").read_bytes() == CONTENT


def test_nothing_anywhere_says_how_to_get_it(isolated, monkeypatch):
    _register(monkeypatch, url=None)
    with pytest.raises(DatasetError) as info:
        datasets.load("toy")
    message = str(info.value)
    assert "input.txt is not in" in message and "no DATASETS_MIRROR set" in message
    assert "uv run python tools/fetch_datasets.py toy" in message


def test_offline_setting_skips_the_download(isolated, monkeypatch):
    _register(monkeypatch, url="http://127.0.0.1:9/never-contacted")
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetError, match="downloads are off"):
        datasets.load("toy")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'shakespear'; known datasets: tiny"):
        datasets.load("shakespear")


def test_every_registry_entry_is_complete():
    lengths = {"sha256": 64, "md5": 32}
    for name, spec in datasets.REGISTRY.items():
        assert spec.name == name and spec.source and spec.attribution and spec.description
        archived = list(spec.archive.members.values()) if spec.archive else []
        for file in [*spec.files, *archived]:
            algorithm, digest = file.checksum
            assert len(digest) == lengths[algorithm] and int(digest, 16) >= 0
        assert all(f.sha256 for f in spec.files), "a mirror file is checked by sha256"


def test_a_data_file_needs_one_checksum():
    with pytest.raises(ValueError, match="give its sha256, or its md5"):
        DataFile("a.txt", None, None)
    assert DataFile("a.txt", None, None, md5="0" * 32).checksum == ("md5", "0" * 32)


def test_pystdlib_is_deterministic_and_always_there(isolated):
    first = datasets.load("pystdlib")
    second = datasets.load("pystdlib")
    assert first == second
    assert 1_000_000 < len(first["train"]) + len(first["val"]) <= 3_000_000
    assert first["train"].isascii() and "# file: " in first["train"]
    assert abs(len(first["train"]) / (len(first["train"]) + len(first["val"])) - 0.9) < 1e-3


# ----------------------------------------------------------------------------------------------
# The real datasets, from the cache or the mirror (skipped where neither has them)


def test_tinyshakespeare_split():
    dataset_or_skip("tinyshakespeare")
    splits = datasets.load("tinyshakespeare")
    assert len(splits["train"]) == 1_003_854 and len(splits["val"]) == 111_540
    assert splits["train"].startswith("First Citizen:")


def test_sst2_rows_and_labels():
    """Train on all 64,349 of GLUE's training rows, report on GLUE's dev set (444 + 428)."""
    folder = dataset_or_skip("sst2")
    splits = datasets.load("sst2")
    assert {k: len(v) for k, v in splits.items()} == {"train": 64_349, "validation": 872}
    assert sum(splits["validation"]["label"]) == 444 and set(splits["train"]["label"]) == {0, 1}
    first = splits["validation"][0]
    assert first == {"sentence": "it 's a charming and often affecting journey .", "label": 1}
    assert all(s and s == s.strip() for s in splits["validation"]["sentence"])
    # The held-out rows are inside train now; no GLUE dev sentence is a training row.
    assert splits["train"][62_349]["sentence"] == "its logical loopholes ,"
    assert not set(splits["validation"]["sentence"]) & set(splits["train"]["sentence"])
    # locate verified glue_dev.tsv by sha256; its md5 is the one torchtext, GluonNLP and
    # PaddleNLP publish for GLUE's SST-2/dev.tsv, so the mirror's file is GLUE's, byte for byte,
    # and the sha256 the archive's glue_dev.tsv is checked against is right.
    glue_dev = folder / "glue_dev.tsv"
    assert digest_of(glue_dev, "md5") == "268856b487b2a31a28c0a93daaff7288"
    assert digest_of(glue_dev) == datasets.REGISTRY["sst2"].archive.members["SST-2/dev.tsv"].sha256


def test_multi30k_pairs():
    dataset_or_skip("multi30k")
    splits = datasets.load("multi30k")
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 29_000,
        "val": 1_014,
        "test_2016_flickr": 1_000,
    }
    assert splits["val"][0]["de"].startswith("Eine Gruppe von Männern")


def test_fetch_tool_seeds_the_cache_from_a_folder(isolated, tmp_path):
    """tools/fetch_datasets.py --from DIR, run as a user would."""
    import subprocess
    import sys

    mirror = tmp_path / "mirror"
    (mirror / "tinyshakespeare").mkdir(parents=True)
    source = Path(__file__).resolve().parents[2] / "tools" / "fetch_datasets.py"
    (mirror / "tinyshakespeare" / "input.txt").write_text("not shakespeare")
    env = {**os.environ, "DATASETS_CACHE": str(isolated), "DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(source), "tinyshakespeare", "--from", str(mirror)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "checksum mismatch" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (isolated / "tinyshakespeare" / "input.txt").exists()

    result = subprocess.run(
        [sys.executable, str(source), "pystdlib", "--from", str(mirror)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "pystdlib" in result.stdout


# ----------------------------------------------------------------------------------------------
# sst2 from GLUE's zip, against a stand-in zip served on the loopback interface

# GLUE's layout: a header, then `sentence <TAB>label` (GLUE keeps a space before the tab).
FAKE_TRAIN = b"sentence\tlabel\nhide new secretions from the parental units \t0\ngreat \t1\n"
FAKE_DEV = b"sentence\tlabel\nit 's a charming and often affecting journey . \t1\n"


def _fake_glue_zip(train: bytes = FAKE_TRAIN, dev: bytes = FAKE_DEV) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("SST-2/train.tsv", train)
        zf.writestr("SST-2/dev.tsv", dev)
        zf.writestr("SST-2/test.tsv", b"index\tsentence\n0\tunlabelled \n")
    return buffer.getvalue()


def _sst2_from(monkeypatch, url: str, zip_bytes: bytes, dev_sha: str | None = None) -> None:
    """The real sst2 entry (loader, member names, file names), its checksums the stand-in's."""
    real = datasets.REGISTRY["sst2"]
    sums = {"glue_train.tsv": hashlib.md5(FAKE_TRAIN).hexdigest()}
    members = {
        member: dataclasses.replace(file, md5=sums[file.path])
        if file.md5
        else dataclasses.replace(file, sha256=dev_sha or hashlib.sha256(FAKE_DEV).hexdigest())
        for member, file in real.archive.members.items()
    }
    archive = Archive(url, hashlib.md5(zip_bytes).hexdigest(), members)
    monkeypatch.setitem(datasets.REGISTRY, "sst2", dataclasses.replace(real, archive=archive))


def test_sst2_download_extracts_glue_zip_into_the_cache(isolated, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "SST-2.zip").write_bytes(_fake_glue_zip())
    with serve_directory(served) as base:
        _sst2_from(monkeypatch, base + "SST-2.zip", _fake_glue_zip())
        splits = datasets.load("sst2")
    assert splits["train"]["sentence"] == ["hide new secretions from the parental units", "great"]
    assert splits["train"]["label"] == [0, 1]
    assert splits["validation"][0] == {
        "sentence": "it 's a charming and often affecting journey .",
        "label": 1,
    }
    # GLUE's files kept byte for byte under the registry's names; no zip, no temporary files.
    assert sorted(p.name for p in (isolated / "sst2").iterdir()) == [
        "glue_dev.tsv",
        "glue_train.tsv",
    ]
    assert (isolated / "sst2" / "glue_dev.tsv").read_bytes() == FAKE_DEV
    # Served no more, downloads off: the cache alone answers.
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    assert len(datasets.load("sst2")["train"]) == 2


def test_sst2_zip_with_a_wrong_checksum_is_not_used(isolated, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "SST-2.zip").write_bytes(_fake_glue_zip(dev=FAKE_DEV.replace(b"\t1", b"\t0")))
    with serve_directory(served) as base:
        _sst2_from(monkeypatch, base + "SST-2.zip", _fake_glue_zip())
        with pytest.raises(DatasetError) as info:
            datasets.load("sst2")
    message = str(info.value)
    assert "dataset 'sst2' is unavailable" in message and "\n" not in message
    assert "checksum mismatch for SST-2.zip" in message and "expected md5" in message
    assert not [p for p in (isolated / "sst2").iterdir()]


def test_sst2_member_with_a_wrong_checksum_is_not_kept(isolated, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "SST-2.zip").write_bytes(_fake_glue_zip())
    with serve_directory(served) as base:
        _sst2_from(monkeypatch, base + "SST-2.zip", _fake_glue_zip(), dev_sha="0" * 64)
        with pytest.raises(DatasetError, match="checksum mismatch for glue_dev.tsv"):
            datasets.load("sst2")
    assert not (isolated / "sst2" / "glue_dev.tsv").exists()


def test_sst2_offline_without_files_says_how_to_get_them(isolated, monkeypatch):
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetError) as info:
        datasets.load("sst2")
    message = str(info.value)
    assert "train.tsv is not in" in message and "downloads are off" in message
    assert "tools/fetch_datasets.py sst2` on a machine with internet" in message


def test_bad_mirror_layout_leftovers_do_not_shadow_the_download(isolated, tmp_path, monkeypatch):
    (isolated / "sst2").mkdir(parents=True)
    (isolated / "sst2" / "train.tsv").write_bytes(b"sentence\tlabel\ntruncated")
    (isolated / "sst2" / "dev.tsv").write_bytes(b"sentence\tlabel\n")
    served = tmp_path / "served"
    served.mkdir()
    (served / "SST-2.zip").write_bytes(_fake_glue_zip())
    with serve_directory(served) as base:
        _sst2_from(monkeypatch, base + "SST-2.zip", _fake_glue_zip())
        assert datasets.load("sst2")["train"]["label"] == [0, 1]
    assert not (isolated / "sst2" / "train.tsv").exists()
