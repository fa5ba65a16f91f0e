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

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=5, threads=1)
    parser.add_argument("--vocab-size", type=int, default=4096, help="vocabulary size")
    parser.add_argument("--dataset", default="tinyshakespeare", help="a shared.datasets name")
    args = _harness.parse(parser)  # sets RAYON_NUM_THREADS, read when the library's pool starts
    import tokenizers

    from shared import datasets
    from tokenizers_fromscratch import ByteLevelBPETokenizer

    splits = datasets.load(args.dataset)
    if not isinstance(splits.get("train"), str):
        raise SystemExit(f"{args.dataset} is not a text dataset with a train split")
    text = splits["train"] + splits.get("val", "")
    lines = splits["train"].splitlines(keepends=True)
    all_lines = text.splitlines(keepends=True)
    n_bytes = len(text.encode("utf-8"))
    special = ["<|endoftext|>"]
    trained = {}  # the latest tokenizer each side trained, which the encoding cases use

    def train_ours() -> None:
        tok = ByteLevelBPETokenizer.train(lines, args.vocab_size, special_tokens=special)
        trained["ours"] = tok

    def train_theirs() -> None:
        tok = tokenizers.ByteLevelBPETokenizer()
        tok.train_from_iterator(
            lines,
            vocab_size=args.vocab_size,
            min_frequency=2,
            special_tokens=special,
            show_progress=False,
        )
        trained["theirs"] = tok

    def encode_ours(batch: bool) -> list:
        trained["ours"]._cache.clear()  # a cold cache every time
        return trained["ours"].encode_batch(all_lines) if batch else trained["ours"].encode(text)

    def encode_theirs(batch: bool) -> list:
        if batch:
            return [e.ids for e in trained["theirs"].encode_batch(all_lines)]
        return trained["theirs"].encode(text).ids

    print(
        f"byte-level BPE, vocab {args.vocab_size}, {args.dataset}: train on {len(lines):,} lines "
        f"({len(splits['train'].encode()):,} bytes), encode {n_bytes:,} bytes; "
        f"median of {args.rounds} interleaved rounds; tokenizers {tokenizers.__version__}, "
        f"{_harness.threads_note(args.threads)}"
    )
    timings = _harness.pairs(
        {
            "train": (train_ours, train_theirs),
            "encode one string": (lambda: encode_ours(False), lambda: encode_theirs(False)),
            f"encode_batch of {len(all_lines):,} lines": (
                lambda: encode_ours(True),
                lambda: encode_theirs(True),
            ),
        },
        rounds=args.rounds,
        warmup=0,
        labels=("ours", "tokenizers"),
        unit="s",
    )
    vocab_theirs = trained["theirs"].get_vocab()
    same_vocab = all(vocab_theirs.get(t) == i for i, t in enumerate(trained["ours"].id_to_str))
    ids = encode_ours(False)
    same_ids = ids == encode_theirs(False) and encode_ours(True) == encode_theirs(True)
    print(
        f"same vocabulary and merges as the library: {same_vocab}; "
        f"identical ids: {same_ids} ({len(ids):,} tokens)"
    )
    for case, t in list(timings.items())[1:]:
        print(
            f"{case}: ours {n_bytes / t['ours'].median / 1e6:.2f} MB/s, "
            f"tokenizers {n_bytes / t['tokenizers'].median / 1e6:.2f} MB/s"
        )


if __name__ == "__main__":
    main()
