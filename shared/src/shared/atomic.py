"""Writing files so that a crash never leaves half of one behind.

Write to a temporary file in the destination's folder, then `os.replace` it over the target:
a rename within one folder is atomic, so readers see the old file or the new one, never a mix.
"""

import os
import shutil
import tempfile
from pathlib import Path


def temporary_beside(dest: Path) -> Path:
    """A new empty file next to `dest` (same folder, so the final rename is atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".part-", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def replace_folder(new: Path, folder: Path) -> None:
    """Move the finished folder `new` (a sibling of `folder`) into `folder`'s place.

    A folder cannot be renamed over a non-empty one, so the old folder is first renamed aside
    and removed only after the new one is in place: a crash leaves the old folder or the new.
    """
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
    os.replace(new, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
