"""Drop-in behaviour as torch's own optimizer tests define it.

The bar is torch's test/test_optim.py (TestOptimRenewed), the OptimizerInfo table of
torch/testing/_internal/common_optimizers.py (optim_inputs_func_*, optim_error_inputs_func_*)
and test/optim/test_optim.py (TestDifferentiableOptimizer). Wherever it can, a test runs the same
thing through torch.optim and through descend and asserts torch's behaviour (float64, rtol 1e-9).

Already covered elsewhere, so not repeated here (torch's test in brackets):

* test_core_torch_parity.py: every configuration matches torch, params and state (step counts
  included), two param groups with different hyperparameters, under StepLR
  [test_forloop_goes_right_direction, test_param_groups_lr, test_param_groups_weight_decay,
  test_foreach_matches_forloop: torch's forloop is the reference].
* test_core_checkpoint.py: resume bit for bit through torch.save / torch.load(weights_only=True)
  [test_state_dict_deterministic, test_save_load_equality_with_weights_only]; deepcopy and pickle
  continue like the original; repr names every group [test_optimizer_can_be_printed]; torch.optim
  state dicts load into descend and descend's into torch.optim.
* test_core_schedulers.py: every lr_scheduler drives descend like torch, add_param_group mid-run,
  lr as a 0-d tensor [test_tensor_lr, test_param_group_with_lrscheduler_goes_right_direction].
* test_core_dtypes.py: float32 and bfloat16 vs torch, float32 vs float64, complex parameters vs
  their view_as_real run and vs torch [test_complex].
* test_core_step.py: step(closure) returns the loss, params whose grad is None, zero-size params,
  zero_grad(set_to_none), named parameters, step hooks run, implementation flags as hints and
  torch's RuntimeErrors for fused+foreach and fused+differentiable, sparse gradients (refused by
  the classes torch refuses them for; SGD/Adagrad vs torch on a sparse embedding; weight_decay
  with sparse gradients refused) [test_rosenbrock_sparse in part].
* test_core_validation.py: out-of-range hyperparameters (negative lr / eps / weight_decay /
  momentum / lr_decay, betas and rho out of [0, 1), ...) raise ValueError naming the range
  [the range checks of optim_error_inputs_func_*]; torch's constructor signatures.

Torch checks left out: CUDA / multi-GPU / MPS tests (test_state_dict_with_cuda_params,
test_cpu_load_state_dict, test_mixed_device_dtype across devices, test_fused_cpu_matches_cuda,
test_peak_memory_foreach, test_*_large_tensor, test_defaults_changed_to_foreach: not on a CPU
machine, and about torch's kernels); LBFGS / SparseAdam-only tests.
"""

from __future__ import annotations

import copy
import functools
import inspect

import pytest
import torch
from optimizer_info import (
    CONFIGS,
    IMPL,
    INFOS,
    TORCH_CONFIGS,
    TORCH_REPRESENTATIVES,
    assert_same_tensors,
    configs,
    loss_closure,
    make_data,
    make_model,
    train,
)
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau, StepLR
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from descend import ASGD, SGD, Adadelta, Adagrad, Adam, AdamW, RMSprop
from descend.state import scalar_dtype

RTOL = 1e-9
CLASSES = [info.cls for info in INFOS if info.torch_cls is not None]
TORCH_OF = {info.cls: info.torch_cls for info in INFOS if info.torch_cls is not None}
ADAMS = [Adam, AdamW]
FUSED = [c for c in CLASSES if "fused" in inspect.signature(TORCH_OF[c].__init__).parameters]
# torch's OptimizerInfo.not_og_supported_flags: group keys an old checkpoint may lack
NEWER_FLAGS = ("foreach", "differentiable", "fused", "maximize", "capturable")


def _descend(cls):
    """A constructor for a descend class on the table's engine."""
    return functools.partial(cls, impl=IMPL)


def _both(cls):
    """(descend's constructor, torch's constructor) for a descend class."""
    return _descend(cls), TORCH_OF[cls]


def _ids(classes):
    return [c.__name__ for c in classes]


def assert_close(actual, expected, rtol=RTOL, atol=0.0):
    actual, expected = list(actual), list(expected)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        a, e = a.detach(), e.detach()
        e = e.to_dense() if e.is_sparse else e
        a = a.to_dense() if a.is_sparse else a
        torch.testing.assert_close(a, e.to(a.dtype), rtol=rtol, atol=atol,
                                   msg=lambda m, i=i: f"tensor {i}: {m}")


def assert_state_close(opt, params, torch_opt, torch_params):
    """The buffers both optimizers keep (step included) agree, param by param."""
    for p, q in zip(params, torch_params, strict=True):
        mine, theirs = opt.state.get(p, {}), torch_opt.state.get(q, {})
        for name in mine.keys() & theirs.keys():
            if torch.is_tensor(theirs[name]):
                assert_close([mine[name]], [theirs[name]], atol=1e-300)
            else:
                assert mine[name] == theirs[name], name


def _twin_runs(config, body):
    """``body(build)`` with descend's and with torch's optimizer for ``config``."""
    return body(config.build), body(functools.partial(_build_torch, config))


def _build_torch(config, *args, **kwargs):
    """torch's optimizer for ``config``. torch's load_state_dict casts per-tensor scalar state
    (NAdam's mu_product, ASGD's eta and mu) to the parameter's dtype, after which its resumed
    run leaves its own uninterrupted one (float64 parameters: by ~1e-9; bfloat16 ones round
    mu_product to bfloat16). descend keeps them in the scalar dtype, so that a resumed run is
    the uninterrupted run; torch's are put back in it after a load, to compare the rest."""
    opt = config.build_torch(*args, **kwargs)
    scalars = [b.name for b in config.cls.state_schema if b.per == "tensor"]
    if scalars:
        def keep_scalar_dtype(opt):
            for state in opt.state.values():
                for name in scalars:
                    if name in state:
                        state[name] = state[name].to(scalar_dtype())
        opt.register_load_state_dict_post_hook(keep_scalar_dtype)
    return opt


