"""`gpt rl`: reinforcement learning with verifiable rewards, by GRPO, on the checkable tasks.

    uv run --package gpt make-chat-data --tasks sort --n 200 --split select --out select.jsonl
    uv run --package gpt rl --init SFT_RUN --tasks sort --eval_data select.jsonl --run_name=rl

Each round draws --prompts_per_step training prompts (numbers and words never held out), and
the policy answers each --group_size times at --temperature (`gpt.post.rollouts`, the batched
KV-cache sampler). A reply earns 1 if exactly right, else 0. The rewards become advantages
within each group, and the policy takes --inner_steps optimizer steps on the round's replies
with GRPO's clipped ratio and a k3 KL penalty to the frozen --init (`gpt.post.grpo`):

    round r:  sample P x G replies with pi_old = the policy now; score them; advantages
              pi_old's and pi_ref's log-probabilities of every reply token (no gradient)
    step 1..K: loss = -(mean clipped ratio x advantage - beta KL) ; AdamW step

One `shared.fit` step is one optimizer step, so a round spans K of them. A checkpoint holds
the round's replies and how many of its steps were taken (in meta.json), so --resume goes on
exactly where it stopped, mid-round included.
"""

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gpt.chat.data import TASKS, WORD_TASKS, make_rows, shakespeare
from gpt.chat.evaluate import Case, case_of, read_cases, style_lines
from gpt.chat.format import END, render
from gpt.chat.sampling import sample_replies
from gpt.chat.sft import FineTuneOptions, SFTRun, pad_batch
from gpt.post.grpo import group_advantages, grpo_loss
from gpt.post.logprobs import token_logprobs
from gpt.post.policy import chat_run_tokenizer, post_training_task
from gpt.post.rollouts import greedy_pass_rate, reward
from shared.config import option
from shared.errors import UsageError
from shared.fit import FitState
from shared.runs import find_checkpoint
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained, train_command
from shared.training import Decay, Setup
from tokenizers_fromscratch import Tokenizer

STAGE = "gpt"


@dataclass
class RLConfig(FineTuneOptions):
    init: str | None = option(None, "the chat run to start from, and the frozen reference of "
                              "the KL penalty (default: the latest run)")  # fmt: skip
    tasks: list[str] = option(
        ["sort"], f"the tasks whose prompts it practises ({', '.join(TASKS)})"
    )
    working: bool = option(False, "additions answered with their column sums (make-chat-data's"
                           " --working): the whole worked reply is checked")  # fmt: skip
    prompts: int = option(20000, "training prompts to draw from (held-out numbers and words "
                          "never among them)", ge=1)  # fmt: skip
    system_share: float = option(0.5, "share of prompts with a system prompt", ge=0, le=1)
    format_reward: float = option(0.0, "reward for a reply that ends within --max_new_tokens, "
                                  "right or not (0: exact match alone)", ge=0)  # fmt: skip
    group_size: int = option(8, "G: replies sampled per prompt", ge=2)
    prompts_per_step: int = option(8, "P: prompts per round", ge=1)
    temperature: float = option(1.0, "sampling temperature of the replies", gt=0)
    max_new_tokens: int = option(48, "longest reply (one that does not end earns 0)", ge=1)
    inner_steps: int = option(2, "K: optimizer steps on each round's replies (the clipped "
                              "ratio matters from the second)", ge=1)  # fmt: skip
    clip: float = option(0.2, "the importance ratio is clipped to [1 - clip, 1 + clip]", gt=0)
    beta: float = option(0.04, "weight of the k3 KL penalty to the reference (0: none)", ge=0)
    lr: float = option(2e-5, "AdamW's peak learning rate (5e-4 wrecked the policy in 40 steps "
                       "here, 1e-4 drifted without gain: docs/post.md)", gt=0)  # fmt: skip
    warmup_steps: int = option(10, "linear warmup steps", ge=0)
    decay: Decay = option("constant", "how the rate falls after warmup")
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)", ge=0)
    time_limit: float = option(900.0, "seconds of training, final evaluation included (0: none)",
                               ge=0)  # fmt: skip
    eval_data: Path | None = option(None, "held-out prompts with answers (make-chat-data --split "
                                    "select): greedy pass@1 at each evaluation")  # fmt: skip
    eval_limit: int = option(200, "evaluate at most this many of --eval_data (0: all)", ge=0)
    eval_interval: int = option(50, "evaluate every N steps", ge=1)


