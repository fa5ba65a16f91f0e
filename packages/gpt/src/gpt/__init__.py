"""Stage 7: a decoder-only language model (GPT-2 or Llama style), generation with a KV cache,
and weights to and from transformers.

    from gpt import GPT, GPTConfig, generate
    model = GPT(GPTConfig.modern(vocab_size=65, n_layer=4, n_head=4, n_embd=128))
    out = generate(model, idx, max_new_tokens=100, temperature=0.8, top_k=40)   # (B, T + 100)

    from gpt.hf import from_hf, to_hf     # GPT2LMHeadModel / LlamaForCausalLM <-> GPT

Modules: model.py (GPTConfig, Block, GPT), kv_cache.py, generate.py (sampling), hf.py
(transformers interop), data.py + train.py (the language-modelling task), train_run.py
(`prepare`: the task, declared once), kit.py (the same task for training_kit), runs.py
(loading any run), cli.py (`train`, `sample`, `eval`); then three folders, one later stage
each: chat/ (fine-tuning to chat), serve/ (an OpenAI-compatible server), deploy/ (int8 and
export).
"""

from gpt.generate import generate
from gpt.kv_cache import KVCache
from gpt.model import GPT, GPTConfig, lm_loss

__all__ = ["GPT", "GPTConfig", "KVCache", "generate", "lm_loss"]
