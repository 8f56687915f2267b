"""step(closure), parameters without gradients, zero-size parameters, zero_grad, sparse grads."""

from __future__ import annotations

import inspect

import pytest
import torch
from optimizer_info import (
    CONFIGS,
    REPRESENTATIVES,
    assert_same_tensors,
    assert_unchanged,
    configs,
    loss_closure,
    make_data,
    make_model,
    optimized,
    snapshot,
    train,
)
from torch import nn

import descend
from descend import SGD


@configs()
def test_step_with_closure_returns_its_loss_and_without_returns_none(config):
    model = make_model()
    opt = config.build(config.groups(model))
    data = make_data()
    closure = loss_closure(model, opt, data)
    expected = nn.functional.mse_loss(model(data[0]), data[1]).item()
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() == expected
    assert opt.step() is None


@configs()
def test_params_whose_grad_is_none_are_untouched_and_get_no_state(config):
    model = make_model()
    unused = [nn.Parameter(torch.randn(3, 2, dtype=torch.float64)) for _ in range(2)]
    groups = config.groups(model)
    groups[0]["params"].append(unused[0])
    groups[1]["params"].append(unused[1])
    opt = config.build(groups)
    before = [u.detach().clone() for u in unused]
    train(model, opt, 3)
    assert_same_tensors([u.detach() for u in unused], before)
    for u in unused:  # Adagrad, like torch's, holds state from construction: never stepped
        assert u not in opt.state or float(opt.state[u]["step"]) == 0
    assert all(float(opt.state[p]["step"]) == 3 for p in optimized(opt)
               if not any(p is u for u in unused))


@configs()
def test_zero_size_params_work_and_change_nothing_else(config):
    def run(with_empty: bool):
        model = make_model()
        groups = config.groups(model)
        empties = [nn.Parameter(torch.zeros(0, dtype=torch.float64)),
                   nn.Parameter(torch.zeros(3, 0, dtype=torch.float64))]
        if with_empty:  # (Muon takes the matrix only)
            for group, empty in zip(groups, empties, strict=True):
                group["params"] += config.taken([empty])
        opt = config.build(groups)
        data = make_data()
        for _ in range(4):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(data[0]), data[1])
            loss = loss + sum(e.sum() for e in empties)  # gives the empties (empty) grads
            loss.backward()
            opt.step()
        return model, opt, empties

    model, opt, empties = run(with_empty=True)
    reference, _, _ = run(with_empty=False)
    assert [tuple(e.shape) for e in empties] == [(0,), (3, 0)]
    assert all(e in opt.state and opt.state[e]["step"].item() == 4
               for e in config.taken(empties))
    assert_same_tensors([p.detach() for p in model.parameters()],
                        [p.detach() for p in reference.parameters()])


@pytest.mark.parametrize("set_to_none", [True, False])
@configs(CONFIGS[:1] + [c for c in CONFIGS if c.registry_name == "adam"])
def test_zero_grad(config, set_to_none):
    model = make_model()
    opt = config.build(config.groups(model))
    train(model, opt, 1)
    opt.zero_grad(set_to_none=set_to_none)
    for p in model.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            assert p.grad is not None and not p.grad.any()


@configs()
def test_named_parameters_are_accepted_like_torch(config):
    model = make_model()
    opt = config.build(model.named_parameters())
    train(model, opt, 2)
    names = [n for n, _ in config.taken(model.named_parameters())]  # (Muon: the matrices')
    assert opt.param_groups[0]["param_names"] == names


@configs([c for c in CONFIGS if not c.cls.supports_sparse])
def test_sparse_gradients_are_refused_clearly_and_nothing_changes(config):
    embedding = nn.Embedding(10, 3, sparse=True).double()
    dense = nn.Linear(3, 1).double()
    opt = config.build([{"params": dense.parameters()}, {"params": embedding.parameters()}])
    before = snapshot(opt)
    dense(embedding(torch.tensor([1, 2, 2]))).sum().backward()
    assert embedding.weight.grad.is_sparse
    with pytest.raises(RuntimeError, match="sparse gradients.*sparse=False"):
        opt.step()
    assert_unchanged(opt, before)


SPARSE_CONFIGS = [c for c in CONFIGS if c.cls.supports_sparse and c.has_torch
                  and not c.kwargs.get("weight_decay")]


