"""DPO's and GRPO's arithmetic against references: TRL's DPO loss, the paper's formulas in
float64, hand computations on tiny batches, and a tiny policy learning a trivial reward."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from gpt.chat.format import Message, encode_conversation
from gpt.chat.sampling import pass_at_k
from gpt.post.dpo import dpo_loss
from gpt.post.grpo import clipped_surrogate, group_advantages, grpo_loss, k3_kl
from gpt.post.logprobs import reply_example, token_logprobs

# ----------------------------------------------------------------------------------------------
# DPO


def trl_dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    """TRL's own DPO loss ("sigmoid", the paper's) on summed log-probabilities: its
    DPOTrainer._compute_loss, run on a stand-in trainer whose model returns the per-token
    log-probabilities (here each reply's sum sits in its first completion token)."""
    trainer_module = pytest.importorskip("trl.trainer.dpo_trainer")
    B = chosen.shape[0]
    per_token = torch.zeros(2 * B, 3, dtype=chosen.dtype)  # (2B, T - 1): T = 4 positions
    per_token[:, 0] = torch.cat([chosen, rejected])

    def model(**kwargs):
        zeros = torch.zeros(2 * B, 3, dtype=chosen.dtype)
        return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros,
                               is_top1=zeros.bool(), aux_loss=None)  # fmt: skip

    model.training = True
    accelerator = SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t,
                                  gather_for_metrics=lambda t: t)  # fmt: skip
    stand_in = SimpleNamespace(
        model=model, accelerator=accelerator, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"],
        loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1,
    )  # fmt: skip
    inputs = {"input_ids": torch.zeros(2 * B, 4, dtype=torch.long),
              "attention_mask": torch.ones(2 * B, 4, dtype=torch.long),
              "completion_mask": torch.tensor([[0, 1, 1, 1]] * (2 * B)),
              "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}  # fmt: skip
    return trainer_module.DPOTrainer._compute_loss(stand_in, model, inputs, return_outputs=False)


def random_logprobs(B: int = 6, seed: int = 0, dtype=torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [-20 * torch.rand(B, generator=g, dtype=dtype) for _ in range(4)]


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_equals_trl(beta):
    pc, pr, rc, rr = random_logprobs()
    ours, _, _ = dpo_loss(pc, pr, rc, rr, beta)
    theirs = trl_dpo_loss(pc, pr, rc, rr, beta)
    assert abs(ours.item() - theirs.item()) < 1e-6, (ours.item(), theirs.item())


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_dpo_loss_and_gradient_equal_the_paper_in_float64(label_smoothing):
    beta = 0.3
    pc, pr, rc, rr = random_logprobs(seed=1, dtype=torch.float64)
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    loss, chosen_reward, rejected_reward = dpo_loss(pc, pr, rc, rr, beta, label_smoothing)
    loss.backward()
    B = pc.shape[0]
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected, grad_chosen = 0.0, []
    for i in range(B):
        m = beta * ((pc[i].item() - rc[i].item()) - (pr[i].item() - rr[i].item()))
        expected += (-(1 - label_smoothing) * math.log(sig(m))
                     - label_smoothing * math.log(sig(-m))) / B  # fmt: skip
        # d/d log pi(chosen): -beta [(1 - e) sigmoid(-m) - e sigmoid(m)] / B
        grad_chosen.append(-beta * ((1 - label_smoothing) * sig(-m) - label_smoothing * sig(m)) / B)
    assert abs(loss.item() - expected) < 1e-12
    assert torch.allclose(pc.grad, torch.tensor(grad_chosen, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(pr.grad, -pc.grad, atol=1e-12)  # the rejected side mirrors it
    assert torch.allclose(chosen_reward, beta * (pc - rc).detach())
    assert torch.allclose(rejected_reward, beta * (pr - rr).detach())


def test_the_dpo_loss_is_log_2_when_the_policy_is_the_reference():
    pc, pr, _, _ = random_logprobs(seed=2)
    loss, _, _ = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta=0.1)
    assert abs(loss.item() - math.log(2)) < 1e-6


# ----------------------------------------------------------------------------------------------
# A reply's log-probability


class Chars:
    """A tokenizer stand-in: one id per character, and the chat tokens."""

    specials = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def token_to_id(self, token: str) -> int:
        return 1000 + self.specials.index(token)


def test_only_the_last_reply_and_its_end_are_scored():
    tok = Chars()
    prompt = [Message("user", "hi"), Message("assistant", "yo"), Message("user", "2+2?")]
    ids, scored = reply_example(tok, prompt, "4")
    whole, _ = encode_conversation(tok, [*prompt, Message("assistant", "4")])
    assert ids == whole
    assert [i for i, s in zip(ids, scored, strict=True) if s] == [ord("4"), 1003]


def test_token_logprobs_gather_the_targets_and_zero_the_rest():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, -100, 4], [-100, -100, 0]])
    got = token_logprobs(logits, targets)
    logp = logits.log_softmax(-1)
    expected = torch.tensor([[logp[0, 0, 1], 0, logp[0, 2, 4]], [0, 0, logp[1, 2, 0]]])
    assert torch.allclose(got, expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# GRPO by hand


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    got = group_advantages(rewards)
    std = math.sqrt(1 / 3)  # the sample std of (1, 0, 0, 1): deviations 0.5, sum of squares 1
    assert torch.allclose(got[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4))
    assert torch.equal(got[1], torch.zeros(4))  # all right: nothing to learn
    std3 = math.sqrt((3 * 0.25**2 + 0.75**2) / 3)
    assert torch.allclose(got[2], torch.tensor([-0.25, -0.25, -0.25, 0.75]) / (std3 + 1e-4))


def test_the_clipped_surrogate_by_hand():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.7]]))  # ratios 1.5, 0.5, 1.1, 0.7
    up, _ = clipped_surrogate(logp, old, torch.tensor([[2.0]]), clip=0.2)
    # A > 0: min(r A, clip(r) A) -> 1.2*2, 0.5*2, 1.1*2, 0.7*2
    assert torch.allclose(up, torch.tensor([[2.4, 1.0, 2.2, 1.4]]))
    down, clipped = clipped_surrogate(logp, old, torch.tensor([[-1.0]]), clip=0.2)
    # A < 0: -> -1.5, -0.8, -1.1, -0.8
    assert torch.allclose(down, torch.tensor([[-1.5, -0.8, -1.1, -0.8]]))
    assert clipped.tolist() == [[False, True, False, True]]


