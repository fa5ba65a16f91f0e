"""`gpt make-chat-data`: synthetic conversations whose answers can be checked exactly.

    uv run --package gpt make-chat-data --tasks add,reverse --n 20000 --out sft.jsonl
    uv run --package gpt make-chat-data --tasks add,reverse --n 400 --split test --out test.jsonl

Five tasks, each asked in several phrasings, under one of several system prompts:

    add       What is 347 + 218?                      -> 565
              with --working:                         -> 7+8=15, 4+1+1=6, 3+2=5, so 565
    sub       Compute 812 - 349.                      -> 463
    reverse   Reverse the word "castle".              -> eltsac
    sort      Sort the letters of "castle".           -> acelst
    style     Write a line in the style of HAMLET.    -> a real line HAMLET speaks

Held out means never seen: a tenth of the 3-digit numbers and a tenth of the words are kept
for `--split test` only (chosen by a hash, the same on every machine), and a training
conversation uses none of them. `--split select` draws from the same held-out numbers and
words by another random stream: prompts to choose settings on (a task, a learning rate)
without looking at the test prompts. So a test question can only be answered by the rule, not by
memory. The words (3 to 8 letters) and the characters' lines come from tinyshakespeare, the
text the base model read.

Every row carries its task (`"task": "add"`) beside the conversation, for `chat-eval`'s table.
"""

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.atomic import write_text_atomic
from shared.config import option, parse_config
from shared.errors import UsageError

TASKS = ("add", "sub", "reverse", "sort", "style")
WORD_TASKS = {"reverse", "sort", "style"}  # the tasks that need tinyshakespeare's text

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "Answer with the result only.",
    "You are a careful calculator and speller.",
    "Reply briefly.",
]

PHRASINGS: dict[str, list[str]] = {
    "add": ["What is {a} + {b}?", "Compute {a} + {b}.", "Add {a} and {b}.", "{a} + {b} = ?",
            "What do {a} and {b} add up to?", "Sum {a} and {b}."],
    "sub": ["What is {a} - {b}?", "Compute {a} - {b}.", "Subtract {b} from {a}.",
            "{a} - {b} = ?", "Take {b} away from {a}."],
    "reverse": ['Reverse the word "{w}".', "Spell {w} backwards.", "Write {w} in reverse.",
                'What is "{w}" reversed?'],
    "sort": ['Sort the letters of "{w}".', "Put the letters of {w} in alphabetical order.",
             'Arrange "{w}" alphabetically.'],
    "style": ["Write a line in the style of {c}.", "Say something as {c} would.",
              "Give me a line from {c}."],
}  # fmt: skip


def held_out(item: str) -> bool:
    """Whether `item` (a number or a word) belongs to the test split: a tenth, by hash."""
    return hashlib.sha256(item.encode()).digest()[0] % 10 == 0


def words_of(text: str) -> list[str]:
    """Distinct lower-case words of 3 to 8 letters, in order of first appearance."""
    return list(
        dict.fromkeys(w.lower() for w in re.findall(r"[A-Za-z]+", text) if 3 <= len(w) <= 8)
    )


def lines_by_character(text: str) -> dict[str, list[str]]:
    """Each speaker's lines: tinyshakespeare writes `NAME:` on a line, then the speech."""
    table: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        head, _, speech = block.partition(":\n")
        if head and head.isupper() and speech:
            lines = [ln.strip() for ln in speech.splitlines() if 10 <= len(ln.strip()) <= 50]
            table.setdefault(head.strip(), []).extend(lines)
    return {k: v for k, v in table.items() if len(v) >= 20}


@dataclass
class Sources:
    """What the tasks draw from, split: numbers and words for training or for the test."""

    numbers: list[int]
    words: list[str]
    lines: dict[str, list[str]]


def sources(text: str, split: Literal["train", "test", "select"]) -> Sources:
    """`test` and `select` draw from the held-out numbers and words, `train` from the rest."""
    keep = (lambda s: not held_out(s)) if split == "train" else (lambda s: held_out(s))
    numbers = [n for n in range(100, 1000) if keep(str(n))]
    words = [w for w in words_of(text) if keep(w)]
    return Sources(numbers, words, lines_by_character(text))


def user_character(user: str) -> str:
    """The character a style request names (the upper-case words at its end)."""
    return re.findall(r"[A-Z][A-Z ]*[A-Z]", user)[-1]


def addition_with_working(a: int, b: int) -> str:
    """The column sums right to left, each with its carry, then the result:

        478 + 356  ->  "8+6=14, 7+5+1=13, 4+3+1=8, so 834"

    A model that must write 834 at once has to settle the carries before its first digit, a
    look-ahead a small model learns slowly (docs/chat.md). Written out, every step is one digit
    fact plus a carry, and the result is the last digits of the sums read backwards: two
    things a small model learns quickly (the scratchpad of Nye et al., 2021).
    """
    steps, carry = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    for i in range(max(len(da), len(db))):
        x, y = int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0
        total = x + y + carry
        steps.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={total}")
        carry = total // 10
    return f"{', '.join(steps)}, so {a + b}"


