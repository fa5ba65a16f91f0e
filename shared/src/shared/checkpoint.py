"""Checkpoints: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint is a folder:

    step_000500/
      model.safetensors       the weights
      optimizer.safetensors   the optimizer's tensors (its moments), when given
      meta.json               config, step, metrics, RNG states, tokenizer reference, the
                              optimizer's non-tensor state, and the sha256 of each file above

Why not `torch.save`: it pickles, and unpickling a file can run arbitrary code. safetensors only
holds named arrays and JSON only plain values, so loading a stranger's checkpoint is safe.
Why a checksum per file: safetensors notices a truncated header but not flipped bytes in the
data; the sha256 in meta.json catches both, and the error names the file.

The folder is written under a temporary name and renamed into place, so an interrupted save
leaves the previous checkpoint intact. Arrays may be numpy arrays or torch tensors; torch is
imported only when one is present or requested.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.atomic import replace_folder
from shared.errors import CheckpointError

FORMAT_VERSION = 1
Framework = Literal["numpy", "torch"]


@dataclass
class Checkpoint:
    model: dict[str, Any]  # name -> array (numpy or torch)
    optimizer: Any | None  # the optimizer state as it was given to save(), or None
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or (_is_torch(x) and hasattr(x, "shape"))


# ----------------------------------------------------------------------------------------------
# Nested state <-> flat tensors + JSON tree


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, Any], Any]:
    """Split nested dicts/lists into a flat {path: array} and a JSON tree that points at them.

    An optimizer's state_dict mixes tensors (moments) with plain values (learning rates) and
    int dict keys (parameter indices); arrays go to safetensors, the rest stays readable JSON,
    with tuples and non-string keys marked so that they come back as they were.
    """
    arrays: dict[str, Any] = {}

    def walk(node: Any, path: str) -> Any:
        if _is_array(node):
            arrays[path] = node
            return {"__tensor__": path}
        if isinstance(node, Mapping):
            if all(isinstance(k, str) for k in node):
                return {k: walk(v, f"{path}.{k}" if path else k) for k, v in node.items()}
            return {
                "__items__": [
                    [k, walk(v, f"{path}.{k}" if path else str(k))] for k, v in node.items()
                ]
            }
        if isinstance(node, list | tuple):
            items = [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(node)]
            return {"__tuple__": items} if isinstance(node, tuple) else items
        if isinstance(node, np.generic):
            return node.item()
        return node

    return arrays, walk(state, prefix)


def unflatten_state(tree: Any, arrays: Mapping[str, Any]) -> Any:
    """Inverse of flatten_state."""
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return arrays[tree["__tensor__"]]
        if set(tree) == {"__tuple__"}:
            return tuple(unflatten_state(v, arrays) for v in tree["__tuple__"])
        if set(tree) == {"__items__"}:
            return {k: unflatten_state(v, arrays) for k, v in tree["__items__"]}
        return {k: unflatten_state(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unflatten_state(v, arrays) for v in tree]
    return tree


# ----------------------------------------------------------------------------------------------
# Writing


def _to_json(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _write_safetensors(arrays: Mapping[str, Any], path: Path) -> None:
    if any(_is_torch(a) for a in arrays.values()):
        import torch
        from safetensors.torch import save_file

        tensors, seen = {}, set()
        for name, a in arrays.items():
            t = a.detach() if _is_torch(a) else torch.from_numpy(np.asarray(a))
            # safetensors refuses tensors that share memory (tied embeddings): store a copy
            key = (t.untyped_storage().data_ptr(), t.storage_offset())
            tensors[name] = t.contiguous().clone() if key in seen else t.contiguous()
            seen.add(key)
        save_file(tensors, str(path))
    else:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    folder: str | Path,
    model: Mapping[str, Any],
    optimizer: Any | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically; returns its path.

    `model` maps names to arrays; `optimizer` is any nested state (e.g. a torch optimizer's
    state_dict); `meta` holds JSON-ready values (config dict, step, metrics, RNG states, ...).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        files = {"model.safetensors": dict(model)}
        record: dict[str, Any] = {"format": FORMAT_VERSION, **(meta or {})}
        if optimizer is not None:
            opt_arrays, opt_tree = flatten_state(optimizer)
            files["optimizer.safetensors"] = opt_arrays
            record["optimizer_state"] = opt_tree
        record["files"] = {}
        for name, arrays in files.items():
            _write_safetensors(arrays, tmp / name)
            record["files"][name] = _sha256(tmp / name)
        with open(tmp / "meta.json", "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2, default=_to_json)
            fh.flush()
            os.fsync(fh.fileno())
        replace_folder(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ----------------------------------------------------------------------------------------------
# Reading


def _read_safetensors(path: Path, framework: Framework) -> dict[str, Any]:
    from safetensors import SafetensorError

    try:
        if framework == "torch":
            from safetensors.torch import load_file

            return load_file(str(path))
        from safetensors.numpy import load_file

        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from None


def read_meta(folder: str | Path) -> dict[str, Any]:
    """Just the JSON part of a checkpoint (cheap: no tensors are read)."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint at {folder} (the folder does not exist)")
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path} is missing: {folder} is not a complete checkpoint")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{meta_path} is not valid JSON ({error}); the file is corrupt"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path} has checkpoint format {meta.get('format')!r}, expected {FORMAT_VERSION}"
        )
    return meta


def check_state(
    arrays: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], source: str
) -> None:
    """Raise CheckpointError naming missing, unexpected and wrongly shaped entries."""
    missing = [k for k in expected if k not in arrays]
    unexpected = [k for k in arrays if k not in expected]
    wrong = [
        f"{k} {tuple(arrays[k].shape)} vs model {tuple(expected[k])}"
        for k in expected
        if k in arrays and tuple(arrays[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch {_first(wrong)}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit this model: {'; '.join(problems)} "
            "(was it saved with another config?)"
        )


def _first(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def load_checkpoint(
    folder: str | Path,
    expected: Mapping[str, tuple[int, ...]] | None = None,
    framework: Framework = "numpy",
) -> Checkpoint:
    """Read and verify a checkpoint; `expected` maps weight names to the shapes the model needs."""
    folder = Path(folder)
    meta = read_meta(folder)
    arrays: dict[str, dict[str, Any]] = {}
    for name, digest in meta.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing from the checkpoint")
        if _sha256(path) != digest:
            raise CheckpointError(
                f"{path} is truncated or corrupt (its sha256 differs from the one in meta.json)"
            )
        arrays[name] = _read_safetensors(path, framework)
    if "model.safetensors" not in arrays:
        raise CheckpointError(f"{folder}/meta.json lists no model.safetensors")
    model = arrays["model.safetensors"]
    if expected is not None:
        check_state(model, expected, str(folder / "model.safetensors"))
    optimizer = None
    if "optimizer_state" in meta:
        optimizer = unflatten_state(
            meta.pop("optimizer_state"), arrays.get("optimizer.safetensors", {})
        )
    return Checkpoint(model=model, optimizer=optimizer, meta=meta, path=folder)