def test_the_grpo_loss_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.4, 0.9], [0.2, 0.2, 0.2]])).requires_grad_(True)
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.25, 0.2, 0.2]]))
    ref = torch.log(torch.tensor([[0.4, 0.4, 0.4], [0.2, 0.1, 0.2]]))
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])  # the first reply has two tokens
    loss, stats = grpo_loss(logp, old, ref, adv, mask, clip=0.2, beta=0.1)

    def kl(p, r):
        return r / p - math.log(r / p) - 1

    r1 = [min(1.0, 1.0), min(0.8, 0.8)]  # ratios 1.0 and 0.8 with A = 1 (0.8 is inside [0.8, 1.2])
    reply1 = (r1[0] - 0.1 * kl(0.5, 0.4) + r1[1] - 0.1 * kl(0.4, 0.4)) / 2
    # A = -1: min(-r, -clip(r)): ratios 0.8, 1, 1 -> -0.8, -1, -1
    reply2 = (-0.8 - 0.1 * kl(0.2, 0.2) - 1 - 0.1 * kl(0.2, 0.1) - 1 - 0.1 * kl(0.2, 0.2)) / 3
    assert abs(loss.item() - (-(reply1 + reply2) / 2)) < 1e-6
    tokens = [kl(0.5, 0.4), kl(0.4, 0.4), kl(0.2, 0.2), kl(0.2, 0.1), kl(0.2, 0.2)]
    assert abs(stats.kl - sum(tokens) / 5) < 1e-6


def test_kl_is_exactly_zero_where_the_policy_is_the_reference():
    logp = -5 * torch.rand(3, 7)
    assert torch.equal(k3_kl(logp, logp.clone()), torch.zeros(3, 7))
    assert (k3_kl(logp, logp + torch.randn(3, 7)) > 0).all()  # and positive elsewhere


def test_pass_at_k_by_hand():
    assert pass_at_k(8, 2, 1) == pytest.approx(0.25)
    assert pass_at_k(8, 2, 8) == 1.0
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 2) == pytest.approx(1 - (7 * 6) / (8 * 7))


# ----------------------------------------------------------------------------------------------
# GRPO learns a trivial reward


def test_a_tiny_policy_learns_to_reply_with_one_token():
    """Reward 1 when the reply's first token is 3: a random tiny GPT answers it about one
    time in 8; after a few dozen GRPO steps, nine times in ten."""
    from gpt.generate import generate
    from gpt.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=16,
                          dropout=0.0))  # fmt: skip
    reference = GPT(model.config)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
    prompt = torch.tensor([[1, 2]]).repeat(16, 1)  # 2 prompts x G = 8 replies, same prompt
    generator = torch.Generator().manual_seed(0)

    def round_of_replies():
        out = generate(model, prompt, 2, temperature=1.0, generator=generator)  # (16, 4)
        rewards = (out[:, 2] == 3).float().view(2, 8)
        x, y = out[:, :-1], out[:, 1:].clone()
        y[:, :1] = -100  # the prompt's second token is not the policy's
        return x, y, rewards

    first = None
    for _ in range(40):
        x, y, rewards = round_of_replies()
        first = rewards.mean().item() if first is None else first
        advantages = group_advantages(rewards).flatten()
        with torch.no_grad():
            old = token_logprobs(model(x), y)
            ref = token_logprobs(reference(x), y)
        for _ in range(2):  # two inner steps: the ratio moves off 1 on the second
            loss, _ = grpo_loss(token_logprobs(model(x), y), old, ref, advantages, y != -100,
                                clip=0.2, beta=0.01)  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    final = sum(round_of_replies()[2].mean().item() for _ in range(5)) / 5
    assert first < 0.5 and final >= 0.9, (first, final)
