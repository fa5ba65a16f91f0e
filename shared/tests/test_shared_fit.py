"""`shared.fit.fit` and `shared.epochs`: accumulation, fp16 scaling, epochs, keeping the best,
and a resume that repeats the uninterrupted run exactly. Each test compares fit against the
same computation written out by hand, not against numbers fit once printed."""

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from shared.epochs import EpochSampler, length_grouped_batches  # noqa: E402
from shared.fit import FitSettings, FitState, KeepBest, fit  # noqa: E402
from shared.runs import Run  # noqa: E402
from shared.training import RunOptions  # noqa: E402

N, D = 12, 3  # examples, features


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(N, generator=g)
    weight = torch.tensor([1, 2, 3, 1, 1, 4, 2, 1, 3, 1, 2, 1])  # items per example
    return x, y, weight


class Regression:
    """Each example stands for `weight` items, so batches hold unequal numbers of items and
    the weighting of accumulated micro-batches matters."""

    def __init__(self, batch_size: int = 2, seed: int = 0, scores=None):
        self.x, self.y, self.w = data()
        self.sampler = EpochSampler(lambda epoch: length_grouped_batches(
            self.w.tolist(), batch_size, seed, epoch))  # fmt: skip
        self.scores = list(scores or [])  # what evaluate() returns, in order

    def train_batch(self, generator):
        i = torch.tensor(self.sampler.next())
        return self.x[i], self.y[i], self.w[i]

    def count(self, batch):
        return int(batch[2].sum())

    def loss(self, model, batch):
        x, y, w = batch
        return ((model(x).squeeze(-1) - y) ** 2 * w).sum() / w.sum()  # mean over the items

    def evaluate(self, model, precision_ctx):
        return {"score": self.scores.pop(0)} if self.scores else {"score": 0.0}


