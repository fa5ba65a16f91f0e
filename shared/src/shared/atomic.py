"""Writing files so that a crash never leaves half of one behind.

Write to a temporary file in the destination's folder, then `os.replace` it over the target:
a rename within one folder is atomic, so readers see the old file or the new one, never a mix.
"""

import os
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
