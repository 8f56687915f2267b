"""How ``impl`` chooses a backend for each tensor, and what it says when it cannot (issue 8)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from optimizer_info import TRACEABLE_REPRESENTATIVES, assert_unchanged, configs, snapshot

import descend
from descend import engines
from descend.engines import foreach, native, reference

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
    bf16, fp16 = torch.zeros(3, dtype=torch.bfloat16), torch.zeros(3, dtype=torch.float16)
    fp8, meta = torch.zeros(3, dtype=torch.float8_e4m3fn), torch.zeros(3, device="meta")
    route = {name: engines.backend_for("auto", t, t, {}, ()) for name, t in
             [("cpu32", cpu32), ("cpu64", cpu64), ("complex64", complex64), ("bf16", bf16),
              ("fp16", fp16), ("fp8", fp8), ("meta", meta)]}
    assert route == {"cpu32": numba, "cpu64": numba, "complex64": numba, "bf16": numba,
                     "fp16": numba, "fp8": reference, "meta": foreach}
    params = [with_grad(torch.zeros(3, requires_grad=True)),
              with_grad(torch.zeros(3, dtype=torch.float8_e4m3fn, requires_grad=True))]
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
def test_a_state_buffer_of_the_wrong_shape_is_refused_before_anything_changes(impl):
    q = with_grad(torch.randn(5, requires_grad=True))
    p = with_grad(torch.randn(3, 4).t().requires_grad_())  # strided: the per-tensor path
    opt = descend.Adam([q, p], impl=impl)
    opt.step()
    opt.state[p]["exp_avg"] = torch.zeros(12)
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"impl=.*exp_avg is a \(12,\) torch.float32"):
        opt.step()
    assert_unchanged(opt, before)


def test_a_gradient_of_another_dtype_is_widened_on_every_backend():
    """A float32 gradient of a float64 parameter (grad_dtype): the math runs in float64."""
    runs = []
    for impl in ("numba", "foreach", "reference"):
        p = torch.linspace(-1, 1, 5, dtype=torch.float64, requires_grad=True)
        p.grad_dtype = torch.float32
        p.grad = torch.linspace(0.3, -0.7, 5)
        opt = descend.Adam([p], impl=impl)
        opt.step()
        assert opt.state[p]["exp_avg"].dtype == torch.float64
        runs.append(p)
    for p in runs[1:]:
        torch.testing.assert_close(p, runs[0], rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@configs(TRACEABLE_REPRESENTATIVES)
def test_foreach_takes_low_precision_bit_for_bit_as_the_reference(config, dtype):
    """bfloat16 and float16 on impl='foreach' (its choice on GPUs): widened to float32, each op
    as the reference's eager op, rounded back once."""
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
    other = [with_grad(torch.randn(5, requires_grad=True))]
    opt = descend.Adam([{"params": fused}, {"params": other, "impl": "reference"}])
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


# ---- what the one remembered batch must notice (review of the engine rework) -----------------

