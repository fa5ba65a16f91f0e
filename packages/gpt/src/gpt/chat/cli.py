"""`gpt chat`: talk to a fine-tuned run in the terminal, the reply streamed as it is written.

    uv run --package gpt chat --run SFT_RUN
    you> What is 123 + 456?
    bot> 579
    you> /system Answer with the result only.      (/reset, /system TEXT, /exit)

Each turn writes the whole conversation in the chat template, then `<|assistant|>`, and samples
until the model says `<|end|>`. The conversation must fit the model's context window: when it
does not, the oldest turns are dropped (the system message stays) and the chat says so. Ctrl-C
while a reply streams stops that reply and keeps the chat; Ctrl-C at the prompt (or Ctrl-D, or
/exit) ends it.

With stdin not a terminal (a pipe, a file, a test), each line is one user message and each
reply is printed on one line, nothing else: `echo "What is 2 + 2?" | gpt chat --run RUN`.
"""

import sys
from dataclasses import dataclass
from typing import TextIO

import torch

from gpt.chat.format import END, ROLE_TOKENS, Message, render
from gpt.generate import generate
from shared.config import option, parse_config
from shared.device import pick_device, pick_threads
from shared.errors import UsageError
from tokenizers_fromscratch import Tokenizer


@dataclass
class ChatConfig:
    run: str | None = option(None, "a fine-tuned gpt run (default: the latest gpt run)")
    system: str | None = option(None, "a system message to start the conversation with")
    max_new_tokens: int = option(64, "longest reply", ge=1)
    temperature: float = option(0.0, "0: always the likeliest token; higher: more varied", ge=0)
    top_k: int | None = option(None, "sample only among the k likeliest tokens", ge=1)
    top_p: float | None = option(None, "sample among the fewest tokens holding this much "
                                 "probability", gt=0, le=1)  # fmt: skip
    seed: int = option(0, "random seed of the sampling")
    device: str = option("cpu", "cpu, cuda, mps or auto")
    threads: int = option(0, "torch CPU threads (0: the idle cores)", ge=0)


class ReplyStream:
    """Prints a reply's text as its tokens arrive (not `<|end|>`), and keeps its ids."""

    def __init__(self, tok: Tokenizer, out: TextIO | None) -> None:
        self.tok, self.out, self.ids, self.shown = tok, out, [], ""
        self.end = tok.token_to_id(END)

    def __call__(self, token: torch.Tensor) -> None:
        t = int(token[0])
        if t == self.end:
            return
        self.ids.append(t)
        text = self.tok.decode(self.ids)
        if self.out is not None and text.startswith(self.shown):
            self.out.write(text[len(self.shown) :])
            self.out.flush()
        self.shown = text


class Chat:
    """The conversation so far and how to extend it by one reply."""

    def __init__(self, model: torch.nn.Module, tok: Tokenizer, cfg: ChatConfig) -> None:
        for token in [*ROLE_TOKENS.values(), END]:
            if token not in tok.str_to_id:
                raise UsageError(f"this run's tokenizer has no {token}: chat needs a run "
                                 "fine-tuned with `gpt sft`")  # fmt: skip
        self.model, self.tok, self.cfg = model, tok, cfg
        self.system = cfg.system
        self.history: list[Message] = []
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def messages(self) -> list[Message]:
        return ([Message("system", self.system)] if self.system else []) + self.history

    def fit_context(self, notes: TextIO | None) -> None:
        """Drop the oldest turns until the prompt and a full reply fit the context window."""
        window = self.model.config.block_size
        dropped = 0
        while True:
            n = len(self.tok.encode(render(self.messages(), generation_prompt=True)))
            if n + self.cfg.max_new_tokens <= window or len(self.history) <= 1:
                break
            self.history = self.history[2:] if len(self.history) > 2 else self.history[1:]
            dropped += 1
        if dropped and notes is not None:
            notes.write(f"(dropped the {dropped} oldest turn(s) to fit the {window}-token "
                        "context window)\n")  # fmt: skip
        if n + 1 > window and self.model.config.pos == "learned":
            raise UsageError(f"this message alone is {n} tokens, more than the model's "
                             f"context of {window}")  # fmt: skip

    def reply(self, text: str, out: TextIO | None, notes: TextIO | None = None) -> str:
        """Add the user's message, stream the reply to `out`, keep it in the history."""
        self.history.append(Message("user", text))
        self.fit_context(notes)
        ids = self.tok.encode(render(self.messages(), generation_prompt=True))
        stream = ReplyStream(self.tok, out)
        try:
            generate(self.model, torch.tensor([ids]), self.cfg.max_new_tokens,
                     temperature=self.cfg.temperature, top_k=self.cfg.top_k,
                     top_p=self.cfg.top_p, eos_token_id=stream.end,
                     generator=self.generator, stream=stream)  # fmt: skip
        except KeyboardInterrupt:  # Ctrl-C: this reply stops here, the chat goes on
            if notes is not None:
                notes.write(" [stopped]")
        reply = self.tok.decode(stream.ids)
        self.history.append(Message("assistant", reply))
        return reply


def interactive(chat: Chat) -> None:
    print(f"chatting with {chat.cfg.run or 'the latest run'}; /reset, /system TEXT, /exit",
          flush=True)  # fmt: skip
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if line.strip() == "/exit":
            return
        if line.strip() == "/reset":
            chat.history = []
            print("(conversation cleared)", flush=True)
            continue
        if line.startswith("/system"):
            chat.system = line[len("/system") :].strip() or None
            chat.history = []
            print(f"(system message {'set' if chat.system else 'removed'}; conversation "
                  "cleared)", flush=True)  # fmt: skip
            continue
        if not line.strip():
            continue
        sys.stdout.write("bot> ")
        sys.stdout.flush()
        chat.reply(line, sys.stdout, sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()


def scripted(chat: Chat) -> None:
    """One message a line in, one reply a line out."""
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        reply = chat.reply(line, None, sys.stderr)
        print(reply.replace("\n", " "), flush=True)


def chat(argv: list[str]) -> None:
    from gpt.runs import load_run_model

    cfg = parse_config(ChatConfig, argv, prog="gpt chat", description=__doc__.split("\n\n")[0])
    pick_threads(cfg.threads)
    model, tok, _, _ = load_run_model(cfg.run, pick_device(cfg.device))
    session = Chat(model, tok, cfg)
    if sys.stdin.isatty():
        interactive(session)
    else:
        scripted(session)
