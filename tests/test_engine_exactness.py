"""The fast engine equals the reference engine (the rule as written) for every optimizer and
configuration of the table, and in the situations real training produces (issue 3, goal 4).

Tolerance: fp32 rtol 1e-6, fp64 rtol 1e-12, relative to each tensor's largest value. The engines
differ by an ulp of the *update* at most: torch's vectorized sqrt is not correctly rounded
(AVX-512), the kernel's is, so an element near zero may differ by more than rtol of itself.
"""

from __future__ import annotations

import io

import pytest
import torch
from engine_helpers import STEPS, builder, groups, make_params, run_pair, set_grads, twins
from optimizer_info import (
    CONFIGS,
    TRACEABLE_CONFIGS,
    TRACEABLE_REPRESENTATIVES,
    configs,
    training,
)

import descend
from descend import engines
from descend.engines import numba as numba_backend

pytest.importorskip("numba", reason="the fast engine needs numba: pip install 'descend[fast]'")

RTOL = {torch.float32: 1e-6, torch.float64: 1e-12, torch.complex64: 1e-6,
        torch.complex128: 1e-12, torch.bfloat16: 0.0}








def assert_agree(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    if actual.is_complex():
        actual, expected = torch.view_as_real(actual), torch.view_as_real(expected)
    rtol = RTOL[expected.dtype]
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, msg=lambda m:
                               f"{what}: {m}")


def assert_same_run(fast_opt: torch.optim.Optimizer, ref_opt: torch.optim.Optimizer) -> None:
    fast_params = [p for g in fast_opt.param_groups for p in g["params"]]
    ref_params = [p for g in ref_opt.param_groups for p in g["params"]]
    for i, (a, e) in enumerate(zip(fast_params, ref_params, strict=True)):
        assert_agree(a.detach(), e.detach(), f"param {i}")
        assert fast_opt.state[a].keys() == ref_opt.state[e].keys()
        for name, value in ref_opt.state[e].items():
            assert_agree(fast_opt.state[a][name], value, f"param {i} state {name}")




@pytest.fixture(params=["serial", "parallel"])
def kernel_kind(request, monkeypatch):
    """Small tensors take the serial kernel; the parallel one (same body) is forced here."""
    if request.param == "parallel":
        monkeypatch.setattr(numba_backend, "PARALLEL_MIN_ELEMENTS", 0)
    return request.param