def _extra_keys(cls) -> set[str]:
    """Group keys descend may add to torch's: its keyword-only extras and torch's implementation
    flags that torch's class lacks (SGD has no capturable, RMSprop no fused, ...)."""
    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(TORCH_OF[cls].__init__).parameters
    return ({n for n in ours if n not in theirs}
            | {"foreach", "fused", "capturable", "differentiable"})


# ---- construction errors (optim_error_inputs_func_*, get_error_inputs_for_all_optims) ---------

def _one_param():
    return [nn.Parameter(torch.randn(1, 1))]


def _same_param_twice():
    p = nn.Parameter(torch.randn(1, 1))
    return [p, p]


def _same_param_in_two_groups():
    p = nn.Parameter(torch.randn(1, 1))
    return [{"params": p}, {"params": p}]


def _named_and_unnamed_params():
    return [("weight", nn.Parameter(torch.randn(1, 1))), nn.Parameter(torch.randn(1, 1))]


def _named_and_unnamed_groups():
    return [{"params": _one_param(), "lr": 1e-2},
            {"params": [("weight", nn.Parameter(torch.randn(1, 1)))]}]


# (what, classes, params factory, kwargs, what torch raises or warns)
TORCH_ERRORS = [
    ("params-is-one-tensor", CLASSES, lambda: nn.Parameter(torch.randn(1, 1)), {}, TypeError),
    ("duplicate-params-in-a-group", CLASSES, _same_param_twice, {}, UserWarning),
    ("duplicate-params-across-groups", CLASSES, _same_param_in_two_groups, {}, ValueError),
    ("lr-tensor-of-two-elements", CLASSES, _one_param, {"lr": torch.tensor([1e-3, 1e-3])},
     ValueError),
    ("named-and-unnamed-params", CLASSES, _named_and_unnamed_params, {}, ValueError),
    ("named-and-unnamed-groups", CLASSES, _named_and_unnamed_groups, {}, ValueError),
    ("empty-parameter-list", CLASSES, list, {}, ValueError),
    ("betas-float-and-tensor", ADAMS, _one_param, {"betas": (0.9, torch.tensor(0.99))},
     ValueError),
    ("betas-tensor-and-float", ADAMS, _one_param, {"betas": (torch.tensor(0.9), 0.99)},
     ValueError),
]
# torch refuses these because its foreach kernels cannot take them; descend's foreach flag is a
# hint and every backend takes tensor hyperparameters: a deliberate difference, tested below.
_f64 = functools.partial(torch.tensor, dtype=torch.float64)
TENSOR_HYPERPARAMETERS_WITH_FOREACH = [{"lr": _f64(1e-3), "foreach": True},
                                       {"betas": (_f64(0.9), _f64(0.99)), "foreach": True}]
ERROR_CASES = [(what, cls, params, kwargs, expected)
               for what, classes, params, kwargs, expected in TORCH_ERRORS for cls in classes]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[f"{c[1].__name__}-{c[0]}" for c in ERROR_CASES])
def test_constructor_raises_or_warns_where_torch_does(case):
    what, cls, params, kwargs, expected = case
    for build in (TORCH_OF[cls], cls):  # torch first: the table is torch's behaviour
        if issubclass(expected, Warning):
            with pytest.warns(expected):
                build(params(), **kwargs)
        else:
            with pytest.raises(expected):
                build(params(), **kwargs)


@pytest.mark.parametrize("kwargs", TENSOR_HYPERPARAMETERS_WITH_FOREACH, ids=["lr", "betas"])
@pytest.mark.parametrize("cls", ADAMS, ids=_ids(ADAMS))
def test_tensor_hyperparameters_with_foreach_run_where_torch_refuses_them(cls, kwargs):
    """torch raises; descend runs them, with torch's result for the same tensor values
    without foreach."""
    with pytest.raises(ValueError):
        TORCH_OF[cls](_one_param(), **kwargs)
    without = {k: v for k, v in kwargs.items() if k != "foreach"}
    results = []
    for build, extra in ((cls, kwargs), (TORCH_OF[cls], without)):
        torch.manual_seed(0)
        model = make_model()
        train(model, build(model.parameters(), **extra), 3)
        results.append(list(model.parameters()))
    assert_close(*results)


@pytest.mark.parametrize("cls", CLASSES, ids=_ids(CLASSES))
def test_add_param_group_refuses_a_parameter_already_in_a_group_like_torch(cls):
    for build in _both(cls):
        p = nn.Parameter(torch.randn(2))
        opt = build([p])
        with pytest.raises(ValueError):
            opt.add_param_group({"params": [p]})
        assert len(opt.param_groups) == 1


def test_the_table_leaves_the_implementation_flags_to_the_tests():
    """torch's test_optim_infos_do_not_specify_global_cliquey_kwargs, for our table."""
    for config in CONFIGS:
        assert not {"foreach", "fused", "differentiable"} & set(config.effective_kwargs())


# ---- hooks (test_step_*_hook, test_step_all_hooks, test_*state_dict_*hook*) -------------------

