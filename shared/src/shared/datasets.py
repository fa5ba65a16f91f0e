"""The dataset registry: what each dataset is, where it comes from, and how to load it.

Each entry names its files with their sha256, its canonical source and attribution, and a loader
that turns the verified files into splits. Files are looked up in this order:

  1. the cache, `datasets_cache/<name>/` at the repository root (or `$DATASETS_CACHE`);
  2. a mirror folder laid out the same way, `$DATASETS_MIRROR/<name>/` (copied into the cache);
  3. a download from the canonical URL (skipped when `$DATASETS_OFFLINE=1`), or, for a dataset
     whose mirror files have no public download of their own (sst2), its public `Archive`:
     a zip whose members become the dataset's files in another layout, which the loader reads;
  4. otherwise one error saying how to get the data.

Every file that enters the cache is checked against its sha256 first (shared.download); the few
files whose source publishes only an md5 (GLUE's SST-2 zip and its train.tsv) against that.
`pystdlib` needs no files: it is built from this interpreter's own standard library, so there is
always something to train on offline.

    from shared import datasets
    splits = datasets.load("tinyshakespeare")   # {"train": str, "val": str}
"""

import gzip
import os
import shutil
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from shared.download import copy_verified, digest_of, download_verified
from shared.errors import DatasetError
from shared.paths import datasets_cache_dir, datasets_mirror_dir


@dataclass(frozen=True)
class DataFile:
    path: str  # where it sits inside the dataset's folder
    sha256: str | None  # None only where no sha256 of these bytes is published: give md5
    url: str | None  # None: no public download of these exact bytes (mirror or archive only)
    md5: str | None = None

    def __post_init__(self) -> None:
        if (self.sha256 is None) == (self.md5 is None):
            raise ValueError(f"{self.path}: give its sha256, or its md5 where none is published")

    @property
    def checksum(self) -> tuple[str, str]:
        """(algorithm, hex digest) that every copy of this file must match."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", str(self.md5))


@dataclass(frozen=True)
class Archive:
    """A public zip that holds a dataset in another layout than its mirror files.

    When neither the cache nor the mirror holds the dataset's `files`, `locate` downloads the
    zip, checks it, and extracts each member to the file it becomes, checked again.
    """

    url: str
    md5: str  # of the zip, as its users publish it (no sha256 of it is published)
    members: dict[str, DataFile]  # path inside the zip -> the file it becomes in the folder


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    source: str
    attribution: str
    files: tuple[DataFile, ...]
    loader: Callable[[Path], dict[str, Any]]  # the dataset's folder -> {split: data}
    archive: Archive | None = None  # another way to the data, where `files` have no download


# ----------------------------------------------------------------------------------------------
# Loaders


def _split_text(text: str, train_fraction: float = 0.9) -> dict[str, str]:
    """The usual character-LM split: the first 90% trains, the last 10% validates."""
    n = int(len(text) * train_fraction)
    return {"train": text[:n], "val": text[n:]}


def _load_tinyshakespeare(folder: Path) -> dict[str, Any]:
    return _split_text((folder / "input.txt").read_text(encoding="utf-8"))


def _read_sentence_tsv(path: Path) -> tuple[list[str], list[int]]:
    """`sentence<TAB>label` lines after a header; GLUE's trailing space before the tab is cut."""
    sentences, labels = [], []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        sentence, tab, label = line.rpartition("\t")
        if not tab or label not in ("0", "1"):
            raise DatasetError(f"{path}:{number} is not `sentence<TAB>label`: {line[:60]!r}")
        sentences.append(sentence.strip())
        labels.append(int(label))
    return sentences, labels


