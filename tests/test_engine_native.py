"""The compiled per-step checks (descend/engines/plan_check.cpp) decide exactly what the Python
checks decide, write the same gradient addresses, and leave every result unchanged."""

from __future__ import annotations

import shutil
import threading

import pytest
import torch
from optimizer_info import REPRESENTATIVES, TRACEABLE_REPRESENTATIVES, configs

from descend import cli
from descend.engines import native

pytestmark = pytest.mark.skipif(not native.enabled(),
                                reason="DESCEND_NATIVE=0: this run checks the Python path")


def test_the_helper_builds_and_loads():
    """tests/conftest.py built it; building again into a new place must work too."""
    if native.module is None:
        native.compile_library()  # raises with the compiler's output
    assert native.module is not None and native.library_path().exists()


def trained(config, steps: int = 3) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    torch.manual_seed(0)
    params = [torch.randn(s, requires_grad=True) for s in [(40, 30), (30,), (5000,)]]
    opt = config.build([{"params": params}], impl="auto")
    for step in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(10 * step + i))
        opt.step()
    return opt, params


def python_decision(opt, group) -> bool:
    """What the Python checks decide for this group now (compiled checks switched off)."""
    saved, native.module = native.module, None
    try:
        work = opt._group_work(group)
    finally:
        native.module = saved
    return work.ready


CHANGES = {
    "nothing": lambda opt, ps: None,
    "a gradient is None": lambda opt, ps: setattr(ps[1], "grad", None),
    "a strided gradient": lambda opt, ps: setattr(ps[0], "grad",
                                                  torch.randn(30, 40).t()),
    "a float64 gradient": lambda opt, ps: (setattr(ps[2], "grad", None),
                                           setattr(ps[2], "grad_dtype", torch.float64),
                                           setattr(ps[2], "grad", torch.randn(5000).double())),
    "a parameter moved": lambda opt, ps: setattr(ps[2], "data", ps[2].data.clone()),
    "a parameter changed dtype": lambda opt, ps: setattr(ps[1], "data", ps[1].data.double()),
    "a buffer replaced": lambda opt, ps: opt.state[ps[0]].__setitem__(
        "step", opt.state[ps[0]]["step"].clone()),
    "a state dict replaced": lambda opt, ps: opt.state.__setitem__(
        ps[1], dict(opt.state[ps[1]])),
    "the group's list changed": lambda opt, ps: opt.param_groups[0].__setitem__(
        "params", list(reversed(ps))),
    "a state loaded": lambda opt, ps: opt.load_state_dict(opt.state_dict()),
}


@configs(TRACEABLE_REPRESENTATIVES)
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_compiled_checks_decide_as_the_python_checks(config, change):
    opt, params = trained(config)
    for p in params:
        p.grad = torch.randn_like(p)
    CHANGES[change](opt, params)
    group = opt.param_groups[0]
    expected = python_decision(opt, group)
    batch = opt._batches.get(id(group))
    compiled = batch is not None and batch.configured_for(
        group, opt.state, opt.rule_for(group), opt.state_names(group)
    ) and batch.compiled_check(native.module.check_group)
    assert compiled == expected == (change == "nothing"), (compiled, expected)
    if compiled:  # the kernel will read the gradients that are there now
        column = batch.prepared.table.addresses[:, 1].tolist()
        assert column == [p.grad.data_ptr() for p in params]


@configs(TRACEABLE_REPRESENTATIVES)
def test_training_is_bit_for_bit_the_same_with_and_without(config, monkeypatch):
    with_checks, params = trained(config, steps=6)
    assert native.module is not None
    monkeypatch.setattr(native, "module", None)
    _, without = trained(config, steps=6)
    for a, b in zip(params, without, strict=True):
        assert torch.equal(a, b)


def test_a_failed_build_says_why_and_the_python_checks_go_on(tmp_path, monkeypatch, capsys):
    """No working compiler (CXX=false): ``descend build-native`` exits 2 with the compiler's
    complaint and what to do; steps then run on the Python checks, and no step builds."""
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    monkeypatch.setattr(native, "module", None)
    assert cli.main(["build-native"]) == 2
    error = capsys.readouterr().err
    assert "failed" in error and "C++ compiler" in error
    assert native.module is None and not native.library_path().exists()
    monkeypatch.setattr(native, "_tried", False)
    opt, _ = trained(REPRESENTATIVES[0])
    assert native.module is None and not native.library_path().exists()
    assert list(tmp_path.rglob("*.so")) == []


def test_build_native_command_builds_into_the_cache_and_steps_load_it(tmp_path, monkeypatch,
                                                                     capsys):
    """The explicit build: a fresh cache, one command, then a prepared step loads it."""
    built_here = native.library_path()  # conftest built it: copied, so no second compile
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "module", None)
    target = native.library_path()
    target.parent.mkdir(parents=True)
    shutil.copy2(built_here, target)
    assert cli.main(["build-native"]) == 0 and "already built" in capsys.readouterr().out
    monkeypatch.setattr(native, "module", None)
    monkeypatch.setattr(native, "_tried", False)
    trained(REPRESENTATIVES[0])
    assert native.module is not None


def test_a_build_waits_for_the_one_running_and_uses_its_library(tmp_path):
    """Builds of one library take turns (a file lock); one that gets the lock after another
    build finished finds the library there and compiles nothing."""
    import fcntl

    path = tmp_path / "native" / "key" / f"{native.NAME}.so"
    path.parent.mkdir(parents=True)
    with open(path.with_name("build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build is running
        waiting = threading.Thread(target=native._build, args=(path,))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive(), "the second build did not wait for the first"
        path.write_bytes(b"the first build's library")
    waiting.join(timeout=30)
    assert not waiting.is_alive()
    assert path.read_bytes() == b"the first build's library"
    assert not list(path.parent.glob("build-*")), "the waiting build compiled anyway"