@configs(TORCH_REPRESENTATIVES)
def test_global_and_local_step_hooks_run_in_torchs_order_and_can_be_removed(config):
    model = make_model()
    opt = config.build(config.groups(model))
    other = torch.optim.SGD(make_model().parameters(), lr=0.1)
    calls = []
    handles = []
    try:
        handles += [
            register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("global pre", o))),
            register_optimizer_step_post_hook(lambda o, a, k: calls.append(("global post", o))),
        ]
        for o in (opt, other):
            handles += [o.register_step_pre_hook(lambda o, a, k: calls.append(("pre", o))),
                        o.register_step_post_hook(lambda o, a, k: calls.append(("post", o)))]
        order = ["global pre", "pre", "post", "global post"]
        train(model, opt, 1)
        assert calls == [(name, opt) for name in order]
        other.step()
        opt.step()
        assert calls == [(name, o) for o in (opt, other, opt) for name in order]
    finally:
        for handle in handles:
            handle.remove()
    train(model, opt, 1)
    other.step()
    assert len(calls) == 12, "removed hooks must not run"


@configs(TORCH_REPRESENTATIVES)
def test_a_step_pre_hook_may_replace_the_arguments_like_torch(config):
    """A pre-hook returning (args, kwargs) replaces them: here it hands step() the closure."""
    def body(build):
        model = make_model()
        opt = build(config.groups(model))
        closure = loss_closure(model, opt, make_data())
        seen = []
        opt.register_step_pre_hook(lambda o, args, kwargs: ((args[0], closure), kwargs))
        opt.register_step_post_hook(lambda o, args, kwargs: seen.append(args[1:]))
        losses = [opt.step() for _ in range(3)]
        assert seen == [(closure,)] * 3, "post-hooks see the replaced arguments"
        return model, losses

    (model, losses), (torch_model, torch_losses) = _twin_runs(config, body)
    assert all(isinstance(loss, torch.Tensor) for loss in losses)
    assert_close(losses, torch_losses)
    assert_close(model.parameters(), torch_model.parameters())


def _state_dict_pre_hook(opt):
    opt.state["test"] = 1


def _state_dict_post_hook(opt, state_dict):
    state_dict["ran_pre_hook"] = "test" in state_dict["state"]
    state_dict["state"].pop("test", None)
    return state_dict


def _load_pre_hook_sets_lr(opt, state_dict):
    state_dict["param_groups"][0]["lr"] = 0.002


def _load_pre_hook_returns_a_copy(opt, state_dict):
    mine = copy.deepcopy(state_dict)
    mine["param_groups"][0]["lr"] = 0.003
    return mine


def _load_post_hook(opt):
    opt.state["post hook saw lr"] = opt.param_groups[0]["lr"]


@configs(TORCH_REPRESENTATIVES)
def test_state_dict_and_load_state_dict_hooks_behave_like_torchs(config):
    def body(build):
        seen = {}
        p = nn.Parameter(torch.rand(2, 3, dtype=torch.float64))
        opt = build([p])
        opt.register_state_dict_pre_hook(_state_dict_pre_hook)
        seen["pre"] = opt.state_dict()["state"].get("test")
        opt.register_state_dict_post_hook(_state_dict_post_hook)
        state_dict = opt.state_dict()
        seen["pre+post"] = ("test" in state_dict["state"], state_dict["ran_pre_hook"])
        opt.state.pop("test")

        opt = build([p])
        state_dict = opt.state_dict()
        opt.register_load_state_dict_pre_hook(_load_pre_hook_sets_lr)
        opt.load_state_dict(state_dict)
        seen["load pre"] = opt.param_groups[0]["lr"]
        # prepended, it runs first: the other hook then edits the copy it returned
        opt.register_load_state_dict_pre_hook(_load_pre_hook_returns_a_copy, prepend=True)
        opt.load_state_dict(state_dict)
        seen["load prepend"] = opt.param_groups[0]["lr"]

        opt = build([p])
        opt.register_load_state_dict_pre_hook(_load_pre_hook_returns_a_copy)
        opt.register_load_state_dict_post_hook(_load_post_hook)
        opt.load_state_dict(opt.state_dict())
        seen["load post"] = opt.state["post hook saw lr"]
        return seen

    ours, theirs = _twin_runs(config, body)
    assert theirs == {"pre": 1, "pre+post": (False, True), "load pre": 0.002,
                      "load prepend": 0.002, "load post": 0.003}
    assert ours == theirs


# ---- state_dict contents, loading (test_load_nontensor_step, test_can_load_*) -----------------

@configs(TORCH_CONFIGS)
def test_defaults_param_groups_and_state_have_torchs_keys_types_and_values(config):
    def body(build):
        model = make_model()
        opt = build(config.groups(model))
        train(model, opt, 2)
        return opt

    opt, torch_opt = _twin_runs(config, body)
    extras = _extra_keys(config.cls)
    for k, v in torch_opt.defaults.items():
        assert k in opt.defaults and opt.defaults[k] == v, k
    assert set(opt.defaults) - set(torch_opt.defaults) <= extras

    mine, theirs = opt.state_dict(), torch_opt.state_dict()
    assert mine.keys() == theirs.keys() == {"state", "param_groups"}
    for group, torch_group in zip(mine["param_groups"], theirs["param_groups"], strict=True):
        for k, v in torch_group.items():
            assert k in group and group[k] == v, k
        assert set(group) - set(torch_group) <= extras
    assert theirs["state"].keys() <= mine["state"].keys()
    for i, state in mine["state"].items():
        torch_state = theirs["state"].get(i, {})
        assert torch_state.keys() <= state.keys()
        # torch's SGD keeps no step counter; descend's does (torch ignores it on load)
        assert set(state) - set(torch_state) <= ({"step"} if config.cls is SGD else set())
        for name, value in torch_state.items():
            assert type(state[name]) is type(value), name
            if torch.is_tensor(value):
                assert (state[name].dtype, state[name].shape, state[name].device) == (
                    value.dtype, value.shape, value.device), name
                assert_close([state[name]], [value], atol=1e-300)