def _load_sst2(folder: Path) -> dict[str, Any]:
    """GLUE's SST-2 as `datasets.Dataset`s with columns sentence (str), label (int, 1 = positive).

    train: GLUE's training rows (the mirror's train.tsv and dev.tsv together, 64,349 rows; or
    GLUE's own train.tsv, 67,349, where the download made the folder); validation: GLUE's dev
    set, 872 whole sentences, the split every stage reports on.
    """
    import datasets as hf_datasets

    if (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file():
        parts = [_read_sentence_tsv(folder / name) for name in ("train.tsv", "dev.tsv")]
    else:
        parts = [_read_sentence_tsv(folder / "glue_train.tsv")]
    train = ([s for p in parts for s in p[0]], [y for p in parts for y in p[1]])
    splits = {"train": train, "validation": _read_sentence_tsv(folder / "glue_dev.tsv")}
    return {
        name: hf_datasets.Dataset.from_dict({"sentence": sentences, "label": labels})
        for name, (sentences, labels) in splits.items()
    }


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

# GLUE's own SST-2 files. Its users publish md5s, not sha256s: torchtext, GluonNLP and PaddleNLP
# give these three. The mirror's glue_dev.tsv has the md5 they give dev.tsv, so one sha256
# checks it whichever way it came.
_GLUE_DEV_SHA256 = "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"
_GLUE_SST2 = Archive(
    url="https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
    md5="9f81648d4199384278b86e315dac217c",
    members={
        "SST-2/train.tsv": DataFile(
            "glue_train.tsv", None, None, md5="da409a0a939379ed32a470bc0f7fe99a"
        ),
        "SST-2/dev.tsv": DataFile("glue_dev.tsv", _GLUE_DEV_SHA256, None),
    },
)

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
        description="GLUE SST-2 sentiment, sentence<TAB>label (1 = positive): train 64,349 rows "
        "of GLUE's train split (67,349 from GLUE's zip), validation = GLUE's dev set, "
        "872 sentences, the split every stage reports on",
        source="the project mirror: train.tsv + dev.tsv (64,349 rows of GLUE's SST-2 train.tsv, "
        "the 2,000 of dev.tsv once held out of it) and glue_dev.tsv (GLUE's dev.tsv, "
        "byte-identical); or GLUE's SST-2.zip from " + _GLUE_SST2.url,
        attribution="Socher et al. 2013, Recursive Deep Models for Semantic Compositionality "
        "Over a Sentiment Treebank; GLUE benchmark (Wang et al. 2018)",
        archive=_GLUE_SST2,
        files=(
            DataFile(
                "train.tsv",
                "21309acb4ce7e2eef83c36eab5372d0c3b2167c14c4df4346252532a0f02a27d",
                None,
            ),
            DataFile(
                "dev.tsv", "fd62b25395e8c32d2330a48385992f6283eb2cae09d667b31baf925b24997e85", None
            ),
            DataFile("glue_dev.tsv", _GLUE_DEV_SHA256, None),
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


def _verified(path: Path, file: DataFile) -> bool:
    algorithm, expected = file.checksum
    return path.is_file() and digest_of(path, algorithm) == expected


def _unavailable(spec: DatasetSpec, file: DataFile, mirror: Path | None, problem: str) -> NoReturn:
    where = f"{mirror}/{spec.name}/" if mirror is not None else "no DATASETS_MIRROR set"
    fetch = f"uv run python tools/fetch_datasets.py {spec.name}"
    how = (
        f"`{fetch}` on a machine with internet, or `{fetch} --from DIR`"
        if file.url is not None or spec.archive is not None
        else f"`{fetch} --from DIR`"
    )
    raise DatasetError(
        f"dataset {spec.name!r} is unavailable: {file.path} is not in "
        f"{datasets_cache_dir() / spec.name}/, nor in a mirror ({where}), and {problem}. "
        f"Get it with {how} to copy it from a folder holding {spec.name}/{file.path}"
    )


def _ensure_file(spec: DatasetSpec, file: DataFile, mirror: Path | None) -> None:
    dest = datasets_cache_dir() / spec.name / file.path
    algorithm, expected = file.checksum
    if dest.is_file():
        if digest_of(dest, algorithm) == expected:
            return
        print(f"note: {dest} does not match its {algorithm}; fetching it again", file=sys.stderr)
    if mirror is not None and (mirror / spec.name / file.path).is_file():
        copy_verified(mirror / spec.name / file.path, dest, expected, algorithm=algorithm)
        return
    if file.url is not None and not _offline():
        try:
            download_verified(file.url, dest, expected, algorithm=algorithm)
            return
        except DatasetError as error:
            problem = str(error)
    elif _offline():
        problem = "downloads are off (DATASETS_OFFLINE=1)"
    else:
        problem = f"it has no public download of these exact files ({spec.source})"
    _unavailable(spec, file, mirror, problem)


def _in_cache_or_mirror(spec: DatasetSpec, mirror: Path | None) -> bool:
    cache = datasets_cache_dir() / spec.name
    return all(
        _verified(cache / f.path, f)
        or (mirror is not None and (mirror / spec.name / f.path).is_file())
        for f in spec.files
    )


def _extract_archive(archive: Archive, zip_path: Path, folder: Path) -> None:
    """Each member of the zip to its file in `folder`, verified (a wrong one is not kept)."""
    with zipfile.ZipFile(zip_path) as zf, tempfile.TemporaryDirectory(dir=folder) as tmp:
        names = zf.namelist()
        for member, file in archive.members.items():
            if member not in names:
                raise DatasetError(f"{archive.url} holds no {member}; it holds {names[:8]}")
            extracted = Path(tmp) / file.path
            with zf.open(member) as src, open(extracted, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
            algorithm, expected = file.checksum
            copy_verified(extracted, folder / file.path, expected, algorithm=algorithm)


def _locate_from_archive(spec: DatasetSpec, mirror: Path | None) -> Path:
    """The folder in the archive's layout: from the cache, else downloaded and extracted."""
    assert spec.archive is not None
    folder = datasets_cache_dir() / spec.name
    files = list(spec.archive.members.values())
    if all(_verified(folder / f.path, f) for f in files):
        return folder
    missing = next(f for f in spec.files if not _verified(folder / f.path, f))
    if _offline():
        _unavailable(spec, missing, mirror, "downloads are off (DATASETS_OFFLINE=1)")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        zip_path = Path(tmp) / Path(spec.archive.url).name
        try:
            download_verified(spec.archive.url, zip_path, spec.archive.md5, algorithm="md5")
            _extract_archive(spec.archive, zip_path, folder)
        except DatasetError as error:
            _unavailable(spec, missing, mirror, str(error))
    ours = {f.path for f in files}
    for file in spec.files:  # a bad leftover of the mirror's layout must not shadow the archive's
        path = folder / file.path
        if file.path not in ours and path.is_file() and not _verified(path, file):
            path.unlink()
    return folder


def locate(name: str, mirror: Path | None = None) -> Path:
    """The cache folder of dataset `name`, with every file present and verified."""
    spec = get_spec(name)
    mirror = mirror if mirror is not None else datasets_mirror_dir()
    if spec.archive is not None and not _in_cache_or_mirror(spec, mirror):
        return _locate_from_archive(spec, mirror)
    for file in spec.files:
        _ensure_file(spec, file, mirror)
    return datasets_cache_dir() / spec.name


def load(name: str) -> dict[str, Any]:
    """The splits of dataset `name`: text datasets give strings, tabular ones `datasets.Dataset`."""
    spec = get_spec(name)
    return spec.loader(locate(name))
