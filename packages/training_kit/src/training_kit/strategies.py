"""Four ways to hold a model across processes, each behind the same small `Engine` interface.

What each strategy keeps on every one of the N processes (P parameters, Adam's two states):

    strategy           weights    gradients   optimizer states   engine
    single (N = 1)     P          P           2P                 Accelerate, one process
    ddp                P          P           2P                 Accelerate (torch's DDP)
    deepspeed ZeRO-1   P          P           2P / N             DeepSpeed
    deepspeed ZeRO-2   P          P / N       2P / N             DeepSpeed
    deepspeed ZeRO-3   P / N      P / N       2P / N             DeepSpeed
    fsdp (full shard)  P / N      P / N       2P / N             torch's fully_shard (FSDP2)

DDP keeps a whole copy everywhere and averages the gradients (an all-reduce) before each step.
ZeRO-1 splits the optimizer's states: each process updates its 1/N of the weights, then they
exchange the new weights. ZeRO-2 also reduce-scatters the gradients, so each process keeps
only the 1/N it updates. ZeRO-3 and FSDP split the weights themselves, gathering a layer's
full weights just before its forward and backward and freeing them after.

Why not Accelerate for all four: on a CPU its FSDP plugin is silently ignored (you get DDP)
and its DeepSpeed plugin sees a world of one; torch's `fully_shard` and DeepSpeed's own
`initialize` both work on gloo. So Accelerate runs single and DDP and gives every strategy
its mixed precision, while the sharding strategies call their engines directly. Each engine
checks that it got the world size it was asked for and that what should be split is split
(`check_sharding`): a silent fallback to DDP would otherwise look like success.
"""

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.distributed as dist

from shared.errors import UsageError
from shared.tasks import TrainingTask

Strategy = Literal["single", "ddp", "fsdp", "deepspeed"]
STRATEGIES: tuple[str, ...] = ("single", "ddp", "fsdp", "deepspeed")


class Engine:
    """One process's share of a model and its optimizer; the loop talks only to this."""

    name: str
    model: Any  # what computes the loss: the wrapped module
    world_size: int
    rank: int

    def set_lr(self, factor: float) -> None:
        """Every parameter group's rate to its peak times `factor` (the schedule's value)."""
        for group in self.param_groups():
            group["lr"] = group["peak_lr"] * factor

    def param_groups(self) -> list[dict]:
        raise NotImplementedError

    @contextlib.contextmanager
    def evaluation_model(self) -> Iterator[Any]:
        """What an evaluation calls, for the length of it: the module itself, whatever wraps
        it for training (a DDP wrapper has only `forward`, and a task's evaluation may call
        `encode`, `decode`, ...), with whole weights wherever it reads them."""
        yield self.model

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager:
        """Around one micro-batch's backward: skip the gradient exchange unless `last`."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        raise NotImplementedError

    def step(self, grad_clip: float) -> float | None:
        """Clip the gradient's global norm, step, zero the gradients; the norm before clipping."""
        raise NotImplementedError

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The whole model's weights on the CPU, on rank 0 (None elsewhere). Collective:
        every rank must call it."""
        raise NotImplementedError

    def optimizer_state_dict(self) -> dict[str, Any] | None:
        """The optimizer's whole state, keyed by parameter names (so it loads under another
        strategy), on rank 0 (None elsewhere). Collective."""
        raise NotImplementedError

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        """Load `optimizer_state_dict`'s result (every rank passes the whole of it)."""
        raise NotImplementedError

    def check_sharding(self) -> str:
        """Raise unless the weights or states are split as this strategy promises; a line on how."""
        raise NotImplementedError


