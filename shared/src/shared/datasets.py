"""The dataset registry: what each dataset is, where it comes from, and how to load it.

Each entry names its files with their sha256, its canonical source and attribution, and a loader
that turns the verified files into splits. Files are looked up in this order:

  1. the cache, `datasets_cache/<name>/` at the repository root (or `$DATASETS_CACHE`);
  2. a mirror folder laid out the same way, `$DATASETS_MIRROR/<name>/` (copied into the cache);
  3. a download from the canonical URL (skipped when `$DATASETS_OFFLINE=1`);
  4. otherwise one error saying how to get the data.

Every file that enters the cache is checked against its sha256 first (shared.download).
`pystdlib` needs no files: it is built from this interpreter's own standard library, so there is
always something to train on offline.

    from shared import datasets
    splits = datasets.load("tinyshakespeare")   # {"train": str, "val": str}
"""

import gzip
import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.download import copy_verified, download_verified, sha256_of
from shared.errors import DatasetError
from shared.paths import datasets_cache_dir, datasets_mirror_dir


@dataclass(frozen=True)
class DataFile:
    path: str  # where it sits inside the dataset's folder
    sha256: str
    url: str | None  # None: no public download of these exact bytes (mirror only)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    source: str
    attribution: str
    files: tuple[DataFile, ...]
    loader: Callable[[Path], dict[str, Any]]  # the dataset's folder -> {split: data}


# ----------------------------------------------------------------------------------------------
# Loaders


def _split_text(text: str, train_fraction: float = 0.9) -> dict[str, str]:
    """The usual character-LM split: the first 90% trains, the last 10% validates."""
    n = int(len(text) * train_fraction)
    return {"train": text[:n], "val": text[n:]}


def _load_tinyshakespeare(folder: Path) -> dict[str, Any]:
    return _split_text((folder / "input.txt").read_text(encoding="utf-8"))


def _load_sst2(folder: Path) -> dict[str, Any]:
    """`sentence<TAB>label` files as `datasets.Dataset`s: columns sentence (str), label (int)."""
    import datasets as hf_datasets

    hf_datasets.disable_progress_bars()
    loaded = hf_datasets.load_dataset(
        "csv",
        data_files={"train": str(folder / "train.tsv"), "dev": str(folder / "dev.tsv")},
        delimiter="\t",
        quoting=3,  # csv.QUOTE_NONE: sentences contain quote characters that are not quoting
        cache_dir=str(folder / ".hf_cache"),
    )
    return {split: loaded[split] for split in ("train", "dev")}


def _read_lines_gz(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().rstrip("\n").split("\n")


def _load_multi30k(folder: Path) -> dict[str, Any]:
    """German-English caption pairs as `datasets.Dataset`s with columns de and en."""
    import datasets as hf_datasets

    splits = {}
    for split in ("train", "val", "test_2016_flickr"):
        de = _read_lines_gz(folder / f"{split}.de.gz")
        en = _read_lines_gz(folder / f"{split}.en.gz")
        if len(de) != len(en):
            raise DatasetError(
                f"multi30k {split}: {len(de)} German lines but {len(en)} English lines in {folder}"
            )
        splits[split] = hf_datasets.Dataset.from_dict({"de": de, "en": en})
    return splits


# Folders of the standard library that are not ordinary library code.
_PYSTDLIB_SKIP = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}


