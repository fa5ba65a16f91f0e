"""GRPO's arithmetic (Shao et al. 2024, DeepSeekMath): no value model, no reward model.

For one prompt the policy writes a group of G replies o_1..o_G and each gets a reward r_i
(1 if exactly right). How good was reply i? Compared with its own group:

    A_i = (r_i - mean(r)) / (std(r) + eps)                              advantages, (P, G)

A right reply in a group that mostly fails gets a large positive advantage, a wrong one in a
group that mostly succeeds a negative one, and a group that is all right or all wrong teaches
nothing (every A_i = 0). PPO would learn a value network to predict the mean; sampling the
group measures it instead, which is why GRPO needs no value model.

Each reply's tokens then move by their advantage, through the clipped importance ratio of PPO
(the replies were sampled by pi_old, the policy before this group's few inner steps):

    ratio_t = pi(o_t) / pi_old(o_t)
    surrogate_t = min(ratio_t * A, clip(ratio_t, 1 - eps, 1 + eps) * A)

and a penalty keeps the policy near the reference (the SFT run, frozen), with the k3 estimator
of KL(pi || pi_ref), which is never negative and is 0 exactly where pi = pi_ref:

    kl_t = pi_ref(o_t) / pi(o_t) - log(pi_ref(o_t) / pi(o_t)) - 1

    loss = - mean over replies of [ mean over the reply's tokens of (surrogate_t - beta kl_t) ]

(the paper's sequence-then-group mean: a long reply counts as much as a short one).
"""

from dataclasses import dataclass

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, eps: float = 1e-4) -> Tensor:
    """Rewards (P, G) -> advantages (P, G), normalised within each prompt's group. The std is
    the sample std (n - 1), as TRL's GRPOTrainer computes it."""
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(mean)
    return (rewards - mean) / (std + eps)  # (P, G)


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from log-probabilities of sampled tokens."""
    d = ref_logp - logp  # log(pi_ref / pi)
    return torch.exp(d) - d - 1


def clipped_surrogate(logp: Tensor, old_logp: Tensor, advantages: Tensor,
                      clip: float) -> tuple[Tensor, Tensor]:  # fmt: skip
    """PPO's per-token objective (to maximise) and where the clip was active: (B, T) each.
    `advantages` broadcasts against logp: (B, 1) for one advantage per reply."""
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    return torch.minimum(unclipped, clipped), (clipped < unclipped)


@dataclass
class GRPOStats:
    kl: float  # mean k3 KL per reply token
    clipped: float  # share of reply tokens whose ratio was clipped


def grpo_loss(logp: Tensor, old_logp: Tensor, ref_logp: Tensor, advantages: Tensor,
              mask: Tensor, clip: float, beta: float) -> tuple[Tensor, GRPOStats]:  # fmt: skip
    """The loss above: log-probabilities of the sampled tokens (B, T) under the policy (with
    gradient), pi_old and pi_ref; advantages (B,); mask (B, T), 1 on reply tokens."""
    mask = mask.float()
    surrogate, was_clipped = clipped_surrogate(logp, old_logp, advantages[:, None], clip)
    kl = k3_kl(logp, ref_logp)  # (B, T)
    per_token = surrogate - beta * kl
    lengths = mask.sum(dim=1).clamp(min=1)  # (B,)
    per_reply = (per_token * mask).sum(dim=1) / lengths  # (B,)
    tokens = mask.sum().clamp(min=1)
    stats = GRPOStats(kl=float((kl.detach() * mask).sum() / tokens),
                      clipped=float((was_clipped * mask).sum() / tokens))  # fmt: skip
    return -per_reply.mean(), stats