def question(task: str, rng: random.Random, src: Sources,
             working: bool = False) -> tuple[str, str]:  # fmt: skip
    """(the user's message, the exact answer) for one draw of `task`; `working`: additions
    answered with their column sums first (`addition_with_working`)."""
    phrasing = rng.choice(PHRASINGS[task])
    if task in ("add", "sub"):
        a, b = rng.choice(src.numbers), rng.choice(src.numbers)
        if task == "sub" and a < b:
            a, b = b, a
        if task == "add" and working:
            return phrasing.format(a=a, b=b), addition_with_working(a, b)
        return phrasing.format(a=a, b=b), str(a + b if task == "add" else a - b)
    if task in ("reverse", "sort"):
        w = rng.choice(src.words)
        return phrasing.format(w=w), w[::-1] if task == "reverse" else "".join(sorted(w))
    character = rng.choice(sorted(src.lines))
    return phrasing.format(c=character), rng.choice(src.lines[character])


def make_rows(tasks: list[str], n: int, split: str, seed: int, text: str,
              system_share: float = 0.5, working: bool = False) -> list[dict]:  # fmt: skip
    """`n` conversations, the tasks taking turns; a `system_share` of them with a system
    prompt."""
    rng = random.Random(f"{seed}-{split}")
    src = sources(text, split)  # type: ignore[arg-type]
    rows = []
    for i in range(n):
        task = tasks[i % len(tasks)]
        user, answer = question(task, rng, src, working)
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        if rng.random() < system_share:
            prompts = SYSTEM_PROMPTS[:]
            if working and task == "add":  # it shows its working: not "the result only"
                prompts.remove("Answer with the result only.")
            messages.insert(0, {"role": "system", "content": rng.choice(prompts)})
        row = {"task": task, "conversations": messages}
        if task == "style":  # any line this character speaks is a right answer
            row["character"] = user_character(user)
        rows.append(row)
    return rows


def shakespeare() -> str:
    from gpt.data import load_text

    splits, _ = load_text("tinyshakespeare")
    return splits["train"] + splits["val"]


@dataclass
class MakeChatDataConfig:
    tasks: list[str] = option(
        list(TASKS), f"which tasks ({', '.join(TASKS)}); one named twice comes twice as often"
    )
    n: int = option(20000, "conversations to write", ge=1)
    split: Literal["train", "test", "select"] = option(
        "train",
        "train: only the numbers and words not held out; test: only the held-out ones; "
        "select: the held-out ones drawn again, for choosing settings without the test prompts",
    )
    seed: int = option(0, "seeds the draws: the same seed writes the same file")
    system_share: float = option(0.5, "share of conversations that open with a system prompt",
                                 ge=0, le=1)  # fmt: skip
    working: bool = option(False, "answer additions with their column sums first: "
                           '"8+6=14, 7+5+1=13, 4+3+1=8, so 834"')  # fmt: skip
    exclude: Path | None = option(None, "leave out every question this JSON Lines file asks "
                                  "(select prompts that are not test prompts)")  # fmt: skip
    out: Path = option(Path("sft.jsonl"), "the JSON Lines file to write")


def questions_in(path: Path) -> set[str]:
    """The last user message of every conversation in `path` (read strictly)."""
    from gpt.chat.format import read_conversations

    return {next(m.content for m in reversed(c) if m.role == "user")
            for c in read_conversations(path) if any(m.role == "user" for m in c)}  # fmt: skip


def make_chat_data(argv: list[str], text_source: Callable[[], str] = shakespeare) -> None:
    cfg = parse_config(MakeChatDataConfig, argv, prog="gpt make-chat-data",
                       description=__doc__.split("\n\n")[0])  # fmt: skip
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown or not cfg.tasks:
        raise UsageError(f"--tasks {','.join(cfg.tasks)}: choose among {', '.join(TASKS)}")
    rows = make_rows(cfg.tasks, cfg.n, cfg.split, cfg.seed, text_source(), cfg.system_share,
                     cfg.working)  # fmt: skip
    left_out = ""
    if cfg.exclude is not None:
        asked = questions_in(cfg.exclude)
        kept = [r for r in rows if r["conversations"][-2]["content"] not in asked]
        left_out = f"; {len(rows) - len(kept)} asked in {cfg.exclude} left out"
        rows = kept
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.out, "".join(json.dumps(r) + "\n" for r in rows))
    counts = {t: sum(r["task"] == t for r in rows) for t in dict.fromkeys(cfg.tasks)}
    shown = ", ".join(f"{t} {c}" for t, c in counts.items())
    print(f"wrote {len(rows):,} {cfg.split} conversations to {cfg.out} ({shown}{left_out})")