@configs([c for c in TORCH_REPRESENTATIVES if c.cls is not SGD])  # torch's SGD keeps no step
def test_the_step_counter_dtype_follows_the_default_dtype_like_torch(config):
    """torch keeps ``step`` in float32, or in float64 when that is the default dtype."""
    def body(build):
        model = make_model()
        opt = build(config.groups(model))
        train(model, opt, 1)
        return [opt.state[p]["step"] for p in model.parameters()]

    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        ours, theirs = _twin_runs(config, body)
    finally:
        torch.set_default_dtype(previous)
    assert [s.dtype for s in ours] == [s.dtype for s in theirs] == [torch.float64] * len(theirs)


@pytest.mark.parametrize("number", [float, int])
@configs(TORCH_CONFIGS)
def test_a_state_dict_whose_step_is_a_python_number_loads_and_steps_like_torch(config, number):
    def body(build):
        model = make_model()
        opt = build(config.groups(model))
        train(model, opt, 3)
        state_dict = copy.deepcopy(opt.state_dict())
        for state in state_dict["state"].values():
            if torch.is_tensor(state.get("step")):
                state["step"] = number(state["step"].item())
        opt.load_state_dict(state_dict)
        loaded = [(type(s), getattr(s, "dtype", None), float(s)) if "step" in opt.state[p]
                  else None for p in model.parameters() for s in [opt.state[p].get("step")]]
        train(model, opt, 2)
        return model, opt, loaded

    (model, opt, loaded), (torch_model, torch_opt, torch_loaded) = _twin_runs(config, body)
    for step, torch_step in zip(loaded, torch_loaded, strict=True):
        if torch_step is not None:  # torch turns the number back into a tensor
            assert torch_step[0] is torch.Tensor and torch_step[2] == 3
            assert step == torch_step
    assert_close(model.parameters(), torch_model.parameters())
    assert_state_close(opt, list(model.parameters()), torch_opt, list(torch_model.parameters()))


@configs(TORCH_CONFIGS)
def test_an_older_state_dict_without_the_newer_flags_loads_like_torch(config):
    """torch's test_can_load_older_state_dict: groups saved before foreach / differentiable /
    fused / maximize / capturable existed. torch fills them in with their defaults."""
    def body(build):
        model = make_model()
        opt = build(config.groups(model))
        train(model, opt, 3)
        state_dict = copy.deepcopy(opt.state_dict())
        for group in state_dict["param_groups"]:
            for flag in NEWER_FLAGS:
                group.pop(flag, None)
        opt.load_state_dict(state_dict)
        train(model, opt, 3)
        return model, [g["maximize"] for g in opt.param_groups]

    (model, maximize), (torch_model, torch_maximize) = _twin_runs(config, body)
    assert maximize == torch_maximize
    assert_close(model.parameters(), torch_model.parameters())


@configs(TORCH_CONFIGS)
def test_a_state_dict_saved_before_the_first_step_loads_both_ways(config):
    """A checkpoint taken right after construction (torch's Adagrad already has state then)."""
    reference = make_model()
    train(reference, config.build_torch(config.groups(reference)), 3)
    for first, then in ((config.build, config.build_torch), (config.build_torch, config.build)):
        model = make_model()
        state_dict = copy.deepcopy(first(config.groups(model)).state_dict())
        opt = then(config.groups(model))
        opt.load_state_dict(state_dict)
        train(model, opt, 3)
        assert_close(model.parameters(), reference.parameters())


def _adagrad(cls):
    p = nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    return p, cls([p], lr=0.1, initial_accumulator_value=0.25)


def test_adagrad_has_its_state_from_construction_like_torch():
    (p, opt), (q, torch_opt) = _adagrad(_descend(Adagrad)), _adagrad(torch.optim.Adagrad)
    assert torch_opt.state[q].keys() == {"step", "sum"}
    assert opt.state[p].keys() == torch_opt.state[q].keys()
    for name, value in torch_opt.state[q].items():
        assert opt.state[p][name].dtype == value.dtype and torch.equal(opt.state[p][name], value)


def test_adagrad_share_memory_shares_the_sums_the_steps_update_like_torch():
    """torch.optim.Adagrad.share_memory() (Hogwild training): the accumulators stay shared."""
    for p, opt in (_adagrad(_descend(Adagrad)), _adagrad(torch.optim.Adagrad)):
        opt.share_memory()
        for _ in range(2):
            p.grad = torch.ones_like(p)
            opt.step()
        assert opt.state[p]["sum"].is_shared()
        assert torch.equal(opt.state[p]["sum"], torch.full_like(p, 2.25))


@pytest.mark.parametrize("named_from,named_to", [(True, False), (False, True), (True, True)])
@configs(TORCH_REPRESENTATIVES)
def test_named_and_unnamed_state_dicts_load_into_each_other_like_torch(config, named_from,
                                                                        named_to):
    def body(build):
        model = make_model()

        def params(named):
            return model.named_parameters() if named else model.parameters()

        opt = build(params(named_from))
        train(model, opt, 3)
        resumed = build(params(named_to))
        resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
        train(model, resumed, 2)
        return model, resumed.state_dict()["param_groups"][0].get("param_names")

    (model, names), (torch_model, torch_names) = _twin_runs(config, body)
    assert names == torch_names == [n for n, _ in model.named_parameters()]
    assert_close(model.parameters(), torch_model.parameters())


