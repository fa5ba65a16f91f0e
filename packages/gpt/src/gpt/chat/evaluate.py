"""`gpt chat-eval`: exact-match accuracy per task on held-out conversations.

    uv run --package gpt chat-eval --run SFT_RUN --data test.jsonl
    uv run --package gpt chat-eval --run BASE_RUN --data test.jsonl     # the same prompts, base

Each conversation's last assistant message is the answer. The model reads everything before
it, then `<|assistant|>`, and writes greedily until `<|end|>` (or `--max_new_tokens`); the reply
is right when it equals the answer exactly. For `style` ("a line in the style of HAMLET") any
line that character speaks in tinyshakespeare is right.

A base run has never seen the chat tokens (nor, for Shakespeare's characters, digits): they are
added with fresh rows, exactly as `sft` adds them, so the base model answers the same prompts.
With `--samples 8` it also samples 8 replies a prompt (at --temperature) and reports pass@1
and pass@8 among them: how often one try, or the best of 8, is right. Results go to
`<run>/chat_eval.json` as well as the screen.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gpt.chat.format import (
    END,
    Message,
    chat_tokenizer,
    grow_vocabulary,
    parse_conversation,
    render,
)
from gpt.chat.sampling import pass_at_k, sample_replies
from gpt.generate import generate, pad_left
from shared.atomic import write_text_atomic
from shared.config import option, parse_config
from shared.device import pick_device, pick_threads
from shared.errors import UsageError
from tokenizers_fromscratch import Tokenizer


@dataclass
class ChatEvalConfig:
    run: str | None = option(None, "a gpt run, fine-tuned or base (default: the latest)")
    data: Path | None = option(None, "held-out conversations (make-chat-data --split test)")
    max_new_tokens: int = option(48, "longest reply", ge=1)
    batch_size: int = option(64, "conversations decoded together", ge=1)
    limit: int = option(0, "evaluate at most this many conversations (0: all)", ge=0)
    samples: int = option(0, "also sample N replies per prompt and report pass@1 and pass@N "
                          "among them (0: greedy only)", ge=0)  # fmt: skip
    temperature: float = option(1.0, "the sampling temperature of --samples", gt=0)
    seed: int = option(0, "seeds --samples' draws")
    device: str = option("auto", "auto, cpu, cuda or mps")
    threads: int = option(0, "torch CPU threads (0: the idle cores)", ge=0)


@dataclass
class Case:
    task: str
    prompt: list[Message]
    answer: str
    character: str | None = None  # style: whose line


def case_of(row: dict, where: str) -> Case:
    """A `make-chat-data` row (or any conversation row) -> the prompt before its last assistant
    message, and that message as the answer."""
    messages = parse_conversation(json.dumps(row), where)
    last = max(k for k, m in enumerate(messages) if m.role == "assistant")
    return Case(row.get("task", "chat"), messages[:last], messages[last].content,
                row.get("character"))  # fmt: skip


def is_right(case: Case, reply: str, lines: dict[str, list[str]]) -> bool:
    """Exact match; for `style`, any line the character speaks (`lines`: by character)."""
    if case.task == "style" and case.character:
        return reply in lines.get(case.character, [])
    return reply == case.answer


def style_lines(cases: list[Case]) -> dict[str, list[str]]:
    """Each character's lines, where a `style` case needs them to be checked; else nothing."""
    if not any(c.task == "style" for c in cases):
        return {}
    from gpt.chat.data import lines_by_character, shakespeare

    return lines_by_character(shakespeare())


def read_cases(path: Path, limit: int = 0) -> list[Case]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    cases = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        parse_conversation(line, f"{path}:{i + 1}")  # refuses a bad line, naming it
        cases.append(case_of(json.loads(line), f"{path}:{i + 1}"))
    if not cases:
        raise UsageError(f"{path} holds no conversations")
    return cases[:limit] if limit else cases


