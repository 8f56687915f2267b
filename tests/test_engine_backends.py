"""How ``impl`` chooses a backend for each tensor, and what it says when it cannot (issue 8)."""

from __future__ import annotations

import logging

import pytest
import torch
from optimizer_info import REPRESENTATIVES, configs

import descend
from descend import engines
from descend.engines import foreach, reference

numba = pytest.importorskip("descend.engines.numba", reason="needs descend[fast]")


def with_grad(p: torch.Tensor) -> torch.Tensor:
    p.grad = torch.ones_like(p)
    return p


@pytest.mark.parametrize("impl", ["warp", "cuda", None, "FAST"])
def test_an_unknown_impl_names_every_choice(impl):
    with pytest.raises(ValueError) as error:
        descend.Adam([torch.zeros(2, requires_grad=True)], impl=impl)
    for choice in engines.IMPLS:
        assert repr(choice) in str(error.value)


def test_auto_routes_by_device_and_dtype_and_logs_its_choice(caplog):
    cpu32, cpu64 = torch.zeros(3), torch.zeros(3, dtype=torch.float64)
    complex64 = torch.zeros(3, dtype=torch.complex64)
    bf16, meta = torch.zeros(3, dtype=torch.bfloat16), torch.zeros(3, device="meta")
    route = {name: engines.backend_for("auto", t, t, {}, ()) for name, t in
             [("cpu32", cpu32), ("cpu64", cpu64), ("complex64", complex64), ("bf16", bf16),
              ("meta", meta)]}
    assert route == {"cpu32": numba, "cpu64": numba, "complex64": numba, "bf16": reference,
                     "meta": foreach}
    params = [with_grad(torch.zeros(3, requires_grad=True)),
              with_grad(torch.zeros(3, dtype=torch.bfloat16, requires_grad=True))]
    with caplog.at_level(logging.DEBUG, logger="descend.engines"):
        descend.Adam(params).step()
    assert "1 tensor(s) on numba" in caplog.text and "1 tensor(s) on reference" in caplog.text


@pytest.mark.parametrize("impl", ["numba", "fast"])
def test_numba_and_fast_refuse_other_devices_saying_why(impl):
    """No fused GPU backend exists yet: a non-CPU tensor (meta stands in for CUDA here) is
    refused with the reason and the choices, before any state or step count changes."""
    p = with_grad(torch.zeros(4, device="meta", requires_grad=True))
    opt = descend.Adam([p], impl=impl)
    with pytest.raises(ValueError) as error:
        opt.step()
    message = str(error.value)
    assert f"impl={impl!r}" in message and "meta" in message and "CPU only" in message
    assert "'foreach'" in message and "'auto'" in message
    assert all(float(s["step"]) == 0 for s in opt.state.values())


def test_foreach_runs_on_another_device_where_numba_cannot():
    p = with_grad(torch.zeros(4, device="meta", requires_grad=True))
    descend.Adam([p], impl="foreach").step()
    descend.Adam([p], impl="auto").step()


@pytest.mark.parametrize("impl", ["numba", "fast"])
def test_a_state_buffer_of_the_wrong_shape_is_an_error_not_a_fallback(impl):
    p = with_grad(torch.randn(3, 4).t().requires_grad_())  # strided: the per-tensor path
    opt = descend.Adam([p], impl=impl)
    opt.step()
    opt.state[p]["exp_avg"] = torch.zeros(12)
    with pytest.raises(ValueError, match="exp_avg of shape .12,.*must match"):
        opt.step()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@configs(REPRESENTATIVES)
def test_foreach_takes_low_precision_bit_for_bit_as_the_reference(config, dtype):
    """Where numba does not run (bfloat16, float16), impl='foreach' is a choice: each op rounds
    as the reference's eager op does."""
    torch.manual_seed(0)
    a = [torch.randn(s, dtype=dtype, requires_grad=True) for s in [(5, 3), (7,)]]
    b = [p.detach().clone().requires_grad_() for p in a]
    opts = config.build(a, impl="foreach"), config.build(b, impl="reference")
    for step in range(4):
        for params, opt in zip((a, b), opts, strict=True):
            for i, p in enumerate(params):
                gen = torch.Generator().manual_seed(10 * step + i)
                p.grad = torch.randn(p.shape, generator=gen).to(dtype)
            opt.step()
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)
        for name, value in opts[1].state[q].items():
            assert torch.equal(opts[0].state[p][name], value), name


def test_one_batch_per_group_and_only_for_fused_groups():
    fused = [with_grad(torch.randn(5, requires_grad=True)) for _ in range(3)]
    other = [with_grad(torch.randn(5, dtype=torch.bfloat16, requires_grad=True))]
    opt = descend.Adam([{"params": fused}, {"params": other}])
    for _ in range(3):
        opt.step()
    assert list(opt._batches) == [id(opt.param_groups[0])]
    fused[1].grad = None  # another set of parameters with a gradient: the batch is rebuilt
    opt.step()
    assert opt._batches[id(opt.param_groups[0])].params == [fused[0], fused[2]]


def test_a_refusal_in_one_group_leaves_every_group_unchanged():
    """Backends are chosen for every group before any group is updated."""
    first = with_grad(torch.randn(4, requires_grad=True))
    on_meta = with_grad(torch.zeros(4, device="meta", requires_grad=True))
    opt = descend.SGD([{"params": [first]}, {"params": [on_meta], "impl": "numba"}], lr=0.1)
    before = first.detach().clone()
    with pytest.raises(ValueError, match="impl='numba'.*meta"):
        opt.step()
    assert torch.equal(first, before)


def heavy_ball(p, g, *, velocity, step, lr, momentum):
    """A rule written outside descend: v <- mu*v + g; theta <- theta - lr*v."""
    v = momentum * velocity + g
    return p - lr * v, {"velocity": v}


class HeavyBall(descend.Optimizer):
    """One declaration: the rule, the state schema, the ranges and the signature."""

    rule = staticmethod(heavy_ball)
    state_schema = (descend.state.Buffer("velocity"),)
    ranges = {"lr": descend.validation.NONNEGATIVE, "momentum": descend.validation.UNIT}

    def __init__(self, params, lr=0.1, momentum=0.9, *, impl="auto"):
        super().__init__(params, dict(lr=lr, momentum=momentum), impl=impl)


@pytest.mark.parametrize("impl", ["auto", "numba", "foreach", "reference"])
def test_a_new_elementwise_optimizer_is_one_declaration_on_every_backend(impl):
    """Its rule runs on every backend with no other code: equal to the same heavy ball by hand
    (torch.optim.SGD with momentum, dampening 0, is that algorithm)."""
    torch.manual_seed(0)
    mine = [torch.randn(s, requires_grad=True) for s in [(6, 5), (5,)]]
    theirs = [p.detach().clone().requires_grad_() for p in mine]
    opts = HeavyBall(mine, lr=0.05, impl=impl), torch.optim.SGD(theirs, lr=0.05, momentum=0.9)
    for step in range(5):
        for params, opt in zip((mine, theirs), opts, strict=True):
            for i, p in enumerate(params):
                p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(step + i))
            opt.step()
    for p, q in zip(mine, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