@configs(TORCH_REPRESENTATIVES)
def test_a_state_dict_with_remapped_param_ids_loads_by_position(config):
    """Saved ids are only labels: the i-th saved id is the i-th parameter of the optimizer."""
    def resume(remap):
        model = make_model()
        opt = config.build(config.groups(model))
        train(model, opt, 3)
        state_dict = copy.deepcopy(opt.state_dict())
        state_dict["state"] = {remap(i): s for i, s in state_dict["state"].items()}
        for group in state_dict["param_groups"]:
            group["params"] = [remap(i) for i in group["params"]]
        resumed = config.build(config.groups(model))
        resumed.load_state_dict(state_dict)
        train(model, resumed, 3)
        return model

    assert_same_tensors([p.detach() for p in resume(lambda i: 100 + 7 * i).parameters()],
                        [p.detach() for p in resume(lambda i: i).parameters()])


@configs(TORCH_REPRESENTATIVES)
def test_a_repeated_param_group_packs_like_the_original(config):
    """torch's #36831: the same group listed twice has one representation in the state dict."""
    model = make_model()
    opt = config.build(config.groups(model))
    train(model, opt, 2)
    last = opt.state_dict()["param_groups"][-1]
    opt.param_groups.extend(opt.param_groups)
    assert opt.state_dict()["param_groups"][-1] == last


@pytest.mark.parametrize("source,target", [(Adam, AdamW), (AdamW, Adam)],
                         ids=["Adam-into-AdamW", "AdamW-into-Adam"])
def test_adam_and_adamw_state_dicts_load_into_each_other_like_torch(source, target):
    """torch's AdamW forces decoupled_weight_decay=True whatever it loads; Adam takes the
    saved flag."""
    def body(get):
        model = make_model()
        opt = get(source)(model.parameters(), lr=0.01, weight_decay=0.1)
        train(model, opt, 3)
        resumed = get(target)(model.parameters(), lr=0.01, weight_decay=0.1)
        resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
        train(model, resumed, 4)
        return model, resumed.param_groups[0]["decoupled_weight_decay"]

    model, decoupled = body(_descend)
    torch_model, torch_decoupled = body(lambda cls: TORCH_OF[cls])
    assert decoupled == torch_decoupled == (target is AdamW or source is AdamW)
    assert_close(model.parameters(), torch_model.parameters())


@configs()
def test_deepcopy_keeps_every_public_attribute(config):
    model = make_model()
    opt = config.build(config.groups(model))
    train(model, opt, 3)

    def public(o):
        return {k for k in vars(o) if not k.startswith("_")}

    assert public(copy.deepcopy(opt)) == public(opt)


# ---- steps that must change nothing (test_step_is_noop_*) ------------------------------------

@configs()
def test_a_step_on_tensors_that_do_not_require_grad_is_a_no_op(config):
    params = [torch.randn(2, 3, dtype=torch.float64) for _ in range(2)]
    before = [p.clone() for p in params]
    opt = config.build(params)
    loss = opt.step(lambda: torch.tensor([1.0], dtype=torch.float64))
    assert loss.item() == 1.0
    assert_same_tensors(params, before)


@configs()
def test_zero_gradients_leave_the_parameters_exactly_in_place(config):
    """Without weight decay a zero gradient moves nothing (torch drops weight_decay for this)."""
    model = make_model()
    groups = config.groups(model)
    for group in groups:
        group["weight_decay"] = 0.0
        if config.cls is ASGD:
            group["lambd"] = 0.0  # ASGD's decay term shrinks theta whatever the gradient
    opt = config.build(groups)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
    assert_same_tensors([p.detach() for p in model.parameters()], before)


@configs(TORCH_CONFIGS)
def test_a_step_without_any_gradient_changes_nothing_and_is_not_counted(config):
    def body(build):
        model = make_model()
        opt = build(config.groups(model))
        before = [p.detach().clone() for p in model.parameters()]
        opt.step()
        assert_same_tensors([p.detach() for p in model.parameters()], before)
        train(model, opt, 2)
        return model, opt

    (model, opt), (torch_model, torch_opt) = _twin_runs(config, body)
    assert_close(model.parameters(), torch_model.parameters())
    assert_state_close(opt, list(model.parameters()), torch_opt, list(torch_model.parameters()))


RISKY_FOR_GRADS = [c for c in CONFIGS if c.kwargs.get("maximize") or c.kwargs.get("weight_decay")
                   or c.registry_name == "adamw"]


@pytest.mark.parametrize("impl", ["reference", "auto"])
@configs(RISKY_FOR_GRADS + TORCH_REPRESENTATIVES)
def test_step_never_writes_into_the_gradients(config, impl):
    model = make_model()
    opt = config.build(config.groups(model), impl=impl)
    closure = loss_closure(model, opt, make_data())
    for _ in range(3):  # the first steps and the prepared ones that follow
        closure()
        grads = [p.grad for p in model.parameters()]
        copies = [g.clone() for g in grads]
        opt.step()
        assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))
        assert_same_tensors(grads, copies)


# ---- the kinds of parameters TestOptimRenewed varies -------------------------------------------

def _mv_problem(build, weight, bias, steps=10):
    """torch's (weight.mv(input) + bias).pow(2).sum() problem."""
    x = torch.randn(weight.shape[1], dtype=weight.dtype, generator=torch.Generator().manual_seed(5))
    opt = build([weight, bias])

    def closure():
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        loss.backward()
        return loss

    return [float(opt.step(closure)) for _ in range(steps)]