@torch.no_grad()
def replies(model: torch.nn.Module, tok: Tokenizer, prompts: list[list[Message]],
            max_new_tokens: int, batch_size: int) -> list[str]:  # fmt: skip
    """Greedy replies, decoded in batches of similar prompt length (left-padded)."""
    end = tok.token_to_id(END)
    device = next(model.parameters()).device
    encoded = [tok.encode(render(p, generation_prompt=True)) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[str] = [""] * len(encoded)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        idx, mask = pad_left([encoded[i] for i in rows], pad_id=end)  # (B, T) each
        generated = generate(model, idx.to(device), max_new_tokens, temperature=0.0,
                             eos_token_id=end, attention_mask=mask.to(device),
                             pad_token_id=end)  # fmt: skip
        for row, ids in zip(rows, generated[:, idx.shape[1] :].tolist(), strict=True):
            ids = ids[: ids.index(end)] if end in ids else ids
            out[row] = tok.decode(ids)
    return out


def ready_for(model: torch.nn.Module, tok: Tokenizer, cases: list[Case]) -> Tokenizer:
    """The tokenizer (and model) able to read every prompt: a base run gets the chat tokens
    and missing characters added, as `sft` would add them."""
    conversations = [[*c.prompt, Message("assistant", c.answer)] for c in cases]
    needed = chat_tokenizer(tok, conversations)
    if needed.vocab_size == tok.vocab_size:
        return tok
    grow_vocabulary(model, needed.vocab_size, torch.Generator().manual_seed(0))
    print(f"note: this run's tokenizer lacks {', '.join(needed.id_to_str[tok.vocab_size:])}: "
          "added with fresh rows (a base model has never seen them)")  # fmt: skip
    return needed


def sampled_scores(model: torch.nn.Module, tok: Tokenizer, cases: list[Case], cfg: ChatEvalConfig,
                   lines: dict[str, list[str]]) -> list[int]:  # fmt: skip
    """How many of --samples replies to each case are right (a reply must end to count)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    prompts = [c.prompt for c in cases]
    groups = sample_replies(model, tok, prompts, cfg.samples, cfg.temperature, cfg.max_new_tokens,
                            generator, batch_size=4 * cfg.batch_size)  # fmt: skip
    return [sum(s.ended and is_right(case, s.text, lines) for s in group)
            for case, group in zip(cases, groups, strict=True)]  # fmt: skip


def chat_eval(argv: list[str]) -> None:
    from gpt.runs import load_run_model, run_folder_of

    cfg = parse_config(ChatEvalConfig, argv, prog="gpt chat-eval",
                       description=__doc__.split("\n\n")[0])  # fmt: skip
    if cfg.data is None:
        raise UsageError("--data is required: held-out conversations (uv run --package gpt "
                         "make-chat-data --split test --out FILE)")  # fmt: skip
    cases = read_cases(cfg.data, cfg.limit)
    pick_threads(cfg.threads)  # sets torch's threads; returns a note
    device = pick_device(cfg.device)
    model, tok, _, folder = load_run_model(cfg.run, device)
    tok = ready_for(model, tok, cases)
    model.to(device).eval()
    started = time.perf_counter()
    got = replies(model, tok, [c.prompt for c in cases], cfg.max_new_tokens, cfg.batch_size)
    seconds = time.perf_counter() - started
    lines = style_lines(cases)
    table: dict[str, dict[str, float]] = {}
    mistakes = []
    for case, reply in zip(cases, got, strict=True):
        right = is_right(case, reply, lines)
        entry = table.setdefault(case.task, {"n": 0, "correct": 0})
        entry["n"] += 1
        entry["correct"] += right
        if not right and len(mistakes) < 8:
            mistakes.append((case, reply))
    for entry in table.values():
        entry["accuracy"] = entry["correct"] / entry["n"]
    k = cfg.samples
    if k:  # pass@1 and pass@k among k samples a prompt (Chen et al.'s estimator, n = k)
        started = time.perf_counter()
        right = sampled_scores(model, tok, cases, cfg, lines)
        seconds += time.perf_counter() - started
        for task, entry in table.items():
            counts = [c for case, c in zip(cases, right, strict=True) if case.task == task]
            entry["sampled_pass@1"] = sum(pass_at_k(k, c, 1) for c in counts) / len(counts)
            entry[f"pass@{k}"] = sum(pass_at_k(k, c, k) for c in counts) / len(counts)
    how = f"greedy and {k} samples at temperature {cfg.temperature}" if k else "greedy"
    print(f"{folder}: {len(cases):,} conversations of {cfg.data}, {how}, {seconds:.0f}s")
    sampled = f" {'pass@1 (T)':>11s} {f'pass@{k}':>8s}" if k else ""
    print(f"{'task':10s} {'n':>6s} {'exact match':>12s}{sampled}")
    for task, entry in table.items():
        shown = f" {entry['sampled_pass@1']:11.1%} {entry[f'pass@{k}']:8.1%}" if k else ""
        print(f"{task:10s} {entry['n']:6d} {entry['accuracy']:12.1%}{shown}")
    for case, reply in mistakes:
        print(f"  wrong ({case.task}): {case.prompt[-1].content!r} -> {reply!r} "
              f"(expected {case.answer!r})")  # fmt: skip
    result = {
        "data": str(cfg.data),
        "checkpoint": str(folder),
        "tasks": table,
        "samples": k,
        "temperature": cfg.temperature if k else None,
    }
    write_text_atomic(run_folder_of(folder) / "chat_eval.json", json.dumps(result, indent=2))
