"""The char LM's task for `training_kit`: N processes each read B/N of the streams, and
together they read exactly what one process reading all B streams reads, state included."""

import pytest
import torch

from seq_models.charlm import CharLM, CharLMConfig, tbptt_batches
from seq_models.cli import TrainConfig
from seq_models.kit import CharStreamTask, StreamPosition
from shared.errors import UsageError

TEXT_IDS = torch.randint(0, 7, (203,), generator=torch.Generator().manual_seed(0))


def config(batch_size: int = 4, seq_len: int = 5) -> TrainConfig:
    return TrainConfig(batch_size=batch_size, seq_len=seq_len,
                       model=CharLMConfig(embed_dim=4, hidden_size=8, num_layers=2))  # fmt: skip


def tasks(cfg: TrainConfig, world_size: int) -> list[CharStreamTask]:
    return [CharStreamTask(cfg, TEXT_IDS, TEXT_IDS, r, world_size) for r in range(world_size)]


def test_the_first_epoch_is_tbptt_batches_windows_in_order():
    (task,) = tasks(config(), 1)
    generator = torch.Generator().manual_seed(0)
    expected = list(tbptt_batches(TEXT_IDS, 4, 5))
    for x, y in expected:
        got = task.train_batch(generator)
        assert torch.equal(got[0], x) and torch.equal(got[1], y)
    task.train_batch(generator)  # the next epoch begins: a new offset, the state forgotten
    assert task.sampler.epoch == 1 and task.sampler.window == 1


def test_two_processes_read_the_streams_of_one_across_epoch_boundaries():
    cfg = config()
    (one,) = tasks(cfg, 1)
    two = tasks(cfg, 2)
    generators = [torch.Generator().manual_seed(3) for _ in range(3)]
    for _ in range(40):  # 10 windows an epoch: four epochs, each with its own offset
        x, y = one.train_batch(generators[0])
        parts = [t.train_batch(g) for t, g in zip(two, generators[1:], strict=True)]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
    assert one.sampler.epoch == two[0].sampler.epoch == 3
    assert len({t.sampler.offset for t in (one, *two)}) == 1


def test_the_carried_state_is_split_merged_and_split_again_exactly():
    cfg = config()
    torch.manual_seed(0)
    model = CharLM(7, cfg.model)
    (one,) = tasks(cfg, 1)
    two = tasks(cfg, 2)
    g = [torch.Generator().manual_seed(0) for _ in range(3)]
    for _ in range(3):  # the state carries from window to window
        loss_one = one.loss(model, one.train_batch(g[0]))
        losses = [t.loss(model, t.train_batch(gen)) for t, gen in zip(two, g[1:], strict=True)]
        # equal shares of the characters: the mean over all streams is the mean of the means
        assert loss_one.item() == pytest.approx(sum(v.item() for v in losses) / 2, rel=1e-5)
    merged = StreamPosition.merge_process_states([t.sampler.state_dict() for t in two])
    saved = one.sampler.state_dict()
    assert {k: merged[k] for k in ("epoch", "offset", "window")} == {
        k: saved[k] for k in ("epoch", "offset", "window")
    }
    for got, want in zip(merged["carry"], saved["carry"], strict=True):  # (layers, B, H)
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want))
    # A single process's position resumed on two processes: each takes its streams' state.
    again = tasks(cfg, 2)
    for rank, task in enumerate(again):
        task.sampler.load_state_dict(saved)
        torch.testing.assert_close(task.sampler.carry[0], two[rank].sampler.carry[0])
        torch.testing.assert_close(task.sampler.carry[1], two[rank].sampler.carry[1])


def test_streams_that_do_not_split_evenly_are_refused():
    with pytest.raises(UsageError, match="multiple of --num_processes"):
        CharStreamTask(config(batch_size=5), TEXT_IDS, TEXT_IDS, 0, 2)
