"""Continuous batching against decoding one request alone.

The scheduler may put a request in any slot, next to any others at any lengths, admitted at any
step: none of that may change a single greedy token. Each test compares it with `generate` on
the request alone.
"""

import threading
import time

import pytest
import torch

from gpt.generate import generate
from gpt.model import GPT, GPTConfig
from gpt.serve.scheduler import Request, Sampling, Scheduler, held_back
from gpt.serve.slot_cache import SlotCache


def tiny(pos: str) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=4, n_embd=32, pos=pos,
                    n_kv_head=2 if pos == "rope" else None)  # fmt: skip
    return GPT(cfg).eval()


def decode(ids: list[int]) -> str:
    return "".join(chr(97 + i % 26) for i in ids)


class Collector:
    """on_event for one request: the text it streamed and how it ended."""

    def __init__(self) -> None:
        self.text, self.reason, self.done = "", None, threading.Event()

    def __call__(self, kind: str, value: str) -> None:
        if kind == "text":
            self.text += value
        else:
            self.reason = value
            self.done.set()


def alone(model: GPT, prompt: list[int], n: int) -> list[int]:
    out = generate(model, torch.tensor([prompt]), n, temperature=0)
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_batched_step_gives_each_row_its_own_logits(pos):
    model = tiny(pos)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11, 12]]
    cache = SlotCache(model.config.n_layer, slots=4, max_len=64)
    slots = [3, 0, 2]  # any slot, any order
    with torch.no_grad():
        for slot, p in zip(slots, prompts, strict=True):
            prefill = model.new_cache(len(p))
            model(torch.tensor([p[:-1]]), prefill)
            cache.fill(slot, prefill)
        rows = torch.tensor(slots)
        positions, mask = cache.begin_step(rows)  # (R, 1), (R, 1, 1, width)
        batched = model(torch.tensor([[p[-1]] for p in prompts]), cache, positions, mask)
        for i, p in enumerate(prompts):
            full = model(torch.tensor([p]))[:, -1]  # the whole prompt at once, no cache
            torch.testing.assert_close(batched[i, -1], full[0], atol=1e-5, rtol=1e-5)
    assert cache.lengths[rows].tolist() == [len(p) for p in prompts]


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_requests_admitted_at_different_steps_get_their_greedy_tokens(pos):
    model = tiny(pos)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11, 12], [13] * 20, [7, 7]]
    news = [12, 5, 20, 9, 15]
    scheduler = Scheduler(model, decode, slots=3).start()  # 5 requests, 3 slots: some wait
    try:
        requests, collectors = [], []
        for prompt, n in zip(prompts, news, strict=True):
            c = Collector()
            r = Request(prompt, Sampling(max_tokens=n, temperature=0), c)
            scheduler.submit(r)
            requests.append(r)
            collectors.append(c)
            time.sleep(0.003)  # arrive while others are decoding
        for c in collectors:
            assert c.done.wait(30)
    finally:
        scheduler.shutdown()
    for prompt, n, r, c in zip(prompts, news, requests, collectors, strict=True):
        assert r.output_ids == alone(model, prompt, n)
        assert c.reason == "length" and c.text == decode(r.output_ids)
    assert scheduler.active == 0 and scheduler.queue_length == 0


def test_stop_strings_end_a_reply_and_never_reach_the_client():
    model = tiny("learned")
    free = alone(model, [1, 2, 3], 20)
    text = decode(free)
    stop = text[6:9]  # a string the greedy reply is known to contain
    c = Collector()
    scheduler = Scheduler(model, decode, slots=2).start()
    try:
        scheduler.submit(Request([1, 2, 3], Sampling(20, temperature=0, stop=[stop]), c))
        assert c.done.wait(30)
    finally:
        scheduler.shutdown()
    assert c.reason == "stop" and c.text == text[: text.index(stop)]


def test_end_token_and_sampling_seed():
    model = tiny("learned")
    free = alone(model, [5, 6], 10)
    c = Collector()
    scheduler = Scheduler(model, decode, slots=2).start()
    try:  # the 4th greedy token as the end token: three tokens of text
        scheduler.submit(Request([5, 6], Sampling(10, temperature=0), c, end_id=free[3]))
        runs = []
        for _ in range(2):
            s = Collector()
            scheduler.submit(Request([5, 6], Sampling(10, temperature=1.0, seed=7), s))
            runs.append(s)
        assert all(x.done.wait(30) for x in [c, *runs])
    finally:
        scheduler.shutdown()
    assert c.reason == "stop" and c.text == decode(free[: free.index(free[3])])
    assert runs[0].text == runs[1].text  # the same seed, the same sample


def test_a_cancelled_request_frees_its_slot_at_once():
    model = tiny("learned")
    scheduler = Scheduler(model, decode, slots=1, step_delay=0.01).start()
    try:
        first, second = Collector(), Collector()
        long = Request([1, 2], Sampling(60, temperature=0), first)
        scheduler.submit(long)
        scheduler.submit(Request([3, 4], Sampling(3, temperature=0), second))
        time.sleep(0.05)
        assert scheduler.queue_length == 1  # one slot: the second waits
        long.cancel()
        assert first.done.wait(5) and first.reason == "cancelled"
        assert second.done.wait(5) and second.reason == "length"
        assert len(long.output_ids) < 60
    finally:
        scheduler.shutdown()


def test_a_request_over_the_context_is_refused():
    scheduler = Scheduler(tiny("learned"), decode, slots=1)
    with pytest.raises(ValueError, match="exceed the context of 64"):
        scheduler.submit(Request([1] * 60, Sampling(max_tokens=5), Collector()))


def test_held_back_keeps_a_possible_stop_string_and_a_half_character():
    assert held_back("hello wor", ["world"]) == 3
    assert held_back("hello", ["xyz"]) == 0
    assert held_back("abc\ufffd", []) == 1
