"""`gpt make-pref-data`: preference pairs on the checkable tasks, the rejected reply on-policy.

    uv run --package gpt make-pref-data --init SFT_RUN --tasks sort --n 5000 --out pairs.jsonl

For each training prompt (held-out numbers and words never among them, as in make-chat-data)
the chosen reply is the right answer, and the rejected one is the policy's own mistake: --init
answers --samples times at --temperature, and the first reply that ended and is wrong becomes
the rejected one. Where every sample was right, a near miss is made instead (one digit or
letter of the answer's last word changed). On-policy rejections are what DPO learns most from:
they are the mistakes this model actually makes, where a made-up one may be a reply it would
never write anyway (its log-ratio then barely moves).
"""

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from gpt.chat.data import TASKS, WORD_TASKS, make_rows, shakespeare
from gpt.chat.evaluate import Case, case_of, is_right
from gpt.chat.format import CHAT_TOKENS
from gpt.chat.sampling import sample_replies
from gpt.post.pairs import PreferencePair, pair_row
from gpt.post.policy import chat_run_tokenizer
from shared.atomic import write_text_atomic
from shared.config import option, parse_config
from shared.device import pick_device, pick_threads
from shared.errors import UsageError
from shared.runs import Progress, find_checkpoint
from tokenizers_fromscratch import Tokenizer, TokenizerError

CHECKABLE = tuple(t for t in TASKS if t != "style")  # style has many right answers, no wrong one


@dataclass
class MakePrefDataConfig:
    init: str | None = option(None, "the chat run whose own mistakes become the rejected replies "
                              "(default: the latest run)")  # fmt: skip
    tasks: list[str] = option(["sort"], f"which tasks ({', '.join(CHECKABLE)})")
    n: int = option(5000, "pairs to write (one per prompt)", ge=1)
    samples: int = option(4, "replies sampled per prompt to find a wrong one", ge=1)
    temperature: float = option(1.0, "sampling temperature", gt=0)
    max_new_tokens: int = option(48, "longest reply", ge=1)
    working: bool = option(False, "additions answered with their column sums (make-chat-data's "
                           "--working)")  # fmt: skip
    system_share: float = option(0.5, "share of prompts with a system prompt", ge=0, le=1)
    seed: int = option(0, "seeds the prompts and the samples: the same seed writes the same file")
    batch_size: int = option(256, "replies sampled together", ge=1)
    out: Path = option(Path("pairs.jsonl"), "the JSON Lines file to write")
    device: str = option("auto", "auto, cpu, cuda or mps")
    threads: int = option(0, "torch CPU threads (0: the idle cores)", ge=0)


def near_miss(answer: str, rng: random.Random, spellable: str = "") -> str:
    """The answer with one digit or letter of its last word changed: "834" -> "837". The new
    character is one of `spellable` (the tokenizer's), where given."""
    start = answer.rfind(" ") + 1
    positions = [i for i in range(start, len(answer)) if answer[i].isalnum()]
    if not positions:
        return answer + answer[-1]
    i = rng.choice(positions)
    pool = "0123456789" if answer[i].isdigit() else "abcdefghijklmnopqrstuvwxyz"
    pool = [c for c in pool if c != answer[i].lower() and (not spellable or c in spellable)]
    if not pool:
        return answer + answer[-1]
    return answer[:i] + rng.choice(pool) + answer[i + 1 :]


def can_spell(tok: Tokenizer, text: str) -> bool:
    try:
        tok.encode(text)
    except TokenizerError:
        return False
    return True


def writable(reply: str) -> bool:
    """A reply a pairs file can hold: not empty, and spelling no chat token (a sampled reply
    can contain one, as an id; as text it would read as a turn of the template)."""
    return bool(reply) and not any(t in reply for t in CHAT_TOKENS)


def make_pairs(model: torch.nn.Module, tok: Tokenizer, cases: list[Case], cfg: MakePrefDataConfig,
               progress: Progress | None = None) -> tuple[list[PreferencePair], int]:  # fmt: skip
    """One pair per case, and how many of them reject the policy's own reply."""
    generator = torch.Generator().manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    pairs, on_policy = [], 0
    spellable = "".join(c for c in "0123456789abcdefghijklmnopqrstuvwxyz" if can_spell(tok, c))
    chunk = max(1, cfg.batch_size // cfg.samples)
    for start in range(0, len(cases), chunk):
        part = cases[start : start + chunk]
        prompts = [c.prompt for c in part]
        groups = sample_replies(model, tok, prompts, cfg.samples, cfg.temperature,
                                cfg.max_new_tokens, generator, cfg.batch_size)  # fmt: skip
        for case, group in zip(part, groups, strict=True):
            wrong = [s.text for s in group if s.ended and writable(s.text)
                     and not is_right(case, s.text, {})]  # fmt: skip
            rejected = wrong[0] if wrong else near_miss(case.answer, rng, spellable)
            on_policy += bool(wrong)
            pairs.append(PreferencePair(case.prompt, case.answer, rejected, case.task))
        if progress is not None:
            progress.advance(len(part))
    return pairs, on_policy


def make_pref_data(argv: list[str]) -> None:
    from gpt.runs import load_run_model

    cfg = parse_config(MakePrefDataConfig, argv, prog="gpt make-pref-data",
                       description=__doc__.split("\n\n")[0])  # fmt: skip
    unknown = [t for t in cfg.tasks if t not in CHECKABLE]
    if unknown or not cfg.tasks:
        raise UsageError(f"--tasks {','.join(cfg.tasks)}: choose among {', '.join(CHECKABLE)}")
    checkpoint = find_checkpoint("gpt", cfg.init)
    chat_run_tokenizer(checkpoint)  # refuses a run without the chat tokens
    pick_threads(cfg.threads)
    model, tok, _, _ = load_run_model(str(checkpoint), pick_device(cfg.device))
    text = shakespeare() if set(cfg.tasks) & WORD_TASKS else ""  # addition needs no words
    rows = make_rows(cfg.tasks, cfg.n, "train", cfg.seed, text, cfg.system_share,
                     cfg.working)  # fmt: skip
    cases = [case_of(row, f"prompt {i + 1}") for i, row in enumerate(rows)]
    with Progress(len(cases), desc="sampling", unit="prompt") as bar:
        pairs, on_policy = make_pairs(model, tok, cases, cfg, bar)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.out, "".join(json.dumps(pair_row(p)) + "\n" for p in pairs))
    print(f"wrote {len(pairs):,} pairs to {cfg.out}: {on_policy:,} reject a wrong reply of "
          f"{checkpoint} ({on_policy / len(pairs):.0%}), {len(pairs) - on_policy:,} a near miss "
          "(no sample ended with a wrong reply)")  # fmt: skip
