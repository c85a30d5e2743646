"""The training engine's pieces: the warm-up/decay schedule and the state a resumed run restores."""

from __future__ import annotations

import warnings

import pytest
import torch

from hrkd_cli.errors import HrkdError
from hrkd_cli.train.trainer import (FitState, adamw, linear_warmup_decay, restore_training_state, resume_parts,
                                    staged_warmup_decay, training_state)


def model_and_schedule(total=10, warmup=2):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = adamw([{"named_params": list(model.named_parameters()), "lr": 1e-2}], 0.01)
    return model, opt, linear_warmup_decay(opt, warmup, total)


def test_linear_warmup_then_linear_decay_to_zero():
    _, opt, sch = model_and_schedule()
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs == pytest.approx([5e-3, 1e-2, 1e-2, 8.75e-3, 7.5e-3, 6.25e-3, 5e-3, 3.75e-3, 2.5e-3, 1.25e-3])
    assert opt.param_groups[0]["lr"] == 0.0


def test_restored_state_continues_the_schedule_and_optimizer():
    model, opt, sch = model_and_schedule()
    x = torch.randn(4, 3)
    for _ in range(4):
        model(x).sum().backward()
        opt.step()
        sch.step()
        opt.zero_grad()
    tensors, info = training_state({"main": opt}, {"main": sch}, FitState(step=4))
    model2, opt2, sch2 = model_and_schedule()
    model2.load_state_dict(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "get_lr called within step" from a restore
        state = restore_training_state(tensors, info, {"main": opt2}, {"main": sch2}, [])
    assert state.step == 4
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] and sch2.get_last_lr() == sch.get_last_lr()
    for o, s in ((opt, sch), (opt2, sch2)):  # one more step on each: identical weights after
        o.step()
        s.step()
    model(x).sum().backward(), model2(x).sum().backward()
    opt.step(), opt2.step()
    # (equal up to float rounding: the fused kernels may round a last bit differently on other memory)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-7) for a, b in zip(model.parameters(), model2.parameters()))


def test_resume_parts_picks_the_parts_with_a_checkpoint(tmp_path):
    (tmp_path / "a" / "last").mkdir(parents=True)
    (tmp_path / "a" / "last" / "train_state.json").write_text("{}")
    (tmp_path / "b" / "last").mkdir(parents=True)  # a directory without the state file has not started
    assert resume_parts(tmp_path, ["a", "b", "c"], resume=True) == {"a": True, "b": False, "c": False}
    assert resume_parts(tmp_path, ["a", "b", "c"], resume=False) == {"a": False, "b": False, "c": False}
    with pytest.raises(HrkdError, match="no checkpoint to resume from under"):
        resume_parts(tmp_path, ["b", "c"], resume=True)


def test_staged_schedule_restarts_warmup():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = staged_warmup_decay(opt, 0.25, 4, 12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    # stage 1: 4 steps, 1 of warm-up; stage 2: 8 steps, 2 of warm-up
    assert lrs == pytest.approx([1, 1, 2 / 3, 1 / 3, 1 / 2, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
