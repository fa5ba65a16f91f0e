"""Getting one file into place safely: verify by sha256, write to a temporary file, then rename.

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


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _finish(tmp: Path, dest: Path, sha256: str | None, origin: str) -> None:
    """Check the temporary file's checksum, then move it into place (or delete it)."""
    if sha256 is not None:
        actual = sha256_of(tmp)
        if actual != sha256:
            tmp.unlink(missing_ok=True)
            raise DatasetError(
                f"checksum mismatch for {dest.name} from {origin}: expected sha256 {sha256}, "
                f"got {actual}; the file was not kept (a changed or corrupted source)"
            )
    os.replace(tmp, dest)


def copy_verified(src: Path, dest: Path, sha256: str | None) -> None:
    """Copy `src` to `dest` through a temporary file, keeping it only if the checksum matches."""
    tmp = temporary_beside(dest)
    try:
        shutil.copyfile(src, tmp)  # copyfile, not copy2: mirror files may be read-only
        _finish(tmp, dest, sha256, str(src))
    finally:
        tmp.unlink(missing_ok=True)


def download_verified(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> None:
    """Download `url` to `dest`, verified; retries network errors, never a checksum mismatch."""
    last_error: Exception | None = None
    for attempt in range(retries):
        tmp = temporary_beside(dest)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
            _finish(tmp, dest, sha256, url)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            last_error = error
            if attempt + 1 < retries:
                time.sleep(backoff * 2**attempt)
        finally:
            tmp.unlink(missing_ok=True)
    reason = getattr(last_error, "reason", last_error)
    raise DatasetError(f"could not download {url} after {retries} tries: {reason}")
