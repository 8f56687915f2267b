"""Muon, Adafactor and SOAP: what the generic table (optimizer_info.py) cannot say about matrix
methods (issue 10).

The table runs them through every generic test: torch parity in float64 at rtol 1e-9 (Muon,
Adafactor: test_core_torch_parity), the package's SOAP at rtol 1e-9 with a resumed run
(test_reference_packages), checkpoints, param groups, schedulers, no-op steps, skip_nonfinite.
Here:

* Muon against torch in float32, the precision its users train in: torch's Newton-Schulz runs in
  bfloat16 whatever the parameters' dtype, and so does descend's, so the two agree to rounding
  (bit for bit on this CPU; rtol 1e-6 leaves room for another BLAS). 35 steps of a net of
  three weight matrices, two param groups, StepLR, and a run resumed from a checkpoint.
* SOAP against the package in float32 (the table's float32-vs-float64 comparison leaves SOAP
  out: see rounding_sensitive there), and with merge_dims / channels_last on 3-D and 4-D
  tensors. Tolerance rtol 1e-9 in float64 and 1e-6 in float32: descend keeps the package's
  matrices in the package's memory layouts (eigenbases column-major, as eigh and QR return
  them), so BLAS rounds the same products alike and the runs agree bit for bit here; stored in
  another layout they drift apart by ~1e-5 relative within 35 steps (each eigenbasis refresh
  amplifies last-bit differences), which is why the tolerance is not looser.
* Adafactor's factored state: row and column factors of the shapes torch keeps.
* Refusals: traced engines (impl="foreach"/"numba") refuse a matrix rule with a clear
  ValueError; bad hyperparameters; non-2-D parameters for Muon; complex parameters.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from optimizer_info import INFO_BY_CLASS
from torch import nn

import descend

STEPS = 35
RESUME_AT = 17


# ---- Muon against torch.optim.Muon in float32 -------------------------------------------------

def _matrix_net(dtype: torch.dtype, seed: int = 0) -> nn.Sequential:
    """Three weight matrices (tall, wide and square-ish), no biases: what Muon takes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12, bias=False), nn.Tanh(), nn.Linear(12, 7, bias=False),
                         nn.Tanh(), nn.Linear(7, 3, bias=False)).to(dtype)


def _data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(32, 6, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(32, 3, generator=g, dtype=torch.float64).to(dtype))


def _muon_groups(model: nn.Module) -> list[dict]:
    first, *rest = model.parameters()
    return [{"params": [first]},
            {"params": rest, "lr": 0.01, "momentum": 0.8, "nesterov": False,
             "adjust_lr_fn": "match_rms_adamw"}]


def _train(model, opt, scheduler, steps: int, dtype: torch.dtype) -> list[float]:
    x, y = _data(dtype)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


def _muon_run(cls, dtype=torch.float32, steps: int = STEPS, **kwargs):
    model = _matrix_net(dtype)
    opt = cls(_muon_groups(model), lr=0.02, **kwargs)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    losses = _train(model, opt, scheduler, steps, dtype)
    return model, opt, scheduler, losses