def build_pystdlib_corpus(max_chars: int = 3_000_000) -> str:
    """Concatenate this interpreter's pure-ASCII stdlib `.py` files in sorted path order.

    Deterministic for a given Python build: the same files in the same order, each preceded by
    a `# file: <path>` line, stopping before `max_chars`. ASCII only keeps the character
    vocabulary small (about 100 symbols) for character-level models.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not _PYSTDLIB_SKIP.intersection(p.relative_to(root).parts[:-1])
    )
    parts, total = [], 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.isascii():
            continue
        chunk = f"# file: {path.relative_to(root).as_posix()}\n{text}\n"
        if total + len(chunk) > max_chars:
            break
        parts.append(chunk)
        total += len(chunk)
    return "".join(parts)


def _load_pystdlib(folder: Path) -> dict[str, Any]:
    return _split_text(build_pystdlib_corpus())


# ----------------------------------------------------------------------------------------------
# The registry

_MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
_MULTI30K_SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
}

REGISTRY: dict[str, DatasetSpec] = {
    "tinyshakespeare": DatasetSpec(
        name="tinyshakespeare",
        description="1,115,394 characters of Shakespeare; first 90% train, last 10% val",
        source="karpathy/char-rnn, data/tinyshakespeare/input.txt",
        attribution="Andrej Karpathy's char-rnn; text from the works of Shakespeare "
        "(public domain)",
        files=(
            DataFile(
                "input.txt",
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                "tinyshakespeare/input.txt",
            ),
        ),
        loader=_load_tinyshakespeare,
    ),
    "sst2": DatasetSpec(
        name="sst2",
        description="SST-2 sentiment, sentence<TAB>label (1 = positive): train 62,349, dev 2,000; "
        "both drawn from GLUE's SST-2 train split, so phrases overlap",
        source="GLUE SST-2 train.tsv, split into train and a 2,000-row dev by the project mirror",
        attribution="Socher et al. 2013, Recursive Deep Models for Semantic Compositionality "
        "Over a Sentiment Treebank; GLUE benchmark (Wang et al. 2018)",
        files=(
            DataFile(
                "train.tsv",
                "21309acb4ce7e2eef83c36eab5372d0c3b2167c14c4df4346252532a0f02a27d",
                None,
            ),
            DataFile(
                "dev.tsv", "fd62b25395e8c32d2330a48385992f6283eb2cae09d667b31baf925b24997e85", None
            ),
        ),
        loader=_load_sst2,
    ),
    "multi30k": DatasetSpec(
        name="multi30k",
        description="Multi30k task 1 German-English caption pairs: train 29,000, val 1,014, "
        "test_2016_flickr 1,000",
        source="multi30k/dataset, data/task1/raw",
        attribution="Elliott et al. 2016, Multi30K: Multilingual English-German Image "
        "Descriptions; captions from Flickr30k (Young et al. 2014)",
        files=tuple(DataFile(n, s, _MULTI30K_URL + n) for n, s in _MULTI30K_SHA256.items()),
        loader=_load_multi30k,
    ),
    "pystdlib": DatasetSpec(
        name="pystdlib",
        description="about 3 MB of this Python's own standard-library source (ASCII files, "
        "sorted); "
        "first 90% train, last 10% val; always available offline",
        source="the running interpreter's standard library",
        attribution="Python Software Foundation, PSF License",
        files=(),
        loader=_load_pystdlib,
    ),
}


# ----------------------------------------------------------------------------------------------
# Lookup


def get_spec(name: str) -> DatasetSpec:
    if name not in REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _offline() -> bool:
    return os.environ.get("DATASETS_OFFLINE", "").lower() in ("1", "true", "yes")


def _ensure_file(spec: DatasetSpec, file: DataFile, mirror: Path | None) -> None:
    dest = datasets_cache_dir() / spec.name / file.path
    if dest.is_file():
        if sha256_of(dest) == file.sha256:
            return
        print(f"note: {dest} does not match its sha256; fetching it again", file=sys.stderr)
    if mirror is not None and (mirror / spec.name / file.path).is_file():
        copy_verified(mirror / spec.name / file.path, dest, file.sha256)
        return
    if file.url is not None and not _offline():
        try:
            download_verified(file.url, dest, file.sha256)
            return
        except DatasetError as error:
            problem = str(error)
    elif file.url is None:
        problem = f"it has no public download of these exact files ({spec.source})"
    else:
        problem = "downloads are off (DATASETS_OFFLINE=1)"
    where = f"{mirror}/{spec.name}/" if mirror is not None else "no DATASETS_MIRROR set"
    fetch = f"uv run python tools/fetch_datasets.py {spec.name}"
    how = (
        f"`{fetch}` on a machine with internet, or `{fetch} --from DIR`"
        if file.url is not None
        else f"`{fetch} --from DIR`"
    )
    raise DatasetError(
        f"dataset {spec.name!r} is unavailable: {file.path} is not in {dest.parent}/, "
        f"nor in a mirror ({where}), and {problem}. Get it with {how} "
        f"to copy it from a folder holding {spec.name}/{file.path}"
    )


def locate(name: str, mirror: Path | None = None) -> Path:
    """The cache folder of dataset `name`, with every file present and verified."""
    spec = get_spec(name)
    mirror = mirror if mirror is not None else datasets_mirror_dir()
    for file in spec.files:
        _ensure_file(spec, file, mirror)
    return datasets_cache_dir() / spec.name


def load(name: str) -> dict[str, Any]:
    """The splits of dataset `name`: text datasets give strings, tabular ones `datasets.Dataset`."""
    spec = get_spec(name)
    return spec.loader(locate(name))
