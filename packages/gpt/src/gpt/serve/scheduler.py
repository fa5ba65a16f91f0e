"""Continuous batching: one decoding loop serves every request that is running, whenever it came.

A naive server generates for one request at a time, so sixteen clients wait in a queue and the
CPU multiplies thin (1, C) rows by each weight matrix. Batching the requests that arrive
together helps only if they arrive together. Continuous batching (Orca, Yu et al. 2022; vLLM)
decides again *between decoding steps*:

    loop:
        admit    while a slot is free and a request waits: prefill its prompt alone (B = 1),
                 copy its keys and values into the slot, sample its first token
        decode   one forward for all running requests (R, 1) -> logits (R, V), through a
                 `SlotCache`; each row sampled with its own temperature, top-p and generator
        retire   a request that hit its end token, a stop string or max_tokens, or whose client
                 went away, gives its slot back at once

A new request waits at most one decoding step before its prefill, and every running request
pays only a share of the matrix products. The loop runs in its own thread; requests come from
the web server's event loop through `submit` and leave through their `on_event` callback.

Left out, as in `KVCache`: paged memory and prefix sharing (vLLM), chunked prefill, and
prefilling several new prompts in one batch.
"""

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gpt.generate import choose
from gpt.model import GPT
from gpt.serve.slot_cache import SlotCache


@dataclass
class Sampling:
    """One request's decoding settings (OpenAI's names)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Request:
    """A prompt to continue, and where its text goes.

    on_event(kind, value) is called from the decoding thread: ("text", new text) as text becomes
    final, then once ("done", finish_reason) with "stop" (end token or stop string), "length"
    (max_tokens), "cancelled" or "error" (the decoding loop failed; the traceback is printed).
    """

    prompt_ids: list[int]
    sampling: Sampling
    on_event: Callable[[str, str], None]
    end_id: int | None = None  # the token that ends a reply (chat models' <|end|>)
    output_ids: list[int] = field(default_factory=list)
    text: str = ""  # the reply's text so far, stop string removed
    sent: int = 0  # characters of `text` already handed to on_event
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    cancelled: bool = False
    generator: torch.Generator | None = None

    def cancel(self) -> None:
        """Ask the loop to drop this request (thread-safe: the loop checks it every step)."""
        self.cancelled = True


def held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of `text` must wait: a tail that could still grow into a
    stop string (which the client must never see), or an unfinished multi-byte character."""
    hold = 1 if text.endswith("\ufffd") else 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if stop.startswith(text[-n:]):
                hold = max(hold, n)
                break
    return hold


class Scheduler:
    """Runs `model` over up to `slots` requests at a time in a background thread."""

    def __init__(self, model: GPT, decode: Callable[[list[int]], str], slots: int = 16,
                 step_delay: float = 0.0) -> None:  # fmt: skip
        self.model, self.decode, self.slots = model.eval(), decode, slots
        self.context = model.config.block_size
        self.cache = SlotCache(model.config.n_layer, slots, self.context)
        self.running: dict[int, Request] = {}  # slot -> request
        self.waiting: deque[Request] = deque()
        self.step_delay = step_delay  # seconds to sleep per step: a slow model, for demos and tests
        self.steps = 0
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="gpt-scheduler", daemon=True)

    # -- the web server's side ----------------------------------------------------------------

    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def shutdown(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def submit(self, request: Request) -> None:
        if len(request.prompt_ids) + request.sampling.max_tokens > self.context:
            raise ValueError(f"prompt ({len(request.prompt_ids)} tokens) + max_tokens "
                             f"({request.sampling.max_tokens}) exceed the context of "
                             f"{self.context}")  # fmt: skip
        if request.sampling.seed is not None:
            request.generator = torch.Generator().manual_seed(request.sampling.seed)
        with self._wake:
            self.waiting.append(request)
            self._wake.notify()

    @property
    def queue_length(self) -> int:
        return len(self.waiting)

    @property
    def active(self) -> int:
        return len(self.running)

    # -- the decoding thread ------------------------------------------------------------------

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._wake:
                while not self._stop and not self.waiting and not self.running:
                    self._wake.wait()
                if self._stop:
                    for request in [*self.running.values(), *self.waiting]:
                        request.on_event("done", "cancelled")
                    return
            try:
                self._admit()
                if self.running:
                    self._decode_step()
            except Exception:  # a bug must not leave clients waiting forever
                traceback.print_exc()
                for slot in list(self.running):
                    self._retire(slot, "error")
            if self.step_delay:
                time.sleep(self.step_delay)

    def _admit(self) -> None:
        while len(self.running) < self.slots:
            with self._wake:
                if not self.waiting:
                    return
                request = self.waiting.popleft()
            if request.cancelled:
                request.on_event("done", "cancelled")
                continue
            slot = next(s for s in range(self.slots) if s not in self.running)
            prefill = self.model.new_cache(len(request.prompt_ids))
            logits = self.model(torch.tensor([request.prompt_ids]), prefill)  # (1, P, V)
            self.cache.fill(slot, prefill)
            self.running[slot] = request
            self._accept(slot, logits[:, -1].float())

    def _decode_step(self) -> None:
        slots = sorted(self.running)
        rows = torch.tensor(slots)  # (R,)
        last = torch.tensor([[self.running[s].output_ids[-1]] for s in slots])  # (R, 1)
        positions, mask = self.cache.begin_step(rows)  # (R, 1), (R, 1, 1, width)
        logits = self.model(last, self.cache, positions, mask)  # (R, 1, V)
        self.steps += 1
        for i, slot in enumerate(slots):
            self._accept(slot, logits[i : i + 1, -1].float())

    def _accept(self, slot: int, logits: Tensor) -> None:
        """Sample the request's next token from logits (1, V), hand out the text that is now
        final, and retire the request if it is done."""
        request = self.running[slot]
        if request.cancelled:
            return self._retire(slot, "cancelled")
        s = request.sampling
        token = int(choose(logits, s.temperature, None, s.top_p, request.generator))
        if request.first_token_at is None:
            request.first_token_at = time.perf_counter()
        if token == request.end_id:
            return self._retire(slot, "stop")
        request.output_ids.append(token)
        text = self.decode(request.output_ids)
        for stop in s.stop:
            if stop in text:
                request.text = text[: text.index(stop)]
                return self._retire(slot, "stop")
        request.text = text
        final = len(text) - held_back(text, s.stop)
        if final > request.sent:
            request.on_event("text", text[request.sent : final])
            request.sent = final
        if len(request.output_ids) >= s.max_tokens:
            self._retire(slot, "length")

    def _retire(self, slot: int, reason: str) -> None:
        request = self.running.pop(slot)
        self.cache.free(slot)
        if reason != "cancelled" and len(request.text) > request.sent:
            request.on_event("text", request.text[request.sent :])
            request.sent = len(request.text)
        request.on_event("done", reason)