Rollouts = dict[str, Tensor]  # one round: x, y (N, T); old, ref (N, T); advantages, rewards (N,)


class GRPOTask:
    """Rounds of sampled replies for `shared.fit`: a batch is the current round, reused for
    --inner_steps optimizer steps; then the (updated) policy samples the next."""

    def __init__(self, cfg: RLConfig, tok: Tokenizer, prompts: list[Case],
                 eval_cases: list[Case]) -> None:  # fmt: skip
        self.cfg, self.tok, self.prompts, self.eval_cases = cfg, tok, prompts, eval_cases
        self.lines = style_lines(prompts + eval_cases)
        self.pad_id = tok.token_to_id(END)
        self.policy: torch.nn.Module | None = None  # the model training: set by the run
        self.reference: torch.nn.Module | None = None  # --init, frozen
        self.rollouts: Rollouts | None = None
        self.used = 0  # optimizer steps already taken on self.rollouts
        self.recent: deque[float] = deque(maxlen=25)  # the last rounds' mean rewards
        self.last: dict[str, float] = {}

    # --- a round ------------------------------------------------------------------------------

    @torch.no_grad()
    def new_round(self, generator: torch.Generator) -> Rollouts:
        """P prompts, G replies each from the policy as it is now, scored and compared."""
        cfg = self.cfg
        rows = torch.randint(len(self.prompts), (cfg.prompts_per_step,), generator=generator)
        cases = [self.prompts[i] for i in rows.tolist()]
        prompts = [c.prompt for c in cases]
        groups = sample_replies(self.policy, self.tok, prompts, cfg.group_size, cfg.temperature,
                                cfg.max_new_tokens, generator)  # fmt: skip
        rewards = torch.tensor(
            [
                [reward(c, s, self.lines, cfg.format_reward) for s in group]
                for c, group in zip(cases, groups, strict=True)
            ]
        )  # (P, G)
        advantages = group_advantages(rewards).flatten()  # (P * G,)
        examples = []
        for case, group in zip(cases, groups, strict=True):
            prompt = self.tok.encode(render(case.prompt, generation_prompt=True))
            examples += [(prompt + s.ids, [False] * len(prompt) + [True] * len(s.ids))
                         for s in group]  # fmt: skip
        x, y = pad_batch(examples, self.pad_id)  # (N, T) each; y is -100 off the replies
        device = next(self.policy.parameters()).device
        was_training = self.policy.training
        self.policy.eval()
        old = token_logprobs(self.policy(x.to(device)), y.to(device)).cpu()  # pi_old, (N, T)
        ref = token_logprobs(self.reference.to(device)(x.to(device)), y.to(device)).cpu()
        self.policy.train(was_training)
        return {"x": x, "y": y, "old": old, "ref": ref, "advantages": advantages,
                "rewards": rewards.flatten()}  # fmt: skip

    def train_batch(self, generator: torch.Generator) -> Rollouts:
        if self.rollouts is None or self.used >= self.cfg.inner_steps:
            self.rollouts, self.used = self.new_round(generator), 0
            self.recent.append(float(self.rollouts["rewards"].mean()))
        self.used += 1
        return self.rollouts

    def count(self, batch: Rollouts) -> int:
        return batch["x"].shape[0]  # replies

    def loss(self, model: torch.nn.Module, batch: Rollouts) -> Tensor:
        mask = batch["y"] != -100  # (N, T): the reply tokens
        logp = token_logprobs(model(batch["x"]), batch["y"])  # (N, T), with gradient
        loss, stats = grpo_loss(logp, batch["old"], batch["ref"], batch["advantages"], mask,
                                self.cfg.clip, self.cfg.beta)  # fmt: skip
        self.last = {"reward": float(batch["rewards"].mean()),
                     "reward_avg": sum(self.recent) / max(len(self.recent), 1),
                     "kl": stats.kl, "clipped": stats.clipped,
                     "length": float(mask.sum(1).float().mean())}  # fmt: skip
        return loss

    def step_metrics(self, state: FitState, loss: float) -> dict[str, float]:
        return self.last

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, precision_ctx) -> dict[str, float]:
        """Greedy pass@1 on --eval_data's held-out prompts (none: the recent reward only)."""
        if not self.eval_cases:
            return {"reward_avg": sum(self.recent) / max(len(self.recent), 1)}
        with precision_ctx():
            return {"pass1": greedy_pass_rate(model, self.tok, self.eval_cases,
                                              self.cfg.max_new_tokens, self.lines)}  # fmt: skip

    # --- what a checkpoint keeps of it ---------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The round in progress, for meta.json (floats survive JSON exactly)."""
        if self.rollouts is None:
            return {"used": 0, "rollouts": None, "recent": list(self.recent)}
        return {"used": self.used, "recent": list(self.recent),
                "rollouts": {k: v.tolist() for k, v in self.rollouts.items()}}  # fmt: skip

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.used, self.recent = saved["used"], deque(saved["recent"], maxlen=25)
        if saved["rollouts"] is not None:
            kinds = {"x": torch.long, "y": torch.long}
            self.rollouts = {k: torch.tensor(v, dtype=kinds.get(k, torch.float32))
                             for k, v in saved["rollouts"].items()}  # fmt: skip