@pytest.mark.parametrize("checks", ["compiled", "python"])
def test_state_memory_moved_under_the_same_tensors_is_announced_and_seen(checks, monkeypatch):
    """share_memory_() (Adagrad.share_memory, for Hogwild!) and ``.data =`` keep the state
    tensors but move their memory: after Adagrad.share_memory (which announces it) and after
    ``state_moved()``, the next steps update the new memory, as torch does."""
    if checks == "python":
        monkeypatch.setattr(native, "module", None)
    elif native.module is None:
        pytest.skip("compiled checks not built here (descend build-native)")
    torch.manual_seed(0)
    mine = [torch.randn(8, requires_grad=True), torch.randn(3, 2, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in mine]
    opts = descend.Adagrad(mine, lr=0.1), torch.optim.Adagrad(theirs, lr=0.1)
    for step in range(6):
        for params, opt in zip((mine, theirs), opts, strict=True):
            for i, p in enumerate(params):
                p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(step + i))
            if step == 2:
                opt.share_memory()
            if step == 4:
                state = opt.state[params[1]]
                state["sum"].data = state["sum"].data.clone()
                state["step"].data = state["step"].data.clone()
                if isinstance(opt, descend.Optimizer):
                    opt.state_moved()
            opt.step()
    for p, q in zip(mine, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(opts[0].state[p]["sum"], opts[1].state[q]["sum"])


def optimizer_of(rule):
    """A descend optimizer class running ``rule`` with one hyperparameter, lr."""
    class RuleOptimizer(descend.Optimizer):
        def __init__(self, params, lr=0.1, *, impl="auto"):
            super().__init__(params, dict(lr=lr), impl=impl)

    RuleOptimizer.rule = staticmethod(rule)
    return RuleOptimizer


def tanh_rule(p, g, *, step, lr):
    """Outside the traced vocabulary (torch.tanh)."""
    return p - lr * torch.tanh(g), {}


TanhSGD = optimizer_of(tanh_rule)


@pytest.mark.parametrize("spoil", ["untraceable rule", "bad hyperparameter", "unknown impl"])
def test_a_refused_group_refuses_the_whole_step(spoil):
    """Nothing is updated and no counter advances when any group's step is refused."""
    a = with_grad(torch.ones(3, requires_grad=True))
    b = with_grad(torch.ones(3, requires_grad=True))
    opt = TanhSGD([{"params": [a], "impl": "reference"}, {"params": [b], "impl": "numba"}])
    if spoil == "bad hyperparameter":
        opt.param_groups[1]["impl"] = "reference"
        opt.param_groups[1]["lr"] = torch.tensor(0.1, requires_grad=True)
    if spoil == "unknown impl":
        opt.param_groups[1]["impl"] = "refrence"
    with pytest.raises(ValueError) as error:
        opt.step()
    assert {"untraceable rule": "tanh", "bad hyperparameter": "requires grad",
            "unknown impl": "unknown impl"}[spoil] in str(error.value)
    assert torch.equal(a, torch.ones(3)) and torch.equal(b, torch.ones(3))
    assert all(float(s["step"]) == 0 for s in opt.state.values())


def returns_an_input_as_another_output(p, g, *, a, b, step, lr):
    """The new a is the old b, the new b is the old p, the new p is p - lr*g."""
    return p - lr * g, {"a": b, "b": p}


class Shift(descend.Optimizer):
    rule = staticmethod(returns_an_input_as_another_output)
    state_schema = (descend.state.Buffer("a"), descend.state.Buffer("b", initial=1.0))

    def __init__(self, params, lr=0.5, *, impl="auto"):
        super().__init__(params, dict(lr=lr), impl=impl)


def test_a_rule_returning_its_inputs_as_other_outputs_agrees_on_every_backend():
    results = {}
    for impl in ("reference", "foreach", "numba"):
        p = with_grad(torch.full((4,), 3.0, requires_grad=True))
        opt = Shift([p], impl=impl)
        for _ in range(3):
            opt.step()
        results[impl] = (p.detach().clone(), opt.state[p]["a"], opt.state[p]["b"])
    # by hand: p 3 -> 2.5 -> 2 -> 1.5; b: 1 -> 3 -> 2.5 -> 2; a: 0 -> 1 -> 3 -> 2.5
    expected = (torch.full((4,), 1.5), torch.full((4,), 2.5), torch.full((4,), 2.0))
    for impl, got in results.items():
        for g, e in zip(got, expected, strict=True):
            assert torch.equal(g, e), impl


@pytest.mark.parametrize("impl", ["numba", "foreach"])
def test_tensor_betas_run_on_the_traced_backends(impl):
    torch.manual_seed(0)
    a = [with_grad(torch.randn(6, requires_grad=True))]
    b = [a[0].detach().clone().requires_grad_()]
    b[0].grad = a[0].grad.clone()
    betas = (torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.99, dtype=torch.float64))
    descend.Adam(a, betas=betas, impl=impl).step()
    descend.Adam(b, betas=(0.8, 0.99), impl="reference").step()
    torch.testing.assert_close(a[0], b[0], rtol=1e-6, atol=0)


def test_sparse_adagrad_needs_a_positive_eps():
    embedding = torch.nn.Embedding(4, 2, sparse=True)
    opt = descend.Adagrad(embedding.parameters(), eps=0)
    embedding(torch.tensor([0])).sum().backward()
    with pytest.raises(RuntimeError, match="eps > 0"):
        opt.step()


def test_a_batch_whose_parameters_moved_is_rebuilt():
    params = [with_grad(torch.randn(5, requires_grad=True)) for _ in range(2)]
    opt = descend.Adam(params)
    opt.step()
    old = opt._batches[id(opt.param_groups[0])]
    params[0].data = params[0].data.clone()  # as model.half() or a .to() does
    opt.step()
    new = opt._batches[id(opt.param_groups[0])]
    assert new is not old and opt._group_work(opt.param_groups[0]).ready


def test_load_state_dict_keeps_the_impl_this_optimizer_was_built_with():
    p = with_grad(torch.randn(3, requires_grad=True))
    saved = descend.Adam([p], impl="reference")
    saved.step()
    opt = descend.Adam([p], impl="foreach")
    opt.load_state_dict(saved.state_dict())
    assert opt.param_groups[0]["impl"] == "foreach"


def test_skip_nonfinite_is_refused_per_group():
    with pytest.raises(ValueError, match="skip_nonfinite.*constructor"):
        descend.Adam([{"params": [torch.zeros(2, requires_grad=True)], "skip_nonfinite": True}])


