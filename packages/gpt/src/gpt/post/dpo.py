"""`gpt dpo`: direct preference optimisation (Rafailov et al. 2023) of a chat run.

    uv run --package gpt make-pref-data --init SFT_RUN --tasks sort --out pairs.jsonl
    uv run --package gpt dpo --data pairs.jsonl --init SFT_RUN --run_name=dpo
    uv run --package gpt dpo --data pairs.jsonl --init SFT_RUN --lora.rank=8     # adapters only

RLHF would fit a reward model to the preferences, then maximise that reward with RL while a KL
penalty keeps the policy pi near the model it started from, pi_ref. That problem has a closed
-form optimum, pi(y|x) proportional to pi_ref(y|x) exp(r(x, y) / beta), so a reward is the
policy's own log-ratio, r = beta log(pi / pi_ref) (up to a term that cancels in a pair). Put
that into the preference model of Bradley and Terry and the reward model is gone:

    margin = beta [ log pi(chosen)/pi_ref(chosen) - log pi(rejected)/pi_ref(rejected) ]
    loss   = -log sigmoid(margin)                            (mean over the pairs of a batch)

With label smoothing e (cDPO: a share e of the labels assumed flipped) the loss is
-(1 - e) log sigmoid(margin) - e log sigmoid(-margin). Why the reference: without it the loss
is met by making the rejected reply impossible and the chosen one merely less unlikely, and
nothing stops the policy drifting from everything SFT taught; the log-ratios measure each
reply against where the policy started, and beta says how far it may go.

With --nll_weight a (RPO, Pang et al. 2024) the loss adds a times the chosen replies' mean
token cross entropy: plain DPO can widen the margin by making both replies less likely, and
the greedy answer with them. The policy starts as --init and the reference is --init,
frozen. A reply's log-probability is `gpt.post.logprobs`: SFT's template and assistant-only
mask.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gpt.chat.evaluate import Case, read_cases, style_lines
from gpt.chat.format import END
from gpt.chat.sft import Example, FineTuneOptions, SFTRun, pad_batch
from gpt.post.logprobs import reply_example, token_logprobs
from gpt.post.pairs import PreferencePair, read_pairs
from gpt.post.policy import chat_run_tokenizer, post_training_task
from gpt.post.rollouts import greedy_pass_rate
from shared.config import option
from shared.errors import UsageError
from shared.fit import FitState
from shared.runs import find_checkpoint
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained, train_command
from shared.training import Setup
from tokenizers_fromscratch import Tokenizer, TokenizerError

STAGE = "gpt"


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
             ref_rejected: Tensor, beta: float,
             label_smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The module's loss from summed reply log-probabilities (B,) each: (mean loss, the
    chosen replies' implicit rewards (B,), the rejected ones' (B,)); the rewards are
    beta * log(pi / pi_ref), detached, for logging."""
    chosen_ratio = policy_chosen - ref_chosen  # log(pi / pi_ref) of each chosen reply, (B,)
    rejected_ratio = policy_rejected - ref_rejected
    margin = beta * (chosen_ratio - rejected_ratio)  # (B,)
    losses = (-(1 - label_smoothing) * F.logsigmoid(margin)
              - label_smoothing * F.logsigmoid(-margin))  # fmt: skip
    return losses.mean(), beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


