"""Time byte-level BPE training and encoding, ours against the `tokenizers` library.

Both train to the same vocabulary (4,096 by default) on the tinyshakespeare train split, given as
lines, with the same special token and min_frequency; both then encode the whole text, as one
string and as a batch of lines. The two run interleaved, in rounds (ours then theirs, then
theirs then ours, ...), and the medians over rounds are reported, so drift in machine load hits
both. Encoding starts from a cold cache in
every round (ours memoizes pre-token -> ids, which is part of what is measured).

`--threads` caps the `tokenizers` library's thread pool (RAYON_NUM_THREADS, set before it is
imported). The default, 1, compares single-thread speed, which is the fair comparison with our
single-threaded Python; `--threads 0` leaves the library at its default (all cores).

    uv run python tools/bench/tokenizers_vs_hf.py
    uv run python tools/bench/tokenizers_vs_hf.py --vocab-size 8192 --rounds 5 --threads 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-size", type=int, default=4096, help="default 4096")
    parser.add_argument("--dataset", default="tinyshakespeare", help="a shared.datasets name")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per library")
    parser.add_argument("--threads", type=int, default=1, help="tokenizers' threads (0: default)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # read when the pool starts
    import tokenizers

    from shared import datasets
    from tokenizers_fromscratch import ByteLevelBPETokenizer

    splits = datasets.load(args.dataset)
    if not isinstance(splits.get("train"), str):
        raise SystemExit(f"{args.dataset} is not a text dataset with a train split")
    text = splits["train"] + splits.get("val", "")
    lines = splits["train"].splitlines(keepends=True)
    n_bytes = len(text.encode("utf-8"))
    special = ["<|endoftext|>"]

    def train_ours() -> ByteLevelBPETokenizer:
        return ByteLevelBPETokenizer.train(lines, args.vocab_size, special_tokens=special)

    def train_theirs() -> tokenizers.ByteLevelBPETokenizer:
        tok = tokenizers.ByteLevelBPETokenizer()
        tok.train_from_iterator(
            lines,
            vocab_size=args.vocab_size,
            min_frequency=2,
            special_tokens=special,
            show_progress=False,
        )
        return tok

    def timed(fn, *args):  # noqa: ANN001, ANN002, ANN202
        start = time.perf_counter()
        result = fn(*args)
        return time.perf_counter() - start, result

    train_times: dict[str, list[float]] = {"ours": [], "theirs": []}
    encode_times: dict[str, list[float]] = {"ours": [], "theirs": []}
    batch_times: dict[str, list[float]] = {"ours": [], "theirs": []}
    all_lines = text.splitlines(keepends=True)
    for r in range(args.rounds):
        order = ["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]
        for who in order:
            seconds, tok = timed(train_ours if who == "ours" else train_theirs)
            train_times[who].append(seconds)
            if who == "ours":
                ours = tok
            else:
                theirs = tok
        for who in order:
            if who == "ours":
                ours._cache.clear()  # a cold cache every round
                seconds, ids_ours = timed(ours.encode, text)
            else:
                seconds, enc = timed(theirs.encode, text)
                ids_theirs = enc.ids
            encode_times[who].append(seconds)
        for who in order:  # the same text as a batch of lines (encode_batch)
            if who == "ours":
                ours._cache.clear()
                seconds, batch_ours = timed(ours.encode_batch, all_lines)
            else:
                seconds, batch = timed(theirs.encode_batch, all_lines)
                batch_theirs = [e.ids for e in batch]
            batch_times[who].append(seconds)

    vocab_theirs = theirs.get_vocab()
    same_vocab = all(vocab_theirs.get(t) == i for i, t in enumerate(ours.id_to_str))
    print(
        f"byte-level BPE, vocab {args.vocab_size}, {args.dataset}: train on {len(lines):,} lines "
        f"({len(splits['train'].encode()):,} bytes), encode {n_bytes:,} bytes; "
        f"median of {args.rounds} interleaved rounds; tokenizers {tokenizers.__version__}, "
        f"threads {'default' if args.threads == 0 else args.threads}"
    )
    print(
        f"same vocabulary and merges as the library: {same_vocab}; "
        f"identical ids: {ids_ours == ids_theirs and batch_ours == batch_theirs} "
        f"({len(ids_ours):,} tokens)"
    )
    t_ours, t_theirs = (statistics.median(train_times[w]) for w in ("ours", "theirs"))
    e_ours, e_theirs = (statistics.median(encode_times[w]) for w in ("ours", "theirs"))
    b_ours, b_theirs = (statistics.median(batch_times[w]) for w in ("ours", "theirs"))
    print(
        f"train   ours {t_ours:7.3f} s   tokenizers {t_theirs:7.3f} s   "
        f"ours/theirs time {t_ours / t_theirs:5.2f}x"
    )
    for label, mine, lib, note in [
        ("encode", e_ours, e_theirs, "one string"),
        ("lines ", b_ours, b_theirs, f"encode_batch of {len(all_lines):,} lines"),
    ]:
        print(
            f"{label}  ours {n_bytes / mine / 1e6:7.2f} MB/s tokenizers "
            f"{n_bytes / lib / 1e6:7.2f} MB/s ours/theirs throughput {lib / mine:5.2f}x  "
            f"({note})"
        )


if __name__ == "__main__":
    main()