def full_optimizer_state(module: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """torch's name-keyed view of an optimizer's state: {"state": {param name: {...}},
    "param_groups": [{"params": [names], ...}]}, gathered whole (FSDP's shards included)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(module, optimizer, options=options)


def load_full_optimizer_state(module: torch.nn.Module, optimizer: Any, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    peaks = [group["peak_lr"] for group in optimizer.param_groups]  # this command's rates win
    set_optimizer_state_dict(module, optimizer, state,
                             options=StateDictOptions(full_state_dict=True))  # fmt: skip
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["peak_lr"] = peak


def _check_world(world_size: int) -> None:
    got = dist.get_world_size() if dist.is_initialized() else 1
    if got != world_size:
        raise RuntimeError(
            f"asked for {world_size} processes but the process group has {got}: the launcher "
            "fell back silently (see the README's traps)"
        )


# ----------------------------------------------------------------------------------------------
# single and ddp: Accelerate


class AccelerateEngine(Engine):
    """`single` and `ddp` through Accelerate: `prepare` wraps the model in torch's DDP when
    there is more than one process; `backward`, `no_sync` and `clip_grad_norm_` are its own."""

    def __init__(self, name: str, accelerator: Any, model: torch.nn.Module, optimizer: Any):
        self.name, self.accelerator = name, accelerator
        self.world_size, self.rank = accelerator.num_processes, accelerator.process_index
        self.model, self.optimizer = accelerator.prepare(model, optimizer)

    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if last else self.accelerator.no_sync(self.model)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def step(self, grad_clip: float) -> float | None:
        norm = None
        if grad_clip:
            norm = float(self.accelerator.clip_grad_norm_(self.model.parameters(), grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        if not self.accelerator.is_main_process:
            return None
        # (Accelerate's unwrap_model would import DeepSpeed to check for it: 10 s here.)
        module = getattr(self.model, "module", self.model)  # DDP keeps the model as .module
        return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    @contextlib.contextmanager
    def evaluation_model(self) -> Iterator[Any]:
        yield getattr(self.model, "module", self.model)

    def _module_and_optimizer(self) -> tuple[torch.nn.Module, Any]:
        module = getattr(self.model, "module", self.model)
        return module, getattr(self.optimizer, "optimizer", self.optimizer)  # Accelerate's wrap

    def optimizer_state_dict(self) -> dict[str, Any] | None:
        module, optimizer = self._module_and_optimizer()
        if isinstance(optimizer, torch.optim.Optimizer):
            state = full_optimizer_state(module, optimizer)  # by parameter name: portable
        else:  # gpt's Muon + AdamW pair: its own state_dict, for the strategies that keep it
            state = optimizer.state_dict()
        return state if self.accelerator.is_main_process else None

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        module, optimizer = self._module_and_optimizer()
        if isinstance(optimizer, torch.optim.Optimizer):
            load_full_optimizer_state(module, optimizer, state)
            return
        peaks = [group["peak_lr"] for group in optimizer.param_groups]
        optimizer.load_state_dict(state)
        for group, peak in zip(optimizer.param_groups, peaks, strict=True):
            group["peak_lr"] = peak

    def check_sharding(self) -> str:
        wrapped = isinstance(self.model, torch.nn.parallel.DistributedDataParallel)
        if self.name == "ddp" and self.world_size > 1 and not wrapped:
            raise RuntimeError("ddp with several processes but the model is not wrapped in DDP")
        if self.name == "ddp":
            return f"DDP over {self.world_size} processes: a whole copy of the weights on each"
        return "one process: nothing to shard"


# ----------------------------------------------------------------------------------------------
# fsdp: torch's fully_shard (FSDP2)


class FSDPEngine(Engine):
    """Every unit (a transformer block) and then the root are `fully_shard`ed: each weight is
    a DTensor holding 1/N of its rows on each process, gathered around each unit's forward and
    backward. The optimizer is built after sharding, so its states are sharded too."""

    name = "fsdp"

    def __init__(self, training: TrainingTask, model: torch.nn.Module, world_size: int):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        self.world_size, self.rank = world_size, dist.get_rank()
        device_type = next(model.parameters()).device.type
        mesh = init_device_mesh(device_type, (world_size,))
        for unit in training.shard_units(model):
            fully_shard(unit, mesh=mesh)
        fully_shard(model, mesh=mesh)
        self.model = model
        self.optimizer = training.build_optimizer(model)
        if not isinstance(self.optimizer, torch.optim.Optimizer):
            raise UsageError(
                f"--strategy fsdp needs a torch optimizer, not {type(self.optimizer).__name__}; "
                "Muon orthogonalises whole matrices, which FSDP splits (use --optimizer=adamw)"
            )
        if isinstance(self.optimizer, torch.optim.Adafactor):
            raise UsageError(
                "--strategy fsdp splits every weight matrix, and Adafactor's step reads whole "
                "ones (a row and a column moment, the weight's RMS); use --optimizer=adamw, "
                "or --strategy ddp"
            )

    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @contextlib.contextmanager
    def evaluation_model(self) -> Iterator[Any]:
        """FSDP gathers a unit's weights in the hooks around its `forward`. An evaluation may
        call other methods (a translator's `encode` and `decode` in greedy decoding), which
        read the root's weights (the embeddings) without passing through the root's forward:
        gather those for the whole evaluation. The units inside still gather their own."""
        self.model.unshard()
        try:
            yield self.model
        finally:
            self.model.reshard()

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager:
        self.model.set_requires_gradient_sync(last)  # reduce-scatter on the last one only
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, grad_clip: float) -> float | None:
        norm = None
        if grad_clip:
            total = torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
            norm = float(total.full_tensor() if hasattr(total, "full_tensor") else total)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(self.model, options=options)  # gathered on rank 0
        return state if self.rank == 0 else None

    def optimizer_state_dict(self) -> dict[str, Any] | None:
        state = full_optimizer_state(self.model, self.optimizer)
        return state if self.rank == 0 else None

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        load_full_optimizer_state(self.model, self.optimizer, state)

    def check_sharding(self) -> str:
        local = sum(p.to_local().numel() for p in self.model.parameters())
        full = sum(p.numel() for p in self.model.parameters())
        if self.world_size > 1 and local >= full:
            raise RuntimeError(f"fsdp: this process holds all {full:,} weights: not sharded")
        return f"FSDP: this process holds {local:,} of the {full:,} weights"


# ----------------------------------------------------------------------------------------------
# deepspeed: ZeRO stages 0-3


def deepspeed_config(
    zero_stage: int, micro_batch: int, accumulation: int, world_size: int, bf16: bool
) -> dict[str, Any]:
    """DeepSpeed's JSON config for a ZeRO stage on this run's batch (a dict, not a file).

    Clipping stays in the loop's hands (`gradient_clipping` 0 here would disable it; the loop
    passes the task's value), and the optimizer is torch's own: DeepSpeed's fused CPU Adam
    needs a compiled extension, and `zero_allow_untested_optimizer` says we know.
    """
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro_batch * accumulation * world_size,
        "zero_optimization": {"stage": zero_stage},
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,  # the loop prints; DeepSpeed stays quiet
        "wall_clock_breakdown": False,
    }


class DeepSpeedEngine(Engine):
    """`deepspeed.initialize` with torch's AdamW on gloo; DeepSpeed owns backward and step."""

    name = "deepspeed"

    def __init__(
        self,
        training: TrainingTask,
        model: torch.nn.Module,
        world_size: int,
        zero_stage: int,
        micro_batch: int,
        accumulation: int,
        grad_clip: float,
        bf16: bool,
    ):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")  # reuses the group the worker made
        self.world_size, self.rank, self.zero_stage = world_size, dist.get_rank(), zero_stage
        self.build_model = training.build_model  # ZeRO-3 evaluates on a whole copy
        optimizer = training.build_optimizer(model)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise UsageError(
                f"--strategy deepspeed needs a torch optimizer, not {type(optimizer).__name__}; "
                "Muon orthogonalises whole matrices, which ZeRO splits (use --optimizer=adamw)"
            )
        if isinstance(optimizer, torch.optim.Adafactor) and zero_stage > 0:
            raise UsageError(
                "--strategy deepspeed with ZeRO splits every weight into flat pieces, and "
                "Adafactor's step reads whole matrices (a row and a column moment, the "
                "weight's RMS); use --optimizer=adamw, or --strategy ddp or fsdp"
            )
        # Each group's parameters by name, for checkpoints in the other engines' format.
        names = {id(p): name for name, p in model.named_parameters()}
        self.group_names = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
        config = deepspeed_config(zero_stage, micro_batch, accumulation, world_size, bf16)
        config["gradient_clipping"] = grad_clip
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=config, dist_init_required=False
        )
        self.model = self.engine
        self._last = True  # whether the micro-batch now running ends the step
        self._relinked = False  # see step()

    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @contextlib.contextmanager
    def evaluation_model(self) -> Iterator[Any]:
        """ZeRO-3 gathers a submodule's weights around its `forward` and lets them go after
        it, so a weight read outside it (t5's tied output layer multiplies by the embedding
        matrix directly) is an empty shard there. An evaluation runs on a whole copy instead:
        every process gathers the weights into a model of its own, for the evaluation only."""
        module = self.engine.module
        if self.zero_stage != 3:
            yield module
            return
        import deepspeed

        with torch.random.fork_rng():  # building it must not move the dropout's generator
            whole = self.build_model()
        with deepspeed.zero.GatheredParameters(list(module.parameters())):
            whole.load_state_dict(module.state_dict())
        yield whole.to(next(module.parameters()).device)

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager:
        self._last = last
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        # The loop already weights each micro-batch by its share of the step's items, so
        # DeepSpeed must not divide by the accumulation steps again.
        self.engine.backward(loss, scale_wrt_gas=False)
        if not self._last:
            self.engine.step()  # DeepSpeed counts micro-batches in step(): here it only counts

    def step(self, grad_clip: float) -> float | None:
        self.engine.step()  # the boundary: clips (by the config), steps and zeroes
        if hasattr(self.optimizer, "_hp_optimizer_states_linked") and not self._relinked:
            # ZeRO 1-2 link each weight to its piece of the optimizer's state once, right after
            # the first parameter group's first step (DeepSpeed 0.19), when the other groups
            # have no state yet: their weights would never find their moments (a checkpoint
            # fails with "exp_avg not found"). Link again once every group has stepped.
            self.optimizer._hp_optimizer_states_linked = False
            self.optimizer._lazy_init_hp_params_optimizer_state()
            self._relinked = True
        norm = self.engine.get_global_grad_norm()
        return None if norm is None else float(norm)

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        import deepspeed

        module = self.engine.module
        params = list(module.parameters())
        # ZeRO-3 keeps 1/N of each weight here: gather them all, read them, let them go again.
        gather = deepspeed.zero.GatheredParameters(params) if self.zero_stage == 3 else None
        with gather or contextlib.nullcontext():
            if self.rank != 0:
                return None
            return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}

    def _inner_optimizer(self) -> torch.optim.Optimizer:
        """torch's optimizer itself: ZeRO 1-3 wrap it, and give it flat pieces of weights."""
        return getattr(self.optimizer, "optimizer", self.optimizer)

    def optimizer_state_dict(self) -> dict[str, Any] | None:
        """The optimizer's state whole and by parameter name, the format the other engines
        save (so a ZeRO-3 checkpoint resumes under DDP, and the other way round).

        ZeRO keeps Adam's moments for flat pieces of the weights, each process its own piece;
        DeepSpeed's tensor-fragment API reassembles one parameter's moment from the pieces
        (collective: every process calls it, in the same order). The step count is one number
        for all of them."""
        from deepspeed.utils import safe_get_full_optimizer_state

        module = self.engine.module
        inner = self._inner_optimizer()
        flat_states = [s for s in inner.state.values() if "step" in s]
        if not flat_states:  # no step taken yet
            return None
        step = flat_states[0]["step"]
        keys = [k for k in flat_states[0] if k != "step"]  # exp_avg, exp_avg_sq
        state: dict[str, dict[str, Any]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            entry = {"step": step.detach().clone().cpu()}
            for key in keys:
                whole = safe_get_full_optimizer_state(param, key)
                if whole is None:  # ZeRO-0: torch's optimizer holds the parameter itself
                    whole = inner.state[param][key]
                entry[key] = whole.detach().float().cpu().clone()
            state[name] = entry
        groups = [
            {**{k: v for k, v in g.items() if k != "params"}, "params": names}
            for g, names in zip(inner.param_groups, self.group_names, strict=True)
        ]
        return {"state": state, "param_groups": groups} if self.rank == 0 else None

    def load_optimizer_state_dict(self, saved: dict[str, Any]) -> None:
        """The name-keyed state of any engine's checkpoint, cut into this process's pieces."""
        from deepspeed.utils import safe_set_full_optimizer_state

        module = self.engine.module
        inner = self._inner_optimizer()
        first = next(iter(saved["state"].values()))
        step = torch.tensor(float(first["step"]))
        keys = [k for k in first if k != "step"]
        # torch's optimizer makes its state at the first step, and ZeRO 1-2 link each weight
        # to its piece of that state only then: make the state now (zeros, filled below).
        pieces = getattr(self.optimizer, "fp32_partitioned_groups_flat", None)  # ZeRO-3's
        if pieces is None:  # ZeRO 1-2's pieces, or ZeRO-0's parameters: what torch steps
            pieces = [p for group in inner.param_groups for p in group["params"]]
        for piece in pieces:
            inner.state[piece] = {"step": step.clone(),
                                  **{k: torch.zeros_like(piece) for k in keys}}  # fmt: skip
        if hasattr(self.optimizer, "_lazy_init_hp_params_optimizer_state"):  # ZeRO 1-2
            self.optimizer._lazy_init_hp_params_optimizer_state()
        for name, param in module.named_parameters():
            entry = saved["state"].get(name)
            if entry is None:
                continue
            for key, value in entry.items():
                if key == "step":
                    continue
                if self.zero_stage == 0:  # torch's optimizer holds the parameter itself
                    inner.state[param][key] = value.to(param.device, param.dtype).clone()
                else:
                    safe_set_full_optimizer_state(param, value.to(param.device), key)

    def check_sharding(self) -> str:
        module = self.engine.module
        full = sum(getattr(p, "ds_numel", p.numel()) for p in module.parameters())
        if self.zero_stage == 3:
            local = sum(p.ds_tensor.numel() for p in module.parameters())
            what = "weights"
        elif self.zero_stage in (1, 2):
            local = sum(t.numel() for t in self.optimizer.single_partition_of_fp32_groups)
            what = "optimizer states' weights"
        else:
            return f"ZeRO-0 over {self.world_size} processes: DDP by DeepSpeed, nothing split"
        if self.world_size > 1 and local >= full:
            raise RuntimeError(f"ZeRO-{self.zero_stage}: this process holds all {full:,} {what}")
        return f"ZeRO-{self.zero_stage}: this process holds {local:,} of the {full:,} {what}"