def _assert_muon_close(model, opt, torch_model, torch_opt, rtol: float) -> None:
    for p, q in zip(model.parameters(), torch_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=1e-7)
        torch.testing.assert_close(opt.state[p]["momentum_buffer"],
                                   torch_opt.state[q]["momentum_buffer"], rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_muon_matches_torch_in_float32(impl):
    model, opt, _, losses = _muon_run(descend.Muon, impl=impl)
    torch_model, torch_opt, _, _ = _muon_run(torch.optim.Muon)
    assert losses[-1] < losses[0], "the run must train"
    assert opt.param_groups[1]["lr"] == torch_opt.param_groups[1]["lr"] == 0.01 / 8
    _assert_muon_close(model, opt, torch_model, torch_opt, rtol=1e-6)


def test_muon_resumed_from_a_checkpoint_ends_where_torch_does():
    model, opt, scheduler, _ = _muon_run(descend.Muon, steps=RESUME_AT)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = _matrix_net(torch.float32, seed=5)
    resumed.load_state_dict(saved["model"])
    resumed_opt = descend.Muon(_muon_groups(resumed), lr=0.02)
    resumed_opt.load_state_dict(saved["opt"])
    resumed_scheduler = torch.optim.lr_scheduler.StepLR(resumed_opt, step_size=10, gamma=0.5)
    resumed_scheduler.load_state_dict(saved["scheduler"])
    _train(resumed, resumed_opt, resumed_scheduler, STEPS - RESUME_AT, torch.float32)
    torch_model, torch_opt, _, _ = _muon_run(torch.optim.Muon)
    _assert_muon_close(resumed, resumed_opt, torch_model, torch_opt, rtol=1e-6)


def test_a_torch_muon_checkpoint_resumes_in_descend():
    """torch's Muon keeps no step counter: descend's counts on from the buffer's presence."""
    torch_model, torch_opt, scheduler, _ = _muon_run(torch.optim.Muon, steps=RESUME_AT)
    model = _matrix_net(torch.float32, seed=5)
    model.load_state_dict(torch_model.state_dict())
    opt = descend.Muon(_muon_groups(model), lr=0.02)
    opt.load_state_dict(copy.deepcopy(torch_opt.state_dict()))  # (a load keeps the tensors)
    resumed_scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    resumed_scheduler.load_state_dict(scheduler.state_dict())
    _train(model, opt, resumed_scheduler, STEPS - RESUME_AT, torch.float32)
    _train(torch_model, torch_opt, scheduler, STEPS - RESUME_AT, torch.float32)
    _assert_muon_close(model, opt, torch_model, torch_opt, rtol=1e-6)


def test_muon_update_is_orthogonalized():
    """One step from zero momentum moves by lr * sqrt(max(1, A/B)) * NS(0.05 g), whose singular
    values are near 1 (Newton-Schulz's quintic leaves them in about [0.5, 1.5])."""
    p = nn.Parameter(torch.randn(12, 5, dtype=torch.float32))
    p.grad = torch.randn(12, 5)
    before = p.detach().clone()
    descend.Muon([p], lr=1.0, weight_decay=0.0, nesterov=False).step()
    update = (before - p.detach()) / (12 / 5) ** 0.5  # (NS normalizes: the scale of g is moot)
    singular = torch.linalg.svdvals(update)
    assert singular.min() > 0.5 and singular.max() < 1.5, singular


def test_muon_refuses_what_torch_refuses():
    with pytest.raises(ValueError, match=r"Muon only supports 2D parameters.*size: torch.Size"
                                         r"\(\[3\]\).*AdamW"):
        descend.Muon([nn.Parameter(torch.ones(3))])
    with pytest.raises(ValueError, match=r"torch.Size\(\[2, 2, 2\]\)"):
        descend.Muon([nn.Parameter(torch.ones(2, 2))]).add_param_group(
            {"params": [nn.Parameter(torch.ones(2, 2, 2))]})
    with pytest.raises(RuntimeError, match="Muon does not support complex parameters"):
        descend.Muon([nn.Parameter(torch.ones(2, 2, dtype=torch.complex64))])
    for torch_cls in (torch.optim.Muon, descend.Muon):  # torch refuses the same values
        with pytest.raises(ValueError):
            torch_cls([nn.Parameter(torch.ones(3))])


@pytest.mark.parametrize("kwargs, fragments", [
    ({"lr": -1.0}, ["lr", "[0, inf)"]),
    ({"momentum": -0.1}, ["momentum", "[0, inf)"]),
    ({"weight_decay": -0.1}, ["weight_decay", "[0, inf)"]),
    ({"adjust_lr_fn": "rms"}, ["Adjust learning rate function rms is not supported",
                               "match_rms_adamw"]),
    ({"ns_steps": 100}, ["ns_steps=100", "[0, 100)"]),
    ({"ns_steps": 2.5}, ["ns_steps=2.5", "int"]),
    ({"ns_coefficients": (3.4, -4.7)}, ["ns_coefficients", "exactly 3"]),
], ids=str)
def test_muon_bad_hyperparameters_say_what_and_the_range(kwargs, fragments):
    with pytest.raises(ValueError) as error:
        descend.Muon([nn.Parameter(torch.ones(2, 2))], **kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)


# ---- Adafactor --------------------------------------------------------------------------------

def test_adafactor_keeps_torchs_factored_state():
    params = [nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in [(4, 6), (2, 3, 5),
                                                                          (7,), ()]]
    twins = [nn.Parameter(p.detach().clone()) for p in params]
    ours, theirs = descend.Adafactor(params), torch.optim.Adafactor(twins)
    for opt, tensors in ((ours, params), (theirs, twins)):
        for p in tensors:
            p.grad = torch.ones_like(p)
        opt.step()
    for p, q in zip(params, twins, strict=True):
        assert ours.state[p].keys() == theirs.state[q].keys()
        for name, value in theirs.state[q].items():
            assert ours.state[p][name].shape == value.shape, name
            torch.testing.assert_close(ours.state[p][name], value, rtol=1e-12, atol=0)
    assert ours.state[params[1]]["row_var"].shape == (2, 3, 1)
    assert ours.state[params[1]]["col_var"].shape == (2, 1, 5)


@pytest.mark.parametrize("kwargs, fragments", [
    ({"lr": -1.0}, ["lr", "[0, inf)"]),
    ({"beta2_decay": 0.5}, ["beta2_decay", "[-inf, 0]"]),
    ({"d": 0.5}, ["d=0.5", "[1, inf)"]),
    ({"weight_decay": -1.0}, ["weight_decay", "[0, inf)"]),
    ({"eps": (-1.0, 1e-3)}, ["eps[0]", "[0, inf)"]),
    ({"eps": (None, -1e-3)}, ["eps[1]", "[0, inf)"]),
    ({"eps": 1e-3}, ["eps must be a pair"]),
], ids=str)
def test_adafactor_bad_hyperparameters_say_what_and_the_range(kwargs, fragments):
    with pytest.raises(ValueError) as error:
        descend.Adafactor([nn.Parameter(torch.ones(2, 2))], **kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)
    if "eps must be a pair" not in fragments:  # torch refuses them too
        with pytest.raises(ValueError):
            torch.optim.Adafactor([nn.Parameter(torch.ones(2, 2))], **kwargs)


# ---- SOAP against pytorch-optimizer -----------------------------------------------------------

def _soap_run(build, shapes, dtype, steps: int = STEPS, **kwargs):
    g = torch.Generator().manual_seed(4)
    params = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
              for s in shapes]
    opt = build([{"params": params[:1]}, {"params": params[1:], "lr": 1e-3}], **kwargs)
    for step in range(steps):
        for i, p in enumerate(params):  # a non-quadratic field: gradients change every step
            p.grad = torch.tanh(p.detach() - 0.3) + 0.1 * torch.cos(p.detach() * (step + i))
        opt.step()
    return params, opt


