"""Parity with the reference package of each optimizer torch does not have (issue 10, part 2).

The packages are test-only dependencies (the dev extra), written by others: lion-pytorch 0.2.5
for Lion, pytorch-optimizer 4.1.0 for AdEMAMix and SOAP. As for torch (test_core_torch_parity.py):
float64, 45 steps on a 3-layer net, two param groups with different hyperparameters, a StepLR
halving the learning rate every 10 steps; parameters and state equal to rtol 1e-9, on every
engine (SOAP, a matrix method, on the reference engine: what impl="auto" runs it on); and a run
resumed from a checkpoint at step 20 ends where the package's uninterrupted run does.

SOAP holds rtol 1e-9 although its eigendecompositions could round differently: descend keeps
the package's matrices in the package's memory layouts (see test_matrix_optimizers.py), so the
same LAPACK and BLAS calls see the same operands and the runs agree bit for bit here.
"""

from __future__ import annotations

import io

import pytest
import torch
from optimizer_info import CONFIGS, configs, make_model, train

STEPS = 45
RTOL = 1e-9
REFERENCE_CONFIGS = [c for c in CONFIGS if c.info.reference is not None]


def _scheduled(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)


def _reference_run(config):
    model = make_model()
    opt = config.build_reference(config.groups(model))
    train(model, opt, STEPS, scheduler=_scheduled(opt))
    return model, opt


def _assert_close(config, model, opt, ref_model, ref_opt, rtol: float = RTOL) -> None:
    compared = 0
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=0)
        for name in opt.state[p].keys() & ref_opt.state[q].keys():
            theirs = config.info.reference_state(name, ref_opt.state[q][name])
            torch.testing.assert_close(opt.state[p][name], theirs.to(opt.state[p][name].dtype),
                                       rtol=rtol, atol=1e-300)
            compared += 1
    assert compared > 0, "state buffers must be compared"


# Every engine; the traced one (foreach) only where the rule is elementwise (not SOAP).
ENGINE_RUNS = [(c, impl) for c in REFERENCE_CONFIGS for impl in ("reference", "foreach", "auto")
               if impl != "foreach" or c.info.traceable]


@pytest.mark.parametrize("config, impl", ENGINE_RUNS, ids=[f"{c.id}-{i}" for c, i in ENGINE_RUNS])
def test_matches_its_reference_package(config, impl):
    model = make_model()
    opt = config.build(config.groups(model), impl=impl)
    losses = train(model, opt, STEPS, scheduler=_scheduled(opt))
    assert losses[-1] != losses[0], "the run must move the parameters"
    _assert_close(config, model, opt, *_reference_run(config))


@configs(REFERENCE_CONFIGS)
def test_resumed_run_ends_where_the_reference_package_does(config):
    model = make_model()
    opt = config.build(config.groups(model), impl="auto")
    scheduler = _scheduled(opt)
    train(model, opt, 20, scheduler=scheduler)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_model = make_model(seed=1)
    resumed_model.load_state_dict(saved["model"])
    resumed = config.build(config.groups(resumed_model), impl="auto")
    resumed.load_state_dict(saved["opt"])
    resumed_scheduler = _scheduled(resumed)
    resumed_scheduler.load_state_dict(saved["scheduler"])
    train(resumed_model, resumed, STEPS - 20, scheduler=resumed_scheduler)
    _assert_close(config, resumed_model, resumed, *_reference_run(config))


def test_ademamix_fixed_decay_matches_pytorch_optimizer():
    """fixed_decay decays by lambda whatever the lr (so it is not in the table, whose lr=0 test
    expects a group to stay put)."""
    config = next(c for c in REFERENCE_CONFIGS if c.cls.__name__ == "AdEMAMix")
    kwargs = {"lr": 1e-3, "weight_decay": 0.01, "weight_decouple": True, "fixed_decay": True}
    model, theirs_model = make_model(), make_model()
    ours = config.cls(model.parameters(), **kwargs)
    theirs = config.info.reference(theirs_model.parameters(), **kwargs)
    train(model, ours, STEPS)
    train(theirs_model, theirs, STEPS)
    _assert_close(config, model, ours, theirs_model, theirs)
