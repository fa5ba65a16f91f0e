"""The figure of packages/gpt/docs/post.md: pass@1 on the select prompts against time, for a
GRPO run and a DPO run that started from the same SFT run, and GRPO's sampled reward.

    uv run python tools/plot_post_training.py --grpo grpo --dpo dpo --start 0.658 \
        --out packages/gpt/docs/post_curves.png

--start is the SFT run's greedy pass@1 on the same prompts (chat-eval --data select-sort.jsonl).
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared.paths import runs_dir  # noqa: E402


def rows(run: str) -> list[dict]:
    folder = Path(run) if Path(run).is_dir() else runs_dir() / "gpt" / run
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpo", required=True)
    parser.add_argument("--dpo", required=True)
    parser.add_argument("--start", type=float, required=True, help="the SFT run's pass@1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in (("GRPO", args.grpo), ("DPO (+ NLL)", args.dpo)):
        points = [(0.0, args.start)] + [(r["time"], r["pass1"]) for r in rows(run) if "pass1" in r]
        left.plot(*zip(*points, strict=True), marker="o", label=name)
    left.axhline(args.start, color="grey", linestyle="--", label="the SFT run")
    left.set(xlabel="seconds of training", ylabel="greedy pass@1, select prompts (sort)",
             title="held-out sorting, exact match")  # fmt: skip
    left.legend()
    reward = [(r["step"], r["reward_avg"]) for r in rows(args.grpo) if "reward_avg" in r]
    right.plot(*zip(*reward, strict=True), color="C0")
    right.set(xlabel="step", ylabel="mean reward of the last 25 rounds",
              title="GRPO: sampled replies exactly right (T = 1)")  # fmt: skip
    for axis in (left, right):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