def _soap_pair(shapes, dtype, **kwargs):
    import pytorch_optimizer

    ours = _soap_run(descend.SOAP, shapes, dtype, **kwargs)
    theirs = _soap_run(pytorch_optimizer.SOAP, shapes, dtype, **kwargs)
    return ours, theirs


def _assert_soap_close(ours, theirs, rtol: float) -> None:
    (params, opt), (their_params, their_opt) = ours, theirs
    convert = INFO_BY_CLASS[descend.SOAP].reference_state
    for p, q in zip(params, their_params, strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=0)
        for name in ("exp_avg", "exp_avg_sq", "GG", "Q"):
            torch.testing.assert_close(opt.state[p][name],
                                       convert(name, their_opt.state[q][name]).to(p.dtype),
                                       rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("kwargs", [{}, {"precondition_frequency": 3, "precondition_1d": True}],
                         ids=str)
def test_soap_matches_pytorch_optimizer_in_float32(kwargs):
    shapes = [(6, 4), (8,), (5, 6)]
    _assert_soap_close(*_soap_pair(shapes, torch.float32, lr=3e-3, **kwargs), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [
    {"merge_dims": True, "max_precondition_dim": 8},
    {"merge_dims": True, "max_precondition_dim": 8, "data_format": "channels_last"},
    {"max_precondition_dim": 4, "precondition_frequency": 2},
], ids=str)
def test_soap_merges_dims_of_higher_rank_tensors_as_pytorch_optimizer(kwargs):
    """3-D and 4-D tensors whose small dimensions merge (2x3x4x5 -> 6x4x5 for 8). A tensor
    whose dimensions all merge into one makes the package fail to reshape; descend keeps that
    dimension whole (not compared here)."""
    shapes = [(2, 3, 4, 5), (3, 4, 6), (4, 10)]
    _assert_soap_close(*_soap_pair(shapes, torch.float64, lr=3e-3, **kwargs), rtol=1e-9)


def test_soap_takes_no_step_at_the_first_step_and_keeps_flat_preconditioners():
    """As the package: the first step only gathers statistics; GG and Q hold one d x d matrix
    per preconditioned dimension (a 6x4 matrix: 36 + 16 values; a vector without
    precondition_1d: none)."""
    params, opt = _soap_run(descend.SOAP, [(6, 4), (8,)], torch.float64, steps=1)
    g = torch.Generator().manual_seed(4)
    for p, s in zip(params, [(6, 4), (8,)], strict=True):
        assert torch.equal(p.detach(), torch.randn(s, generator=g, dtype=torch.float64))
    assert opt.state[params[0]]["GG"].shape == opt.state[params[0]]["Q"].shape == (52,)
    assert opt.state[params[1]]["GG"].shape == (0,)


@pytest.mark.parametrize("kwargs, fragments", [
    ({"lr": -1.0}, ["lr", "[0, inf)"]),
    ({"betas": (0.9, 1.0)}, ["betas[1]", "[0, 1)"]),
    ({"shampoo_beta": -0.5}, ["shampoo_beta", "[0, 1]"]),
    ({"precondition_frequency": 0}, ["precondition_frequency", "[1, inf)"]),
    ({"precondition_frequency": 2.5}, ["precondition_frequency", "int"]),
    ({"max_precondition_dim": 0}, ["max_precondition_dim", "[1, inf)"]),
    ({"data_format": "nhwc"}, ["data_format='nhwc'", "channels_last"]),
    ({"eps": -1.0}, ["eps", "[0, inf)"]),
], ids=str)
def test_soap_bad_hyperparameters_say_what_and_the_range(kwargs, fragments):
    with pytest.raises(ValueError) as error:
        descend.SOAP([nn.Parameter(torch.ones(2, 2))], **kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)


# ---- engines and complex parameters, all three ------------------------------------------------

MATRIX_CLASSES = [descend.Muon, descend.Adafactor, descend.SOAP]


@pytest.mark.parametrize("impl", ["foreach", "numba", "fast"])
@pytest.mark.parametrize("cls", MATRIX_CLASSES, ids=lambda c: c.__name__)
def test_traced_engines_refuse_a_matrix_rule_clearly_and_change_nothing(cls, impl):
    assert not INFO_BY_CLASS[cls].traceable
    p = nn.Parameter(torch.randn(4, 3))
    p.grad = torch.randn(4, 3)
    before = p.detach().clone()
    opt = cls([p], impl=impl)
    with pytest.raises(ValueError, match=rf"impl='{impl}'.*impl='reference' \(or 'auto'"):
        opt.step()
    assert torch.equal(p.detach(), before)
    assert all(float(s["step"]) == 0 for s in opt.state.values())


@pytest.mark.parametrize("cls", MATRIX_CLASSES, ids=lambda c: c.__name__)
def test_auto_runs_a_matrix_rule_on_the_reference_engine(cls):
    params = [nn.Parameter(torch.randn(4, 3)) for _ in range(2)]
    opts = cls([params[0]], impl="auto"), cls([params[1]], impl="reference")
    params[1].data.copy_(params[0].data)
    for step in range(3):
        for p, opt in zip(params, opts, strict=True):
            p.grad = torch.cos(p.detach() * (step + 1))
            opt.step()
    assert torch.equal(params[0], params[1])


@pytest.mark.parametrize("cls", [descend.Adafactor, descend.SOAP], ids=lambda c: c.__name__)
def test_complex_parameters_are_refused_as_the_reference_does(cls):
    assert not INFO_BY_CLASS[cls].supports_complex
    with pytest.raises(RuntimeError, match=f"{cls.__name__} does not support complex"):
        cls([nn.Parameter(torch.ones(3, dtype=torch.complex128))])