@configs(TRACEABLE_CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_every_configuration_matches_reference(config, dtype):
    check_configuration(config, dtype)


@configs(TRACEABLE_REPRESENTATIVES)
def test_parallel_kernel_matches_reference(config, kernel_kind):
    check_configuration(config, torch.float32)


def check_configuration(config, dtype):
    p_fast, p_ref = make_params(dtype), make_params(dtype)
    fast_opt = config.build(groups(config, p_fast), impl="fast")
    ref_opt = config.build(groups(config, p_ref), impl="reference")
    for step in range(STEPS):
        set_grads(step, p_fast, p_ref)
        fast_opt.step()
        ref_opt.step()
    assert_same_run(fast_opt, ref_opt)




# SGD with momentum branches on the step count (b_1 = g): parameters at different step counts
# in one call need two kernels; Adam's bias corrections are per parameter.
EDGE_CONFIGS = [*TRACEABLE_REPRESENTATIVES,
                next(c for c in CONFIGS if c.id == "SGD-lr=0.05-momentum=0.9")]


@configs(EDGE_CONFIGS)
def test_none_grads_zero_size_and_frozen_then_unfrozen(config):
    params = [*make_params(), torch.zeros(0, 3, requires_grad=True)]
    frozen_until = {1: 3}  # parameter 1 gets its first gradient at step 3

    def skip(i, step):
        return step < frozen_until.get(i, 0) or (i == 0 and step == 2)  # a None grad mid-run

    fast_opt, ref_opt = run_pair("fast", builder(config), params,
                                 steps=6, skip=skip)
    assert_same_run(fast_opt, ref_opt)
    assert fast_opt.state[params[1]]["step"] == 3 and fast_opt.state[params[0]]["step"] == 5


@configs(TRACEABLE_REPRESENTATIVES)
def test_non_contiguous_parameters(config):
    base = torch.randn(8, 12, dtype=torch.float64)
    params = [torch.randn(12, 7).t().requires_grad_(),           # dense, transposed
              base[:, ::3].float().requires_grad_(),              # contiguous copy (control)
              torch.randn(5, 6, 4).permute(2, 0, 1).requires_grad_()]
    strided_base = torch.randn(10, 9)
    strided = strided_base[::2, 1::2]  # a strided view, not dense: goes through one copy
    params.append(strided.requires_grad_())
    fast_opt, ref_opt = run_pair("fast", builder(config), params)
    assert_same_run(fast_opt, ref_opt)
    assert not params[0].is_contiguous() and not params[3].is_contiguous()


@configs(TRACEABLE_REPRESENTATIVES)
def test_mixed_dtypes_in_one_optimizer(config):
    dtypes = [torch.float32, torch.float64, torch.bfloat16, torch.complex64]
    params = [p.to(dt).detach().requires_grad_()
              for p, dt in zip(make_params(), dtypes, strict=True)]
    fast_opt, ref_opt = run_pair("fast",
        lambda ps, impl: config.build(ps, impl="reference" if impl == "reference" else "auto"),
        params)
    assert_same_run(fast_opt, ref_opt)  # bfloat16 ran on the reference engine: bit-equal


@configs(TRACEABLE_REPRESENTATIVES)
def test_complex_parameters_match_their_real_view(config):
    params = [torch.randn(7, 3, dtype=torch.complex128, requires_grad=True),
              torch.randn(20_000, dtype=torch.complex64, requires_grad=True)]
    fast_opt, ref_opt = run_pair("fast", builder(config), params)
    assert_same_run(fast_opt, ref_opt)


@configs(TRACEABLE_REPRESENTATIVES)
def test_skip_nonfinite(config):
    def poison(opt, step):
        if step == 2:
            opt.param_groups[0]["params"][0].grad[0, 0] = float("nan")

    with pytest.warns(UserWarning, match="step skipped"):
        fast_opt, ref_opt = run_pair("fast",
            lambda ps, impl: config.build(ps, impl=impl, skip_nonfinite=True), make_params(),
            each_step=poison)
    assert fast_opt.skipped_steps == ref_opt.skipped_steps == 1
    assert_same_run(fast_opt, ref_opt)


@configs(TRACEABLE_REPRESENTATIVES)
def test_tensor_lr_and_scheduler_need_no_new_kernel(config):
    lr = float(config.effective_kwargs().get("lr", 1e-3))

    def build(ps, impl):
        opt = training(config.cls(ps, **{**config.kwargs, "lr": torch.tensor(lr)}, impl=impl))
        opt.scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.7)
        return opt

    def schedule(opt, step):
        if step > 0:
            opt.scheduler.step()  # the learning rate changes at every step
        if step == 3:  # (Prodigy: every group at the same lr)
            same = config.info.second_lr_factor == 1.0
            opt.add_param_group({"params": [extra[opt.defaults["impl"]]], "lr":
                                 opt.param_groups[0]["lr"].clone() if same
                                 else torch.tensor(lr * 0.3)})

    extra = {"fast": torch.randn(9, requires_grad=True)}
    extra["reference"] = extra["fast"].detach().clone().requires_grad_()
    fast_opt, ref_opt = run_pair("fast", build, make_params(), steps=2)
    kernels = len(numba_backend._kernels)
    for step in range(2, 7):
        for opt in (fast_opt, ref_opt):
            schedule(opt, step)
        set_grads(step, [*fast_opt.param_groups[0]["params"], extra["fast"]],
                  [*ref_opt.param_groups[0]["params"], extra["reference"]])
        fast_opt.step()
        ref_opt.step()
    assert_same_run(fast_opt, ref_opt)
    assert len(numba_backend._kernels) == kernels, "a new learning rate or param group recompiled"