@dataclass
class DPOConfig(FineTuneOptions):
    data: Path | None = option(None, "preference pairs, JSON Lines (`gpt make-pref-data` "
                               "writes them)")  # fmt: skip
    init: str | None = option(None, "the chat run to start from, and the frozen reference "
                              "(default: the latest run)")  # fmt: skip
    beta: float = option(0.1, "how far the policy may move from the reference: the log-ratios' "
                         "scale in the loss", gt=0)  # fmt: skip
    label_smoothing: float = option(0.0, "share of pairs assumed mislabelled (cDPO)", ge=0, lt=0.5)
    nll_weight: float = option(1.0, "add this times the chosen replies' mean token NLL (RPO, "
                               "TRL's rpo_alpha): keeps the right reply likely while the margin "
                               "grows; 0: the paper's DPO, which wrecked greedy replies here "
                               "(docs/post.md)", ge=0)  # fmt: skip
    val_rows: int = option(100, "pairs held out of --data for the validation loss", ge=1)
    batch_size: int = option(32, "pairs per step", ge=1)
    lr: float = option(3e-5, "AdamW's peak learning rate", gt=0)
    warmup_steps: int = option(20, "linear warmup steps", ge=0)
    eval_data: Path | None = option(None, "held-out prompts with answers (make-chat-data --split "
                                    "select): pass@1 at each evaluation")  # fmt: skip
    eval_limit: int = option(200, "evaluate at most this many of --eval_data (0: all)", ge=0)
    max_new_tokens: int = option(48, "longest reply when evaluating", ge=1)
    eval_interval: int = option(100, "evaluate every N steps", ge=1)


PairExample = tuple[Example, Example]  # (chosen, rejected), each the prompt and its reply