@configs(TORCH_CONFIGS)
def test_non_contiguous_params_match_torch_and_stay_views(config):
    def body(build):
        g = torch.Generator().manual_seed(4)
        weight = nn.Parameter(torch.randn(10, 5, 2, dtype=torch.float64, generator=g)[..., 0])
        bias = nn.Parameter(torch.randn(10, 2, dtype=torch.float64, generator=g)[..., 0])
        assert not weight.is_contiguous() and not bias.is_contiguous()
        losses = _mv_problem(build, weight, bias)
        assert not weight.is_contiguous() and weight.stride() == (10, 2)
        return [weight, bias], losses

    (params, losses), (torch_params, torch_losses) = _twin_runs(config, body)
    assert losses[-1] != losses[0]
    assert_close(params, torch_params)


@configs(TORCH_CONFIGS)
def test_complex_and_real_params_in_one_group_match_torch(config):
    """torch's test_complex: the last parameter is real, on purpose."""
    def body(build):
        g = torch.Generator().manual_seed(6)
        params = [torch.randn(10, 5, dtype=torch.complex128, generator=g).requires_grad_(),
                  torch.randn(10, dtype=torch.complex128, generator=g).requires_grad_(),
                  torch.randn(10, 5, dtype=torch.float64, generator=g).requires_grad_()]
        opt = build(params)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, dtype=p.dtype, generator=g)
            opt.step()
        return [torch.view_as_real(p) if p.is_complex() else p for p in params]

    ours, theirs = _twin_runs(config, body)
    assert_close(ours, theirs)


@configs(TORCH_CONFIGS)
def test_params_of_mixed_dtypes_in_one_group_match_torch(config):
    """torch's test_mixed_device_dtype on one device: float64, float32 and an int64 tensor that
    does not require grad, in one group, the same gradients at every step."""
    def body(build):
        g = torch.Generator().manual_seed(7)
        params = [torch.rand(2, 3, dtype=dtype, generator=g).requires_grad_()
                  for dtype in (torch.float64, torch.float32)]
        params.append(torch.randint(1024, (2, 3), generator=g))
        for p in params[:2]:
            p.grad = torch.rand(p.shape, dtype=p.dtype, generator=g)
        opt = build(params)
        for _ in range(7):
            opt.step()
        return params

    ours, theirs = _twin_runs(config, body)
    assert_close(ours[:1], theirs[:1])
    assert_close(ours[1:2], theirs[1:2], rtol=1e-5, atol=1e-6)
    assert torch.equal(ours[2], theirs[2])


@configs(TORCH_CONFIGS)
def test_freezing_a_layer_and_a_step_without_gradients_match_torch(config):
    """torch's _compare_between: no gradients at iteration 2, a layer frozen at 3 and thawed at
    5; and a 0-d parameter that has a gradient at every other step."""
    def body(build):
        model = make_model()
        scalar = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        groups = config.groups(model)
        groups[0]["params"].append(scalar)
        opt = build(groups)
        x, y = make_data()
        for i in range(7):
            opt.zero_grad()
            if i == 3:
                model[2].requires_grad_(False)
            if i == 5:
                model[2].requires_grad_(True)
            if i != 2:
                nn.functional.mse_loss(model(x), y).backward()
            if i % 2 == 0:
                scalar.grad = torch.tensor(0.3 + i, dtype=torch.float64)
            opt.step()
        return [*model.parameters(), scalar], opt

    (params, opt), (torch_params, torch_opt) = _twin_runs(config, body)
    assert_close(params, torch_params)
    assert_state_close(opt, params, torch_opt, torch_params)


@configs([c for c in TORCH_CONFIGS if c.cls in ADAMS])
def test_betas_as_tensors_match_torch(config):
    betas = config.effective_kwargs().get("betas", (0.9, 0.999))

    def body(build):
        model = make_model()
        groups = config.groups(model)
        for group in groups:
            group["betas"] = tuple(torch.tensor(b, dtype=torch.float64)
                                   for b in group.get("betas", betas))
        opt = build(groups)
        train(model, opt, 5)
        return model

    model, torch_model = _twin_runs(config, body)
    assert_close(model.parameters(), torch_model.parameters())


# ---- fused=True: what torch's fused kernels refuse, they refuse at the step ------------------

def _meta_model():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1), nn.Sigmoid())
    return model


@pytest.mark.parametrize("cls", FUSED, ids=_ids(FUSED))
def test_fused_on_meta_params_fails_at_the_step_like_torch(cls):
    """torch's test_fused_error_on_params_on_meta: construction is fine, the step raises, and
    once the model is materialized on the CPU the same optimizer steps."""
    for build in (TORCH_OF[cls], _descend(cls)):
        model = _meta_model()
        opt = build(model.parameters(), fused=True)
        with torch.device("meta"):
            for p in model.parameters():
                p.grad = torch.rand_like(p)
        with pytest.raises(RuntimeError, match="fused"):
            opt.step()
        opt.zero_grad(set_to_none=True)
        model.to_empty(device="cpu")
        for p in model.parameters():
            p.grad = torch.rand_like(p)
        opt.step()
        assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize("cls", [SGD, Adagrad], ids=["SGD", "Adagrad"])
def test_fused_with_sparse_gradients_fails_at_the_step_like_torch(cls):
    for build in (TORCH_OF[cls], _descend(cls)):
        embedding = nn.Embedding(4, 2, sparse=True).double()
        before = embedding.weight.detach().clone()
        opt = build(embedding.parameters(), lr=0.1, fused=True)
        embedding(torch.tensor([1, 1, 3])).sum().backward()
        with pytest.raises(RuntimeError):
            opt.step()
        assert torch.equal(embedding.weight.detach(), before)


# ---- sparse gradients (test_rosenbrock_sparse) ------------------------------------------------

def rosenbrock(t):
    x, y = t
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def drosenbrock(t):
    x, y = t
    return torch.stack((-400 * x * (y - x**2) - 2 * (1 - x), 200 * (y - x**2)))


