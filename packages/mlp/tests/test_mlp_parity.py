"""Our MLP against torch's: same weights and batches in, same logits, gradients, losses out.

This is how a learner checks their work. The micrograd model's weights are copied into a
torch.nn model with the same layers; in float64 both then compute the same function, so the
logits, the loss and every gradient agree to ~1e-12 (the two libraries add in different orders,
which costs a few units in the 16th digit). Training the two for several optimizer steps on
the same batches keeps them together: per-step losses and final weights agree to 1e-10.
"""

import dataclasses

import numpy as np
import pytest
import torch

from micrograd import nn as mg_nn
from mlp.data import batches, load_digits_split
from mlp.model_micrograd import MLPConfig, build_mlp, forward
from mlp.model_torch import (
    build_torch_mlp,
    copy_micrograd_to_torch,
    copy_torch_to_micrograd,
    digits_loader,
    state_dict_numpy,
)
from mlp.train import TrainConfig, train_micrograd, train_torch
from shared.runs import Run


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture
def small_digits(digits):
    """240 training images: per epoch, 7 batches of 32 and a last one of 16."""
    return dataclasses.replace(digits, x_train=digits.x_train[:240], y_train=digits.y_train[:240])


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    return Run.start("mlp", TrainConfig(), name="parity", quiet=True)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_logits_loss_and_gradients_match_torch(digits, activation):
    cfg = MLPConfig(hidden=(32, 16), activation=activation)
    ours = build_mlp(cfg, np.random.default_rng(0))
    theirs = build_torch_mlp(cfg)
    copy_micrograd_to_torch(ours, theirs)
    x, y = digits.x_train[:50], digits.y_train[:50]  # (50, 64), (50,)

    logits = forward(ours, x)  # (50, 10)
    loss = mg_nn.CrossEntropyLoss()(logits, y)
    loss.backward()
    torch_logits = theirs(torch.from_numpy(x))  # (50, 10)
    torch_loss = torch.nn.CrossEntropyLoss()(torch_logits, torch.from_numpy(y))
    torch_loss.backward()

    torch.testing.assert_close(torch.from_numpy(logits.data), torch_logits, rtol=1e-12, atol=1e-12)
    assert abs(float(loss.data) - torch_loss.item()) < 1e-12
    our_grads = {name: p.grad for name, p in ours.named_parameters()}
    their_grads = {name: p.grad for name, p in theirs.named_parameters()}
    assert (
        our_grads.keys()
        == their_grads.keys()
        == {f"{i}.{k}" for i in (0, 2, 4) for k in ("weight", "bias")}
    )
    for name, grad in their_grads.items():
        torch.testing.assert_close(
            torch.from_numpy(our_grads[name]),
            grad,
            rtol=1e-10,
            atol=1e-12,
            msg=lambda m, name=name: f"{name}: {m}",
        )


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    """d(mean CE)/d logits = (softmax(z) - onehot(y)) / B: the formula the README derives."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 10))  # (B, C)
    y = np.array([3, 0, 9, 3])
    from micrograd import Tensor

    logits = Tensor(z, requires_grad=True)
    mg_nn.cross_entropy(logits, y).backward()
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # (B, C)
    np.testing.assert_allclose(logits.grad, (softmax - np.eye(10)[y]) / 4, atol=1e-15)


def test_weights_copy_both_ways():
    cfg = MLPConfig(hidden=(8,))
    ours = build_mlp(cfg, np.random.default_rng(0))
    theirs = build_torch_mlp(cfg)  # torch's own random initial weights
    copy_torch_to_micrograd(theirs, ours)
    for name, array in state_dict_numpy(theirs).items():
        np.testing.assert_array_equal(ours.state_dict()[name], array)


def test_dataloader_yields_the_same_batches_as_data_batches(digits):
    loader = digits_loader(digits.x_train, digits.y_train, batch_size=64, seed=3)
    for epoch in (0, 1, 5):
        loader.batch_sampler.set_epoch(epoch)
        ours = list(batches(len(digits.y_train), 64, seed=3, epoch=epoch))
        theirs = list(loader)
        assert len(theirs) == len(ours) == 23  # 1437 = 22 * 64 + 29
        for idx, (x, y) in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(x.numpy(), digits.x_train[idx])  # (B, 64)
            np.testing.assert_array_equal(y.numpy(), digits.y_train[idx])  # (B,)


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.1), ("adam", 1e-2)])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_training_loops_agree_step_by_step(small_digits, run, optimizer, lr, activation):
    """Two epochs (16 steps), momentum or Adam moments, L2 decay on: losses and weights agree."""
    cfg = TrainConfig(
        hidden=(32,),
        activation=activation,
        epochs=2,
        optimizer=optimizer,
        lr=lr,
        weight_decay=1e-3,
        seed=5,
    )
    ours = train_micrograd(cfg, small_digits, run)
    theirs = train_torch(cfg, small_digits, run)
    assert len(ours.step_losses) == len(theirs.step_losses) == 16
    np.testing.assert_allclose(ours.step_losses, theirs.step_losses, rtol=1e-10, atol=0)
    assert ours.step_losses[-1] < ours.step_losses[0]  # it did learn something
    assert ours.state.keys() == theirs.state.keys()
    for name, array in theirs.state.items():
        np.testing.assert_allclose(ours.state[name], array, rtol=0, atol=1e-10, err_msg=name)
    np.testing.assert_array_equal(ours.test_predictions, theirs.test_predictions)


def test_the_loops_agree_with_a_schedule_and_evaluations_mid_epoch(small_digits, run):
    """Warmup then cosine decay (`shared.training.lr_factor`), a step cap that ends the run
    inside the second epoch, and evaluations every 5 steps: both loops take the same steps with
    the same rates, and score the test split at the same steps (5, 10, and 13, the last)."""
    cfg = TrainConfig(
        hidden=(16,),
        epochs=3,
        max_steps=13,
        eval_interval=5,
        warmup_steps=4,
        decay="cosine",
        min_lr_ratio=0.1,
        seed=2,
    )
    ours = train_micrograd(cfg, small_digits, run)
    theirs = train_torch(cfg, small_digits, run)
    assert len(ours.step_losses) == len(theirs.step_losses) == 13
    np.testing.assert_allclose(ours.step_losses, theirs.step_losses, rtol=1e-10, atol=0)
    for name, array in theirs.state.items():
        np.testing.assert_allclose(ours.state[name], array, rtol=0, atol=1e-10, err_msg=name)
    logged = [row["step"] for row in run.metrics() if "test_accuracy" in row]
    assert logged == [5, 10, 13] * 2  # micrograd's evaluations, then torch's

    # The schedule is applied: the first step (same weights, rate lr/4 instead of lr) gives the
    # same loss, the second a different one.
    constant = train_micrograd(
        dataclasses.replace(cfg, warmup_steps=0, decay="constant"), small_digits, run
    )
    assert constant.step_losses[0] == ours.step_losses[0]
    assert constant.step_losses[1] != pytest.approx(ours.step_losses[1], rel=1e-6)
