"""The triton backend (issue 12) equals the reference backend for every configuration of the
table. Without a GPU it runs in Triton's interpreter (TRITON_INTERPRET=1) on CPU tensors, the
same kernels a GPU compiles; ``scripts/gpu-check.sh`` runs this file on CUDA where one is lent.

Tolerances: float32 rtol 1e-5 and float64 1e-12 of each tensor's largest value (the kernel's
division and square root are correctly rounded, as torch's are on the CPU, but its operations
may fuse differently); bfloat16 and float16 equal to the reference, which widens to float32,
runs the rule there and rounds once (the contract of ``descend.precision``), in all but under 2%
of the elements, as test_low_precision allows the other backends: torch's vectorized CPU square
root is not correctly rounded, the kernel's is, so a float32 result an ulp apart now and then
rounds to the other side, and a flipped float16 second moment near zero moves g/sqrt(v) by up
to 14 spacings (RMSprop with momentum). With and without stochastic rounding (whose random bits
are the reference's).
"""

from __future__ import annotations

import pytest
import torch
from engine_helpers import builder, make_params, run_pair, set_grads
from optimizer_info import CONFIGS, REPRESENTATIVES, configs
from test_low_precision import spacings_apart

import descend
from descend.engines import triton as triton_backend
from descend.engines import triton_source

pytest.importorskip("triton", reason="the triton backend needs Triton: pip install 'descend[gpu]'")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TRACEABLE = [c for c in CONFIGS if getattr(c.info, "traceable", True)]
REPRESENTATIVE = [c for c in REPRESENTATIVES if getattr(c.info, "traceable", True)]
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    """On a machine without a GPU, Triton's interpreter runs the kernels on CPU tensors."""
    if DEVICE == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def params_on_device(dtype=torch.float32, seed=0):
    return [p.detach().to(DEVICE).requires_grad_() for p in make_params(dtype, seed)]


def assert_same_run(tested, ref):
    tested_params = [p for g in tested.param_groups for p in g["params"]]
    ref_params = [p for g in ref.param_groups for p in g["params"]]
    for i, (a, e) in enumerate(zip(tested_params, ref_params, strict=True)):
        pairs = [(a.detach(), e.detach(), "p")]
        pairs += [(tested.state[a][n], v, n) for n, v in ref.state[e].items()]
        for x, y, what in pairs:
            if x.dtype in RTOL:
                scale = float(y.abs().max()) if y.numel() else 0.0
                torch.testing.assert_close(x, y, rtol=RTOL[x.dtype], atol=RTOL[x.dtype] * scale,
                                           msg=lambda m, i=i, w=what: f"param {i} {w}: {m}")
            elif x.dtype in (torch.bfloat16, torch.float16):
                apart = spacings_apart(x, y, y)
                assert apart.max() <= 32 and (apart > 0).float().mean() < 0.02, (
                    f"param {i} {what}: {int((apart > 0).sum())} of {x.numel()} elements differ, "
                    f"by up to {float(apart.max())} spacings")
            else:
                assert torch.equal(x, y), f"param {i} {what} differs"


@configs(TRACEABLE)
def test_every_configuration_matches_the_reference_in_float32(config):
    tested, ref = run_pair("triton", builder(config, grouped=True), params_on_device(), steps=3)
    assert_same_run(tested, ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16],
                         ids=["fp64", "bf16", "fp16"])
@configs(REPRESENTATIVE)
def test_other_dtypes_match_the_reference(config, dtype):
    tested, ref = run_pair("triton", builder(config, grouped=True), params_on_device(dtype),
                           steps=3)
    assert_same_run(tested, ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@configs(REPRESENTATIVE)
def test_stochastic_rounding_gives_the_reference_bits(config, dtype):
    def build(ps, impl):
        return config.build(ps, impl=impl, stochastic_rounding=True)

    torch.manual_seed(3)  # both draw the same rounding seed
    tested = build(params_on_device(dtype), "triton")
    torch.manual_seed(3)
    ref = build([p.detach().clone().requires_grad_() for g in tested.param_groups
                 for p in g["params"]], "reference")
    for step in range(3):
        set_grads(step, [p for g in tested.param_groups for p in g["params"]],
                  [p for g in ref.param_groups for p in g["params"]])
        tested.step()
        ref.step()
    assert_same_run(tested, ref)


def test_fp32_state_of_bf16_parameters_and_bf16_state_of_fp32_ones():
    for dtype, state_dtype in ((torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16)):
        def build(ps, impl, state_dtype=state_dtype):
            return descend.Adam(ps, lr=0.01, impl=impl, state_dtype=state_dtype)
        tested, ref = run_pair("triton", build, params_on_device(dtype), steps=3)
        assert {t.dtype for s in tested.state.values() for n, t in s.items() if n != "step"} \
            == {state_dtype}
        assert_same_run(tested, ref)


def test_one_launch_per_group_and_no_new_kernel_for_a_new_lr_or_group(monkeypatch):
    launches = []
    launch = triton_backend._launch

    def counted(kernel, ops, *rest):
        launches.append(len(ops))
        launch(kernel, ops, *rest)

    monkeypatch.setattr(triton_backend, "_launch", counted)
    params = params_on_device()
    opt = descend.Adam([{"params": params[:2]}, {"params": params[2:3], "lr": 0.5e-3}],
                       lr=1e-3, impl="triton")
    set_grads(0, params)
    opt.step()
    assert launches == [2, 1]  # one launch per group, over all of its tensors
    sources = []
    monkeypatch.setattr(triton_source, "kernel_source",
                        lambda *a: sources.append(a) or pytest.fail("a new kernel was printed"))
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.add_param_group({"params": params[3:], "lr": 2e-3})
    for step in range(1, 4):
        set_grads(step, params)
        opt.step()
        scheduler.step()
    assert not sources and launches[-3:] == [2, 1, 1]


def test_per_tensor_scalar_state_moves_once_per_tensor_and_step():
    """NAdam's mu_product on the host, zero-size tensors included, as the reference has it."""
    params = [*params_on_device(), torch.zeros(0, device=DEVICE, requires_grad=True)]
    tested, ref = run_pair("triton", lambda ps, impl: descend.NAdam(ps, lr=0.01, impl=impl),
                           params, steps=4)
    assert_same_run(tested, ref)  # mu_product of every tensor compared
    assert tested.state[params[-1]]["mu_product"] < 1


def test_what_it_cannot_take_gets_a_clear_error_and_auto_never_picks_it_on_the_cpu(monkeypatch):
    strided = torch.randn(6, 4).t().requires_grad_()
    strided.grad = torch.ones_like(strided)
    with pytest.raises(ValueError, match="contiguous"):
        descend.Adam([strided], impl="triton").step()
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    opt = descend.Adam([p])  # auto: numba (or the reference) on the CPU, never the interpreter
    opt.step()
    assert triton_backend not in descend.engines.partition(
        "auto", [p], [p.grad], [opt.state[p]], opt.state_names(opt.param_groups[0]))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if DEVICE == "cpu":
        with pytest.raises(ValueError, match="CUDA devices .*TRITON_INTERPRET=1"):
            descend.Adam([p], impl="triton").step()
    monkeypatch.setattr(triton_backend, "available", lambda: "Triton is not installed: pip "
                        "install 'descend[gpu]'")
    with pytest.raises(ValueError, match=r"pip install 'descend\[gpu\]'"):
        descend.Adam([p], impl="triton").step()