def _coordinate_gradient(param, sparse: bool, w: int) -> torch.Tensor:
    """Only the x (w=1) or y (w=0) component; sparse ones uncoalesced, split in two entries."""
    g = drosenbrock(param.detach())
    if not sparse:
        return g * torch.tensor([1.0, 0.0] if w else [0.0, 1.0], dtype=g.dtype)
    if w:
        return torch.sparse_coo_tensor([[0, 0]], torch.stack((g[0] / 4, g[0] - g[0] / 4)), (2,))
    return torch.sparse_coo_tensor([[1, 1]], torch.stack((g[1] - g[1] / 4, g[1] / 4)), (2,))


# torch's metadata_for_sparse: tuned hyperparameters and schedulers
ROSENBROCK = {
    SGD: ({"lr": 4.8e-3}, [lambda o: StepLR(o, gamma=0.99999, step_size=300)]),
    Adagrad: ({"lr": 0.1}, [lambda o: StepLR(o, gamma=1 - 1e-5, step_size=500),
                            lambda o: ReduceLROnPlateau(o, threshold=1e-4)]),
}


def _rosenbrock_run(build, sparse: bool, schedulers, steps: int = 400):
    param = nn.Parameter(torch.tensor([1.5, 1.5], dtype=torch.float64))
    opt = build([param])
    running = [make(opt) for make in schedulers]
    for i in range(steps):
        def closure(w=i % 2):
            opt.zero_grad()
            loss = rosenbrock(param)
            loss.backward()
            param.grad = _coordinate_gradient(param, sparse, w)
            return loss

        opt.step(closure)
        for scheduler in running:
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(float(rosenbrock(param.detach())))
            else:
                scheduler.step()
    return param.detach()


@pytest.mark.parametrize("with_schedulers", [False, True])
@pytest.mark.parametrize("cls", [SGD, Adagrad], ids=["SGD", "Adagrad"])
def test_rosenbrock_with_uncoalesced_sparse_gradients_matches_torch_and_dense(cls,
                                                                             with_schedulers):
    kwargs, schedulers = ROSENBROCK[cls]
    schedulers = schedulers if with_schedulers else []
    ours = functools.partial(_descend(cls), **kwargs)
    theirs = functools.partial(TORCH_OF[cls], **kwargs)
    sparse = _rosenbrock_run(ours, True, schedulers)
    assert_close([sparse], [_rosenbrock_run(theirs, True, schedulers)])
    # x/4 + 3x/4 against x: torch allows 5e-6 between its sparse and dense paths
    assert_close([sparse], [_rosenbrock_run(ours, False, schedulers)], rtol=5e-6, atol=5e-6)
    # torch checks the distance to the minimum after 1800 steps; Adagrad needs more than the
    # 400 here for that, so check the value instead (56.5 at the start)
    assert rosenbrock(sparse) < rosenbrock(torch.tensor([1.5, 1.5], dtype=torch.float64)) / 10


SPARSE_TORCH_CONFIGS = [c for c in TORCH_CONFIGS if c.cls in (SGD, Adagrad)
                        and not c.effective_kwargs().get("weight_decay")]


@configs(SPARSE_TORCH_CONFIGS)
def test_sparse_and_dense_params_in_one_optimizer_match_torch(config):
    """A sparse embedding in the first group and a dense layer (the second group's
    hyperparameters) in the second, stepped together under StepLR."""
    def body(build):
        torch.manual_seed(0)
        embedding = nn.Embedding(12, 4, sparse=True).double()
        head = nn.Linear(4, 1).double()
        lr = float(config.effective_kwargs().get("lr", 1e-3))
        opt = build([{"params": embedding.parameters()},
                     {"params": head.parameters(), "lr": lr * 0.5, **config.info.second_group}])
        scheduler = StepLR(opt, step_size=3, gamma=0.5)
        batches = torch.Generator().manual_seed(1)
        for _ in range(8):
            opt.zero_grad()
            head(embedding(torch.randint(0, 12, (6,), generator=batches))).pow(2).sum().backward()
            assert embedding.weight.grad.is_sparse
            opt.step()
            scheduler.step()
        return [embedding.weight, *head.parameters()], opt

    (params, opt), (torch_params, torch_opt) = _twin_runs(config, body)
    assert_close(params, torch_params)
    assert_state_close(opt, params, torch_opt, torch_params)


# ---- differentiable=True (TestDifferentiableOptimizer) ----------------------------------------

def _rand(scale: float = 1.0) -> torch.Tensor:
    return (scale * torch.rand(10, dtype=torch.float64)).requires_grad_()


def _step_constant(value: float) -> dict[str, torch.Tensor]:
    """``step`` is a count, not a variable: it never requires grad."""
    return {"step": torch.tensor(value, dtype=torch.float64)}