def model_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(D, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for group in optimizer.param_groups:
        group["peak_lr"] = group["lr"]
    return model, optimizer


def run_fit(tmp_path, task, steps, name, state=None, model=None, **settings):
    if model is None:
        model, optimizer = model_and_optimizer()
    else:
        model, optimizer = model
    opts = RunOptions(max_steps=steps, eval_interval=settings.pop("eval_interval", 1000))
    run = new_run(tmp_path / name)
    state = state or FitState(sampler=task.sampler)
    saved = {}  # checkpoint name -> (step, weights)

    def save(s, name=None):
        name = name or f"step_{s.step}"
        saved[name] = (s.step, {k: v.clone() for k, v in model.state_dict().items()})
        folder = tmp_path / name / "checkpoints" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    fit_settings = FitSettings(schedule=lambda *_: 1.0, grad_clip=0.0, **settings)
    state = fit(task, model, optimizer, opts, fit_settings, run, state, torch.device("cpu"),
                "fp32", save=save)  # fmt: skip
    return model, optimizer, state, run, saved


def new_run(folder):
    folder.mkdir(parents=True)
    return Run(folder)


def losses(run):
    return [r["loss"] for r in run.metrics() if "loss" in r]


def test_accumulated_micro_batches_take_the_step_of_their_union(tmp_path):
    """3 micro-batches of 2 examples (of 2 to 7 items each), accumulated, take the step of one
    batch of those 6 examples: the items' mean, not the mean of the three batches' means."""
    task = Regression(batch_size=2)
    union = torch.tensor(sum((task.sampler.next() for _ in range(3)), []))
    task.sampler.load_state_dict({"epoch": 1, "position": 0})
    accumulated, *_ = run_fit(tmp_path, task, 1, "micro", accumulation_steps=3)
    one_batch, optimizer = model_and_optimizer()
    optimizer.zero_grad()
    task.loss(one_batch, (task.x[union], task.y[union], task.w[union])).backward()
    optimizer.step()
    for p, q in zip(accumulated.parameters(), one_batch.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    unweighted, *_ = run_fit(tmp_path, Regression(batch_size=2), 1, "plain")  # a batch of 2
    assert not torch.allclose(unweighted.weight, one_batch.weight)  # the test can tell


def test_a_group_of_micro_batches_ends_with_its_epoch(tmp_path):
    """6 batches an epoch in groups of 4: steps of 4 and 2 batches, the epoch ending a step."""
    task = Regression(batch_size=2)
    assert task.sampler.batches_per_epoch == 6
    _, _, state, run, _ = run_fit(tmp_path, task, 4, "groups", accumulation_steps=4)
    assert state.sampler.state_dict() == {"epoch": 3, "position": 0}  # 4 steps: 2 epochs


def test_evaluation_at_each_epoch_end_keeps_the_best_and_stops_on_patience(tmp_path):
    """eval_interval=0: an evaluation per epoch (3 steps of 2 batches). Scores 1, 3, 2, 2, 2:
    the best is epoch 2's (step 6), and two evaluations later patience 2 stops the run."""
    task = Regression(batch_size=2, scores=[1.0, 3.0, 2.0, 2.0, 2.0, 9.0])
    keep = KeepBest("score", mode="max", patience=2)
    _, _, state, run, saved = run_fit(
        tmp_path, task, 100, "best", eval_interval=0, accumulation_steps=2, keep_best=keep
    )
    assert [r["step"] for r in run.metrics() if "score" in r] == [3, 6, 9, 12]
    assert state.stopped_early and state.step == 12
    assert state.best == {"score": 3.0} and state.best_step == 6
    assert saved["best"][0] == 6  # the best checkpoint holds the weights of step 6
    assert {"step_3", "step_6", "step_9", "step_12"} <= set(saved)  # and one per evaluation


def test_evaluate_at_end_and_a_loss_kept_at_its_minimum(tmp_path):
    """Steps 1-4 with evaluations every 3: at step 3, then once more at the end (step 4)."""
    task = Regression(scores=[2.0, 1.0])
    keep = KeepBest("score", mode="min")
    _, _, state, run, saved = run_fit(
        tmp_path, task, 4, "end", eval_interval=3, keep_best=keep, evaluate_at_end=True
    )
    assert [r["step"] for r in run.metrics() if "score" in r] == [3, 4]
    assert state.best_step == 4 and saved["best"][0] == 4
    assert keep.improves(0.5, 1.0) and not keep.improves(1.0, 1.0)


def test_resume_from_state_dict_repeats_the_uninterrupted_run(tmp_path):
    """7 steps straight, against 3 steps, a checkpoint's worth of state, and 4 more."""
    _, _, _, straight, _ = run_fit(tmp_path, Regression(), 7, "straight", accumulation_steps=2)
    model, optimizer, state, first, _ = run_fit(tmp_path, Regression(), 3, "first",
                                                accumulation_steps=2)  # fmt: skip
    saved_state = state.state_dict()
    weights, moments = model.state_dict(), optimizer.state_dict()
    task = Regression()
    resumed = FitState(sampler=task.sampler)
    resumed.load_state_dict(saved_state)
    assert task.sampler.state_dict() == saved_state["sampler"] != {"epoch": 1, "position": 0}
    model2, optimizer2 = model_and_optimizer(seed=1)  # other weights, overwritten below
    model2.load_state_dict(weights)
    optimizer2.load_state_dict(moments)
    _, _, state, second, _ = run_fit(tmp_path, task, 7, "second", state=resumed,
                                     model=(model2, optimizer2), accumulation_steps=2)  # fmt: skip
    assert state.step == 7
    assert losses(first) + losses(second) == losses(straight)  # to the last bit


def test_the_epoch_order_depends_on_seed_and_epoch_only():
    lengths = [5, 1, 4, 2, 3, 9, 7]
    a = EpochSampler(lambda e: length_grouped_batches(lengths, 2, 0, e))
    drawn = [a.next() for _ in range(10)]  # 4 batches an epoch: epochs 1, 2 and half of 3
    assert sorted(sum(drawn[:4], [])) == list(range(7)) == sorted(sum(drawn[4:8], []))
    assert drawn[:4] != drawn[4:8]  # reshuffled
    b = EpochSampler(lambda e: length_grouped_batches(lengths, 2, 0, e))
    b.load_state_dict(a.state_dict())
    assert [b.next() for _ in range(3)] == [a.next() for _ in range(3)]
    assert a.epochs_done == pytest.approx(3 + 1 / 4)


def test_fp16_scales_the_loss_and_saves_the_scale(tmp_path):
    """precision fp16: fit makes a GradScaler, and the state keeps its scale for a resume."""
    task = Regression()
    model, optimizer = model_and_optimizer()
    opts = RunOptions(max_steps=2, eval_interval=1000)
    state = FitState(sampler=task.sampler)
    fit(task, model, optimizer, opts, FitSettings(schedule=lambda *_: 1.0), new_run(tmp_path / "f"),
        state, torch.device("cpu"), "fp16")  # fmt: skip
    assert isinstance(state.scaler, torch.amp.GradScaler)
    saved = state.state_dict()["scaler"]
    assert saved["scale"] == state.scaler.get_scale() > 1
    again = FitState(sampler=Regression().sampler)
    again.load_state_dict(state.state_dict())
    opts = dataclasses.replace(opts, max_steps=2)  # nothing left to do: the scaler is rebuilt
    fit(task, model, optimizer, opts, FitSettings(schedule=lambda *_: 1.0), new_run(tmp_path / "g"),
        again, torch.device("cpu"), "fp16")  # fmt: skip
    assert again.scaler.get_scale() == saved["scale"]
