"""Draw the computation graph behind a tensor, as Graphviz DOT text or a PNG.

Each node is one tensor: its op (or `leaf` / `const`), its shape and dtype. Edges run from the
inputs of an op to its result, so the picture reads in the direction of the forward pass; the
backward pass walks the same edges the other way. Leaves that require grad are drawn filled:
those are the tensors whose `.grad` backward() fills.

    from micrograd import Tensor, to_dot
    x = Tensor([1.0, 2.0], requires_grad=True)
    print(to_dot((x * x).sum()))        # paste into https://dreampuf.github.io/GraphvizOnline

`render_png` needs the Graphviz `dot` program (apt install graphviz, brew install graphviz).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from micrograd.engine import topological_order
from micrograd.tensor import Tensor


def _label(t: Tensor) -> str:
    if t._backward is not None:
        kind = t._op
    elif t.requires_grad:
        kind = "leaf"
    else:
        kind = t._op or "const"
    shape = "x".join(str(n) for n in t.shape) or "scalar"
    return f"{kind}\\n{shape} {t.dtype}"


def to_dot(root: Tensor, rankdir: str = "LR") -> str:
    """The graph that produced `root` as DOT text (one node per tensor, inputs -> output)."""
    nodes = topological_order(root)
    ids = {t: f"t{i}" for i, t in enumerate(nodes)}
    lines = ["digraph micrograd {", f"  rankdir={rankdir};", "  node [shape=box, fontsize=10];"]
    for t in nodes:
        style = ', style=filled, fillcolor="#cde8ff"' if t.requires_grad and not t._parents else ""
        if t is root:
            style = ', style=filled, fillcolor="#ffe3b3"'
        lines.append(f'  {ids[t]} [label="{_label(t)}"{style}];')
    for t in nodes:
        for parent in t._parents:
            lines.append(f"  {ids[parent]} -> {ids[t]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_png(root: Tensor, path: str | Path) -> Path:
    """Write the graph of `root` to `path` as a PNG using Graphviz's `dot` executable."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "render_png needs Graphviz's `dot` on PATH (apt install graphviz, brew install "
            "graphviz); or print to_dot(tensor) and paste it into any Graphviz viewer"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [dot, "-Tpng", "-o", str(path)], input=to_dot(root), text=True, capture_output=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"dot failed with exit code {result.returncode}: {result.stderr}")
    return path
