"""Preference pairs: one prompt, a reply to prefer and one to avoid.

    {"prompt": [{"role": "user", "content": "Sort the letters of \"castle\"."}],
     "chosen": "acelst", "rejected": "aceslt"}                         one JSON object a line

`gpt dpo` learns from these; `gpt make-pref-data` writes them for the checkable tasks. Reading
is as strict as SFT's: a bad line stops the command before anything runs, naming file:line.
The prompt is a conversation in `gpt.chat.format`'s shape that ends before the reply (its last
message is not the assistant's), and neither reply may spell a chat token.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from gpt.chat.format import CHAT_TOKENS, Conversation, parse_conversation
from shared.errors import UsageError


@dataclass
class PreferencePair:
    prompt: Conversation
    chosen: str
    rejected: str
    task: str = "chat"


def parse_pair(line: str, where: str) -> PreferencePair:
    """One JSON Lines row -> a pair; any problem is a UsageError naming `where` (file:line)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise UsageError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), list) or not row["prompt"]:
        raise UsageError(f'{where}: expected {{"prompt": [{{"role": ..., "content": ...}}, ...], '
                         '"chosen": "...", "rejected": "..."}')  # fmt: skip
    for key in ("chosen", "rejected"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise UsageError(f"{where}: {key!r} must be a non-empty string (the reply)")
        if any(t in row[key] for t in CHAT_TOKENS):
            raise UsageError(f"{where}: {key!r} contains a chat token ({', '.join(CHAT_TOKENS)})")
    if row["chosen"] == row["rejected"]:
        raise UsageError(f"{where}: chosen and rejected are the same reply: nothing to prefer")
    # the prompt's messages are checked as SFT checks a conversation's
    wrapped = json.dumps(
        {"conversations": [*row["prompt"], {"role": "assistant", "content": row["chosen"]}]}
    )
    messages = parse_conversation(wrapped, where)[:-1]
    if messages[-1].role == "assistant":
        raise UsageError(f"{where}: the prompt ends with an assistant message; it should end "
                         "where the reply begins (a user message)")  # fmt: skip
    return PreferencePair(messages, row["chosen"], row["rejected"], str(row.get("task", "chat")))


def read_pairs(path: Path) -> list[PreferencePair]:
    """Every pair of a JSON Lines file, read strictly: a bad line stops everything."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    pairs = [parse_pair(line, f"{path}:{i + 1}") for i, line in enumerate(lines) if line.strip()]
    if not pairs:
        raise UsageError(f"{path} holds no preference pairs")
    return pairs


def pair_row(pair: PreferencePair) -> dict:
    """`parse_pair`'s inverse: the JSON object of one line."""
    return {"task": pair.task,
            "prompt": [{"role": m.role, "content": m.content} for m in pair.prompt],
            "chosen": pair.chosen, "rejected": pair.rejected}  # fmt: skip