# (class, kwargs, state tensors {name: scale}, constant state) — torch's cases, and one SGD with
# momentum, Nesterov and weight decay (torch's SGD case carries the buffer without momentum)
DIFFERENTIABLE = [
    (SGD, {"lr": 0.9}, {"momentum_buffer": 1.0}, {}),
    (SGD, {"lr": 0.9, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
     {"momentum_buffer": 1.0}, {}),
    (Adam, {"lr": 0.9, "amsgrad": True},
     {"exp_avg": 1.0, "exp_avg_sq": 1.0, "max_exp_avg_sq": 1.0}, _step_constant(10.0)),
    (AdamW, {"lr": 0.9, "amsgrad": True},
     {"exp_avg": 1.0, "exp_avg_sq": 1.0, "max_exp_avg_sq": 1.0}, _step_constant(10.0)),
    (RMSprop, {"lr": 0.9, "maximize": True, "momentum": 0.9, "centered": True,
               "weight_decay": 0.1},
     {"square_avg": 1.0, "momentum_buffer": 1.0, "grad_avg": 1e-2}, _step_constant(0.0)),
    (Adadelta, {"lr": 0.9, "weight_decay": 0.1}, {"square_avg": 1.0, "acc_delta": 1.0},
     _step_constant(10.0)),
    (Adagrad, {"lr": 0.9, "weight_decay": 0.1}, {"sum": 1.0}, _step_constant(10.0)),
]


def _one_step(build, kwargs, names, constants, p, grad, *state):
    """torch's _diff_fn: (p, grad, state) -> (p, state) after one differentiable step."""
    p = p.clone()
    p.grad = grad
    opt = build([p], differentiable=True, **kwargs)
    opt.state[p].update({k: v.clone() for k, v in constants.items()})
    opt.state[p].update({k: v.clone() for k, v in zip(names, state, strict=True)})
    opt.step()
    return (p, *(opt.state[p][name] for name in names))


def _two_steps(build, kwargs, names, constants, hyper_names, p, grad, *tensors):
    """torch's _multistep_backprop_diff_hyperparams_fn: two differentiable steps on
    mse(x * sum(p), y); the loss before the second is the meta-loss."""
    state, hyper = tensors[:len(names)], tensors[len(names):]
    hyper = {k: v.clone() for k, v in zip(hyper_names, hyper, strict=True)}
    if "beta1" in hyper:
        hyper["betas"] = (hyper.pop("beta1"), hyper.pop("beta2"))
    p = p.clone()
    p.grad = grad
    opt = build([p], differentiable=True, **kwargs, **hyper)
    opt.state[p].update({k: v.clone() for k, v in constants.items()})
    opt.state[p].update({k: v.clone() for k, v in zip(names, state, strict=True)})
    x = torch.tensor([1.0], dtype=torch.float64)
    y = torch.tensor([2.0], dtype=torch.float64)
    for _ in range(2):
        loss = nn.functional.mse_loss(x * p.sum(), y)
        loss.backward(inputs=(p,), create_graph=True)
        opt.step()
        opt.zero_grad()
    return (loss, *(opt.state[p][name] for name in names))


def _check_differentiable(function, cls, inputs):
    """gradcheck as torch runs it, then the same outputs and vector-Jacobian products as
    torch.optim's differentiable step."""
    ours = functools.partial(function, _descend(cls))
    theirs = functools.partial(function, TORCH_OF[cls])
    assert torch.autograd.gradcheck(ours, inputs, check_batched_grad=True, fast_mode=True)
    outputs, torch_outputs = ours(*inputs), theirs(*inputs)
    assert_close(outputs, torch_outputs, atol=1e-12)
    cotangents = [torch.randn_like(o) for o in torch_outputs]
    grads = torch.autograd.grad(outputs, inputs, cotangents, allow_unused=True)
    torch_grads = torch.autograd.grad(torch_outputs, inputs, cotangents, allow_unused=True)
    for g, t in zip(grads, torch_grads, strict=True):
        assert (g is None) == (t is None)
        if t is not None:
            assert_close([g], [t], atol=1e-12)


@pytest.mark.parametrize("case", DIFFERENTIABLE,
                         ids=[f"{c[0].__name__}-{'-'.join(c[1])}" for c in DIFFERENTIABLE])
def test_a_differentiable_step_passes_gradcheck_and_matches_torch(case):
    cls, kwargs, scales, constants = case
    torch.manual_seed(0)
    names = tuple(scales)
    inputs = (_rand(), _rand(), *(_rand(s) for s in scales.values()))
    _check_differentiable(
        lambda build, *t: _one_step(build, kwargs, names, constants, *t), cls, inputs)


def _hyper(value, shape=()):
    return torch.full(shape, value, dtype=torch.float64).requires_grad_()


# torch's test_differentiable_lr / weight_decay / weight_decay_and_lr (SGD) and
# test_adam(w)_differentiable_lr / weight_decay / betas / all_hyperparams
SGD_HYPER = [{"lr": (0.001, ())}, {"weight_decay": (0.9, ())},
             {"weight_decay": (0.9, ()), "lr": (0.001, ())}]
ADAM_HYPER = [{"lr": (0.001, ())}, {"weight_decay": (0.999, ())},
              {"beta1": (0.9, ()), "beta2": (0.999, ()), "lr": (0.001, (1,))},
              {"lr": (0.001, ()), "weight_decay": (0.999, ()), "beta1": (0.9, ()),
               "beta2": (0.999, ())}]
HYPER_CASES = ([(SGD, h, {"momentum_buffer": 1.0}, {}) for h in SGD_HYPER]
               + [(cls, h, {"exp_avg": 1.0, "exp_avg_sq": 1.0, "max_exp_avg_sq": 1.0},
                   _step_constant(10.0)) for cls in ADAMS for h in ADAM_HYPER])


@pytest.mark.parametrize("case", HYPER_CASES,
                         ids=[f"{c[0].__name__}-{'-'.join(c[1])}" for c in HYPER_CASES])
def test_hyperparameters_as_tensors_get_gradients_through_two_steps_like_torch(case):
    cls, hyper, scales, constants = case
    torch.manual_seed(0)
    names, hyper_names = tuple(scales), tuple(hyper)
    inputs = (_rand(), _rand(), *(_rand(s) for s in scales.values()),
              *(_hyper(v, shape) for v, shape in hyper.values()))
    _check_differentiable(
        lambda build, *t: _two_steps(build, {}, names, constants, hyper_names, *t), cls, inputs)