@configs(SPARSE_CONFIGS)
def test_sparse_gradients_match_torch(config):
    """torch's SGD and Adagrad take sparse gradients (an embedding with sparse=True, indices
    repeated within a batch): descend's give torch's parameters and state."""
    def run(build):
        torch.manual_seed(0)
        embedding = nn.Embedding(12, 3, sparse=True).double()
        opt = build(embedding.parameters())
        batches = torch.Generator().manual_seed(1)
        for _ in range(8):
            opt.zero_grad()
            embedding(torch.randint(0, 12, (5,), generator=batches)).pow(2).sum().backward()
            opt.step()
        return embedding.weight.detach(), opt.state[embedding.weight]

    (mine, my_state), (theirs, their_state) = run(config.build), run(config.build_torch)
    torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-14)
    for name, value in their_state.items():
        expected = value.to_dense() if value.is_sparse else value
        torch.testing.assert_close(my_state[name], expected.to(my_state[name].dtype),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [descend.SGD, descend.Adagrad])
def test_weight_decay_with_sparse_gradients_is_refused_as_torch_does(cls):
    embedding = nn.Embedding(4, 2, sparse=True)
    before = embedding.weight.detach().clone()
    opt = cls(embedding.parameters(), lr=0.1, weight_decay=0.1)
    embedding(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="weight_decay.*sparse"):
        opt.step()
    torch_opt = getattr(torch.optim, cls.__name__)(embedding.parameters(), lr=0.1,
                                                   weight_decay=0.1)
    with pytest.raises(RuntimeError):  # torch refuses too
        torch_opt.step()
    assert torch.equal(embedding.weight.detach(), before)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_switched_on_mid_run_matches_torch(nesterov):
    """A buffer the state lacks (momentum was 0 at the first step) starts like torch's: b = g."""
    def run(cls):
        model = make_model()
        opt = cls(model.parameters(), lr=0.05)
        train(model, opt, 3)
        opt.param_groups[0].update(momentum=0.9, nesterov=nesterov)
        train(model, opt, 4)
        return model

    ours, theirs = run(SGD), run(torch.optim.SGD)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=0)


def test_a_buffer_switched_on_mid_run_is_created_even_beside_a_foreign_state_key():
    """amsgrad turned on after 3 steps needs a new buffer; a key the user keeps in the state
    (here "note") must not hide that the buffer is missing."""
    def run(extra_key: bool):
        model = make_model()
        opt = descend.Adam(model.parameters(), lr=0.01)
        train(model, opt, 3)
        if extra_key:
            for state in opt.state.values():
                state["note"] = torch.tensor(0.0)
        opt.param_groups[0]["amsgrad"] = True
        train(model, opt, 4)
        return model

    for p, q in zip(run(True).parameters(), run(False).parameters(), strict=True):
        assert torch.equal(p, q)


@configs(REPRESENTATIVES)
def test_torch_implementation_keywords_are_accepted_as_hints(config):
    """foreach / fused / capturable change nothing in descend: same result as without them."""
    names = inspect.signature(config.cls.__init__).parameters
    plain = make_model()
    train(plain, config.build(config.groups(plain)), 3)
    for hint in ("foreach", "fused", "capturable"):
        if hint not in names:
            continue
        with_hint = make_model()
        train(with_hint, config.build(config.groups(with_hint), **{hint: True}), 3)
        assert_same_tensors([p.detach() for p in with_hint.parameters()],
                            [p.detach() for p in plain.parameters()])
    if "fused" in names:  # torch's errors for contradictory flags
        with pytest.raises(RuntimeError, match="fused.*foreach"):
            config.build(make_model().parameters(), fused=True, foreach=True)
        with pytest.raises(RuntimeError, match="fused.*differentiable"):
            config.build(make_model().parameters(), fused=True, differentiable=True)


@configs(REPRESENTATIVES)
def test_step_hooks_run_around_each_step(config):
    model = make_model()
    opt = config.build(config.groups(model))
    at_construction = opt.state_dict()["state"].keys()  # empty but for Adagrad's, as in torch
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o.state_dict())))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", len(o.state))))
    train(model, opt, 2)
    assert [c[0] for c in calls] == ["pre", "post", "pre", "post"]
    assert calls[0][1]["state"].keys() == at_construction
    assert calls[1][1] == len(optimized(opt))


def test_a_profiled_step_is_named_as_torch_names_it():
    """The profiler's range Optimizer.step#<class>.step is there while a profiler records (it
    is skipped otherwise: torch's costs about 20 us a step)."""
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    opt = descend.Adam([p])
    opt.step()
    with torch.profiler.profile() as prof:
        opt.step()
    assert "Optimizer.step#Adam.step" in {e.name for e in prof.events()}