class PreferenceTask:
    """Pairs for `shared.fit`: a batch is B chosen then B rejected replies, one padded tensor."""

    def __init__(self, cfg: DPOConfig, tok: Tokenizer, train: list[PairExample],
                 val: list[PairExample], eval_cases: list[Case]) -> None:  # fmt: skip
        self.cfg, self.tok, self.train, self.val, self.eval_cases = cfg, tok, train, val, eval_cases
        self.pad_id = tok.token_to_id(END)
        self.lines = style_lines(eval_cases)  # what a `style` case is checked against
        self.policy: torch.nn.Module | None = None  # the model training: set by the run
        self.reference: torch.nn.Module | None = None  # --init, frozen
        self.last: dict[str, float] = {}  # the latest batch's reward accuracy and margin

    def collate(self, pairs: list[PairExample]) -> tuple[Tensor, Tensor]:
        """(x, y) of the chosen replies then the rejected ones: (2B, T) each."""
        return pad_batch([c for c, _ in pairs] + [r for _, r in pairs], self.pad_id)

    def train_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        rows = torch.randint(len(self.train), (self.cfg.batch_size,), generator=generator)
        return self.collate([self.train[i] for i in rows.tolist()])

    def count(self, batch: tuple[Tensor, Tensor]) -> int:
        return batch[0].shape[0] // 2  # pairs

    def pair_losses(
        self, model: torch.nn.Module, batch: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, ...]:
        """(the preference loss, the chosen replies' mean token NLL, the chosen and the
        rejected replies' implicit rewards (B,) each)."""
        x, y = batch  # (2B, T) each
        per_token = token_logprobs(model(x), y)  # (2B, T)
        policy = per_token.sum(-1)  # (2B,) each reply's log-probability
        with torch.no_grad():
            reference = token_logprobs(self.reference(x), y).sum(-1)  # (2B,)
        loss, chosen, rejected = dpo_loss(*policy.chunk(2), *reference.chunk(2), self.cfg.beta,
                                          self.cfg.label_smoothing)  # fmt: skip
        B = x.shape[0] // 2
        nll = -per_token[:B].sum() / (y[:B] != -100).sum()  # SFT's loss on the chosen replies
        return loss, nll, chosen, rejected

    def loss(self, model: torch.nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        loss, nll, chosen, rejected = self.pair_losses(model, batch)
        self.last = {"reward_accuracy": float((chosen > rejected).float().mean()),
                     "reward_margin": float((chosen - rejected).mean()),
                     "chosen_nll": float(nll.detach())}  # fmt: skip
        return loss + self.cfg.nll_weight * nll if self.cfg.nll_weight else loss

    def step_metrics(self, state: FitState, loss: float) -> dict[str, float]:
        return self.last

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, precision_ctx) -> dict[str, float]:
        """The held-out pairs' preference loss (without --nll_weight's term), the chosen
        replies' NLL, the reward accuracy; pass@1 on --eval_data's prompts."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total, total_nll, right = 0.0, 0.0, 0.0
        for start in range(0, len(self.val), 64):
            chunk = self.val[start : start + 64]
            x, y = (t.to(device) for t in self.collate(chunk))
            with precision_ctx():
                loss, nll, chosen, rejected = self.pair_losses(model, (x, y))
            total += loss.item() * len(chunk)
            total_nll += nll.item() * len(chunk)
            right += float((chosen > rejected).float().sum())
        n = len(self.val)
        metrics = {"val_loss": total / n, "val_chosen_nll": total_nll / n,
                   "val_reward_accuracy": right / n}  # fmt: skip
        if self.eval_cases:
            metrics["pass1"] = greedy_pass_rate(model, self.tok, self.eval_cases,
                                                self.cfg.max_new_tokens, self.lines)  # fmt: skip
        model.train(was_training)
        return metrics


def pair_examples(tok: Tokenizer, pairs: list[PreferencePair], data: Path,
                  max_length: int) -> list[PairExample]:  # fmt: skip
    """Both replies of every pair in the template; refuses a pair the tokenizer cannot spell."""
    examples = []
    for i, pair in enumerate(pairs):
        try:
            chosen = reply_example(tok, pair.prompt, pair.chosen)
            rejected = reply_example(tok, pair.prompt, pair.rejected)
        except TokenizerError as error:
            raise UsageError(f"{data}: pair {i + 1} has text the run's tokenizer cannot encode "
                             f"({error})") from None  # fmt: skip
        if max(len(chosen[0]), len(rejected[0])) <= max_length + 1:
            examples.append((chosen, rejected))
    return examples


def prepare(cfg: DPOConfig, env: Setup | None = None, resume: Resume | None = None) -> TrainingTask:
    """`gpt dpo`'s task: the pairs, the policy (--init, in full or with LoRA) and the frozen
    reference (--init again)."""
    if cfg.data is None:
        raise UsageError("--data is required: preference pairs, JSON Lines (uv run --package gpt "
                         "make-pref-data writes them)")  # fmt: skip
    pairs = read_pairs(cfg.data)
    if len(pairs) <= cfg.val_rows:
        raise UsageError(f"{cfg.data} has {len(pairs)} pairs: too few for --val_rows "
                         f"{cfg.val_rows}")  # fmt: skip
    base = Path(resume.meta["sft"]["init"]) if resume else find_checkpoint(STAGE, cfg.init)
    tok = chat_run_tokenizer(base)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.seed))
    shuffled = [pairs[i] for i in order.tolist()]
    val = pair_examples(tok, shuffled[: cfg.val_rows], cfg.data, cfg.max_length)
    train = pair_examples(tok, shuffled[cfg.val_rows :], cfg.data, cfg.max_length)
    if not train or not val:
        raise UsageError(f"no pair of {cfg.data} fits in --max_length {cfg.max_length} tokens")
    eval_cases = read_cases(cfg.eval_data, cfg.eval_limit) if cfg.eval_data else []
    job = SFTRun(cfg, tok, base, tok.vocab_size)
    task = PreferenceTask(cfg, tok, train, val, eval_cases)

    def plot_title(trained: Trained) -> str:
        return f"DPO (beta {cfg.beta}): loss on preference pairs"

    plots = {"loss.png": ["loss", "val_loss"], "reward_accuracy.png": ["val_reward_accuracy"]}
    if eval_cases:
        plots["pass1.png"] = ["pass1"]
    return post_training_task(
        cfg, job, task, "dpo", item_name="pair", plots=plots, plot_title=plot_title,
        description=(f"policy and frozen reference: {base}; {len(train):,} training pairs, "
                     f"{len(val):,} held out; beta {cfg.beta}"),
    )  # fmt: skip


def dpo(argv: list[str]) -> None:
    """Preference-tune a chat run: `prepare` declares the task, `shared.trainer` runs it."""
    train_command(STAGE, DPOConfig, argv, prepare, prog="gpt dpo",
                  description=__doc__.split("\n\n")[0])  # fmt: skip
