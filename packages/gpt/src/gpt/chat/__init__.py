"""gpt's chat stage: a base model fine-tuned to follow a conversation format.

    format.py    the chat template, role tokens, the assistant-only loss mask
    data.py      `gpt make-chat-data`: conversations to learn from, made offline
    sft.py       `gpt sft`: supervised fine-tuning (full or LoRA)
    lora.py      low-rank adapters on the linear layers
    evaluate.py  `gpt chat-eval`: exact-match accuracy on held-out conversations
    sampling.py  several sampled replies a prompt, and pass@k
    cli.py       `gpt chat`: talk to a fine-tuned run in the terminal

Nothing is imported here, so `import gpt.chat.format` loads only what it needs.
"""