def sign_rule(p, g, *, step, lr):
    return p - lr * g.sign(), {}


SignSGD = optimizer_of(sign_rule)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_sign_is_torch_sign_on_every_backend(dtype):
    """torch.sign maps NaN to 0 (np.sign would give NaN): every backend follows torch."""
    special = [math.nan, -0.0, 0.0, math.inf, -math.inf, 1e-30, -1e-30, 3.0, -2.0]
    results = []
    for impl in ("reference", "foreach", "numba"):
        p = torch.zeros(len(special), dtype=dtype, requires_grad=True)
        p.grad = torch.tensor(special, dtype=dtype)
        SignSGD([p], lr=1.0, impl=impl).step()
        results.append(p.detach())
    expected = -torch.sign(torch.tensor(special, dtype=dtype))
    for r in results:
        assert torch.equal(r, expected)


def where_rule(p, g, *, step, lr):
    """Masks of tensors and torch.where (a number in one branch keeps the tensor's dtype)."""
    return torch.where(g > 0, p - lr, torch.where(g == 0, 0.5, p + lr)), {}


WhereSGD = optimizer_of(where_rule)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_where_and_masks_run_on_every_backend_as_torch_does(dtype):
    g = torch.tensor([1.0, -2.0, 0.0, -0.0, math.nan, math.inf, -math.inf, 1e-30], dtype=dtype)
    results = []
    for impl in ("reference", "foreach", "numba"):
        p = torch.linspace(-1, 1, len(g), dtype=dtype, requires_grad=True)
        p.grad = g.clone()
        WhereSGD([p], lr=0.25, impl=impl).step()
        results.append(p.detach())
    start = torch.linspace(-1, 1, len(g), dtype=dtype)
    expected = torch.where(g > 0, start - 0.25, torch.where(g == 0, 0.5, start + 0.25))
    for r in results:
        assert torch.equal(r, expected)


# ---- per-tensor scalar state (NAdam's mu_product, ASGD's eta and mu) ---------------------------

def decaying_step(p, g, *, scale: float, step, lr):
    """SGD whose step shrinks by half per step: scale is one number per tensor."""
    return p - lr * scale * g, {"scale": scale * 0.5}


def branching_on_scale(p, g, *, scale: float, step, lr):
    return (p - lr * g if scale > 0.25 else p), {"scale": scale * 0.5}


class Halving(descend.Optimizer):
    rule = staticmethod(decaying_step)
    state_schema = (descend.state.Buffer("scale", initial=1.0, per="tensor"),)
    ranges = {"lr": descend.validation.NONNEGATIVE}

    def __init__(self, params, lr=0.1, *, impl="auto"):
        super().__init__(params, dict(lr=lr), impl=impl)


@pytest.mark.parametrize("impl", ["numba", "foreach", "reference"])
def test_per_tensor_scalar_state_is_one_number_per_tensor_on_every_backend(impl, monkeypatch):
    """The scale halves once per step whatever the tensor's size: a 200k-element tensor is read
    by several work items of the parallel kernel, and written once; a zero-size tensor's scale
    moves on too. Parameters by hand: theta_t = theta_0 - lr * g * (1 + 1/2 + ... )."""
    monkeypatch.setattr(numba, "PARALLEL_MIN_ELEMENTS", 0)
    params = [torch.zeros(200_000), torch.zeros(3, 4), torch.zeros(0)]
    opt = Halving(params, lr=0.1, impl=impl)
    general = []
    step_group = opt._step_group
    opt._step_group = lambda work, route: general.append(1) or step_group(work, route)
    for _ in range(4):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
    # numba: the first step builds the group's batch, the next three launch it
    assert len(general) == (1 if impl == "numba" else 4)
    for p in params:
        assert opt.state[p]["scale"].dtype == torch.float32 and opt.state[p]["scale"].dim() == 0
        assert opt.state[p]["scale"].item() == 0.5**4
        torch.testing.assert_close(p, torch.full_like(p, -0.1 * (1 + 0.5 + 0.25 + 0.125)),
                                   rtol=1e-6, atol=0)


def test_a_rule_branching_on_per_tensor_state_runs_on_the_reference_only():
    """A guard on a per-tensor number would hold for one tensor and not another: the tracer
    refuses it, impl='auto' runs the rule as written, impl='numba' says why it cannot."""
    class Branching(Halving):
        rule = staticmethod(branching_on_scale)

    p = with_grad(torch.zeros(5))
    opt = Branching([p], lr=1.0)
    for _ in range(3):
        opt.step()  # scales 1, 0.5 move theta; 0.25 does not
    assert torch.equal(p, torch.full((5,), -2.0))
    with pytest.raises(ValueError, match="per-tensor state"):
        Branching([with_grad(torch.zeros(5))], impl="numba").step()
