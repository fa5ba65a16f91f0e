"""gpt after SFT: post-training on the checkable chat tasks.

    logprobs.py   a reply's log-probability under a model (the SFT template and mask, shared)
    pairs.py      preference pairs: the JSON Lines format, read strictly; `gpt make-pref-data`
    dpo.py        `gpt dpo`: direct preference optimisation against a frozen reference
    grpo.py       GRPO's arithmetic: group-relative advantages, the clipped ratio, k3 KL
    rollouts.py   groups of sampled replies and their rewards (exact match)
    rl.py         `gpt rl`: reinforcement learning with verifiable rewards (GRPO)

Nothing is imported here, so `import gpt.post.grpo` loads only what it needs.
"""
