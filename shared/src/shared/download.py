"""Getting one file into place safely: verify its checksum, write to a temporary file, rename.

A half-downloaded or tampered file must never sit in the cache looking like a good one, so every
write goes to `<name>.part-<random>` beside the destination and is renamed over it only after its
checksum matches. Rename within one folder is atomic on POSIX and Windows.
"""

import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from shared.atomic import temporary_beside
from shared.errors import DatasetError


def digest_of(path: Path, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """The file's hex digest: sha256, or md5 where a source publishes no sha256 (GLUE's zips)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    return digest_of(path, "sha256")


def _finish(tmp: Path, dest: Path, expected: str | None, origin: str, algorithm: str) -> None:
    """Check the temporary file's checksum, then move it into place (or delete it)."""
    if expected is not None:
        actual = digest_of(tmp, algorithm)
        if actual != expected:
            tmp.unlink(missing_ok=True)
            raise DatasetError(
                f"checksum mismatch for {dest.name} from {origin}: expected {algorithm} "
                f"{expected}, got {actual}; the file was not kept (a changed or corrupted source)"
            )
    os.replace(tmp, dest)


def copy_verified(
    src: Path, dest: Path, checksum: str | None, *, algorithm: str = "sha256"
) -> None:
    """Copy `src` to `dest` through a temporary file, keeping it only if the checksum matches."""
    tmp = temporary_beside(dest)
    try:
        shutil.copyfile(src, tmp)  # copyfile, not copy2: mirror files may be read-only
        _finish(tmp, dest, checksum, str(src), algorithm)
    finally:
        tmp.unlink(missing_ok=True)


def download_verified(
    url: str,
    dest: Path,
    checksum: str | None,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    algorithm: str = "sha256",
) -> None:
    """Download `url` to `dest`, verified; retries network errors, never a checksum mismatch."""
    last_error: Exception | None = None
    for attempt in range(retries):
        tmp = temporary_beside(dest)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
            _finish(tmp, dest, checksum, url, algorithm)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            last_error = error
            if attempt + 1 < retries:
                time.sleep(backoff * 2**attempt)
        finally:
            tmp.unlink(missing_ok=True)
    reason = getattr(last_error, "reason", last_error)
    raise DatasetError(f"could not download {url} after {retries} tries: {reason}")