@pytest.mark.parametrize("first", ["fast", "reference"])
@configs(TRACEABLE_REPRESENTATIVES)
def test_checkpoint_from_one_engine_resumes_on_the_other(config, first):
    second = {"fast": "reference", "reference": "fast"}[first]
    params = make_params()
    straight = config.build(twins(params), impl=first)
    resumed_params = twins(params)
    before = config.build(resumed_params, impl=first)
    for step in range(3):
        set_grads(step, straight.param_groups[0]["params"], resumed_params)
        straight.step()
        before.step()
    buffer = io.BytesIO()
    torch.save({"params": resumed_params, "opt": before.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    loaded = [p.detach().clone().requires_grad_() for p in checkpoint["params"]]
    after = config.build(loaded, impl=second)
    after.load_state_dict(checkpoint["opt"])
    for step in range(3, 6):
        set_grads(step, straight.param_groups[0]["params"], loaded)
        straight.step()
        after.step()
    assert_same_run(after, straight)


def test_fast_refuses_what_it_cannot_run_and_auto_falls_back():
    p = torch.randn(10).to(torch.float8_e4m3fn).requires_grad_()
    p.grad = torch.randn(10).to(torch.float8_e4m3fn)
    with pytest.raises(ValueError, match=r"impl='fast'.*float8_e4m3fn.*'auto'"):
        descend.Adam([p], impl="fast").step()
    q = p.detach().clone().requires_grad_()
    q.grad = p.grad.clone()
    descend.Adam([p], impl="auto").step()
    descend.Adam([q], impl="reference").step()
    assert torch.equal(p, q)


class TanhSGD(descend.SGD):
    """A rule outside the elementwise vocabulary (torch.tanh): only the reference runs it."""

    @staticmethod
    def rule(p, g, *, step, lr, **_):
        return p - lr * torch.tanh(g), {}

    def rule_for(self, group):
        return TanhSGD.rule


def test_untraceable_rule_falls_back_under_auto_and_is_refused_under_fast():
    p = torch.randn(5, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    p.grad = torch.randn(5)
    q.grad = p.grad.clone()
    TanhSGD([p], lr=0.1, impl="auto").step()
    assert torch.equal(p, q - 0.1 * torch.tanh(q.grad))
    with pytest.raises(ValueError, match="impl='fast'.*tanh.*impl='reference'"):
        TanhSGD([q], lr=0.1, impl="fast").step()


def test_untraceable_rule_keeps_falling_back_at_later_steps():
    """Not only the first step: later ones (where the engine has a table for the batch) must
    fall back as well."""
    p = torch.randn(5, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    auto, ref = TanhSGD([p], lr=0.1, impl="auto"), TanhSGD([q], lr=0.1, impl="reference")
    for step in range(3):
        p.grad = torch.randn(5, generator=torch.Generator().manual_seed(step))
        q.grad = p.grad.clone()
        auto.step()
        ref.step()
    assert torch.equal(p, q)


def test_without_numba_auto_is_the_reference_and_fast_says_how_to_install(monkeypatch):
    monkeypatch.setattr(engines, "fast_available", lambda: False)
    engines.numba_backend.cache_clear()
    try:
        p, q = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
        p.grad = q.grad = torch.ones(4)
        assert engines.backend_for("auto", p, p.grad, {}, ()) is engines.reference
        before = q.detach().clone()
        opt = descend.Adam([q], impl="fast")
        with pytest.raises(ValueError, match=r"impl='fast'.*pip install 'descend\[fast\]'"):
            opt.step()
        assert torch.equal(q, before) and all(s["step"] == 0 for s in opt.state.values())
    finally:
        engines.numba_backend.cache_clear()


@configs(TRACEABLE_REPRESENTATIVES)
def test_tensors_replaced_between_steps_are_picked_up(config):
    """The fast engine remembers addresses between steps: a parameter given new memory
    (``p.data = ...``), state replaced by ``load_state_dict`` and gradients kept in place
    (``zero_grad(set_to_none=False)``) must all be seen."""
    p_fast, p_ref = make_params(), make_params()
    fast_opt, ref_opt = config.build(p_fast, impl="fast"), config.build(p_ref, impl="reference")
    for step in range(8):
        if step < 6:
            set_grads(step, p_fast, p_ref)
        if step == 3:
            for params in (p_fast, p_ref):
                params[0].data = params[0].data.clone() * 0.5
        if step == 5:
            for opt in (fast_opt, ref_opt):
                opt.load_state_dict(io_roundtrip(opt.state_dict()))
        if step >= 6:  # the same gradient tensors, overwritten in place
            for params in (p_fast, p_ref):
                for p in params:
                    p.grad.mul_(0.5)
        fast_opt.step()
        ref_opt.step()
    assert_same_run(fast_opt, ref_opt)


def io_roundtrip(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@configs(TRACEABLE_REPRESENTATIVES)
def test_state_replaced_by_hand_is_picked_up_while_the_old_tensors_live(config):
    """Steps after the first reuse what the last step touched, checked by identity: a buffer, a
    step counter or a whole state dict replaced by hand must be the one updated, even while the
    replaced tensors are still referenced (so their memory stays where it was)."""
    kept = {"fast": [], "reference": []}

    def replace(opt, step):
        impl = opt.defaults["impl"]
        p = opt.param_groups[0]["params"][step % 4]
        state = opt.state[p]
        if step == 2:  # every buffer, one at a time
            for name in list(state):
                kept[impl].append((state[name], state[name].clone()))
                state[name] = state[name].clone()
        if step == 3:  # the step counter
            kept[impl].append((state["step"], state["step"].clone()))
            state["step"] = state["step"].clone()
        if step == 4:  # the whole dict
            kept[impl].extend((v, v.clone()) for v in state.values())
            opt.state[p] = {name: v.clone() for name, v in state.items()}

    fast_opt, ref_opt = run_pair("fast", builder(config), make_params(),
                                 steps=7, each_step=replace)
    assert_same_run(fast_opt, ref_opt)
    for old, at_replacement in kept["fast"]:
        assert torch.equal(old, at_replacement), "a replaced tensor was still updated"


@configs(TRACEABLE_REPRESENTATIVES)
def test_step_counters_set_in_place_are_read_anew(config):
    """A planned step advances the counters from the count the last one left, checked in the
    same call: counters overwritten in place (same tensors) must be read again, whether all
    alike (back to 0: step-dependent rules such as the first momentum step take their first
    form again) or at different counts (the general path)."""
    def set_counters(opt, step):
        params = opt.param_groups[0]["params"]
        if step == 3:
            for p in params:
                opt.state[p]["step"].fill_(0.0)
        if step == 5:
            opt.state[params[1]]["step"].fill_(7.0)

    fast_opt, ref_opt = run_pair("fast", builder(config), make_params(),
                                 steps=8, each_step=set_counters)
    assert_same_run(fast_opt, ref_opt)


def test_gradient_made_strided_between_steps_is_read_as_strided():
    """A gradient replaced by a transposed (strided) one after steady steps takes the general
    path, which reads it through its strides."""
    def strided(opt, step):
        if step == 3:
            p = opt.param_groups[0]["params"][0]
            p.grad = p.grad.t().contiguous().t()

    fast_opt, ref_opt = run_pair("fast", lambda ps, impl: descend.Adam(ps, impl=impl),
                                 make_params(), steps=4, each_step=strided)
    assert not fast_opt.param_groups[0]["params"][0].grad.is_contiguous()
    assert_same_run(fast_opt, ref_opt)


# (Muon takes matrices only: test_matrix_optimizers checks its refusal on its own parameters)
UNTRACEABLE_CONFIGS = [c for c in CONFIGS if not c.info.traceable and c.info.takes is None]


@configs(UNTRACEABLE_CONFIGS)
def test_a_rule_with_a_reduction_is_refused_by_fast_and_auto_runs_the_reference(config):
    """The rows the table marks traceable=False (Lamb's and LARS's per-tensor norms, the
    matrix methods' products) are not
    run by the tests above: here impl='fast' refuses them before anything changed, saying
    why and what to use, and impl='auto' is the reference backend, bit for bit."""
    params = make_params()
    before = [p.detach().clone() for p in params]
    refused = config.build(groups(config, params), impl="fast")
    set_grads(0, params)
    with pytest.raises(ValueError, match=r"impl='fast'.*(norm|ndim|tracing).*impl='reference'"):
        refused.step()
    assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))
    assert all(float(s["step"]) == 0 for s in refused.state.values())
    auto_opt, ref_opt = run_pair("auto", builder(config, grouped=True), make_params())
    for a, e in zip(auto_opt.param_groups[0]["params"] + auto_opt.param_groups[1]["params"],
                    ref_opt.param_groups[0]["params"] + ref_opt.param_groups[1]["params"],
                    strict=True):
        assert torch.equal(a, e)
        assert all(torch.equal(auto_opt.state[a][n], v) for n, v in ref_opt.state[e].items())