def training_prompts(cfg: RLConfig) -> list[Case]:
    """--prompts questions of --tasks from the training split: no held-out number or word."""
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown or not cfg.tasks:
        raise UsageError(f"--tasks {','.join(cfg.tasks)}: choose among {', '.join(TASKS)}")
    text = shakespeare() if set(cfg.tasks) & WORD_TASKS else ""  # addition needs no words
    rows = make_rows(cfg.tasks, cfg.prompts, "train", cfg.seed, text, cfg.system_share,
                     cfg.working)  # fmt: skip
    return [case_of(row, f"prompt {i + 1}") for i, row in enumerate(rows)]


def prepare(cfg: RLConfig, env: Setup | None = None, resume: Resume | None = None) -> TrainingTask:
    """`gpt rl`'s task: the prompts, the policy (--init, in full or with LoRA), the frozen
    reference, and (resuming) the round in progress."""
    base = Path(resume.meta["sft"]["init"]) if resume else find_checkpoint(STAGE, cfg.init)
    tok = chat_run_tokenizer(base)
    eval_cases = read_cases(cfg.eval_data, cfg.eval_limit) if cfg.eval_data else []
    task = GRPOTask(cfg, tok, training_prompts(cfg), eval_cases)
    if resume is not None:
        task.load_state_dict(resume.meta["grpo"])
    job = SFTRun(cfg, tok, base, tok.vocab_size)

    def plot_title(trained: Trained) -> str:
        return f"GRPO on {','.join(cfg.tasks)}: G={cfg.group_size}, beta {cfg.beta}"

    plots = {"reward.png": ["reward", "reward_avg"], "kl.png": ["kl"]}
    if eval_cases:
        plots["pass1.png"] = ["pass1"]
    return post_training_task(
        cfg, job, task, "rl", item_name="reply", plots=plots, plot_title=plot_title,
        checkpoint_meta=lambda: {**job.checkpoint_meta(), "grpo": task.state_dict()},
        shown_metrics=("reward_avg", "kl", "length"),
        description=(f"policy and frozen reference: {base}; {len(task.prompts):,} training "
                     f"prompts of {','.join(cfg.tasks)}; rounds of {cfg.prompts_per_step} x "
                     f"{cfg.group_size} replies, {cfg.inner_steps} steps each"),
    )  # fmt: skip


def rl(argv: list[str]) -> None:
    """Reinforce a chat run on checkable tasks: `prepare` declares it, `shared.trainer` runs it."""
    train_command(STAGE, RLConfig, argv, prepare, prog="gpt rl",
                  description=__doc__.split("\n\n")[0])  # fmt: skip
