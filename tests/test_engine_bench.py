"""`descend bench` runs end to end (not timed), and a fast step allocates no parameter-sized
buffer (issue 3, goal 5: peak extra memory <= one buffer the size of the largest parameter)."""

from __future__ import annotations

import pytest
import torch

import descend
from descend import bench, cli

pytest.importorskip("numba", reason="the fast engine needs numba: pip install 'descend[fast]'")


def test_bench_prints_the_table_on_a_tiny_shape(capsys):
    status = cli.main(["bench", "--shape", "tiny", "--steps", "2", "--candidate-steps", "1",
                       "--bandwidth-elements", "50000", "--algorithms", "sgd,rmsprop-nesterov,adam",
                       "--no-first-step"])
    out = capsys.readouterr().out
    assert status == 0
    assert "attainable bandwidth:" in out and "GB/s" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    for name, nbytes in (("sgd", "12"), ("rmsprop-nesterov", "28"), ("adam", "28")):
        row = lines[name]
        assert row[1] == nbytes
        assert row[4] in ("for-loop", "foreach", "fused") and row[5].endswith("x")
        assert float(row[2]) > 0 and float(row[3]) > 0 and float(row[6]) > 0
    assert "torch has no RMSprop with Nesterov" in out


def test_bench_rejects_unknown_algorithms(capsys):
    assert cli.main(["bench", "--shape", "tiny", "--algorithms", "adam,shampoo"]) == 2
    assert "shampoo" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU machine")
def test_bench_on_cuda_without_a_gpu_says_so(capsys):
    assert cli.main(["bench", "--shape", "tiny", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_first_step_in_a_fresh_process_reports_seconds(tmp_path):
    seconds = bench.first_step_seconds(bench.BY_NAME["sgd"], "tiny", str(tmp_path), native=False)
    assert 0 < seconds < 120
    assert list(tmp_path.glob("descend_kernel_*.py")), "the kernel was not written to the cache"


def test_allocation_counter_sees_the_reference_engines_temporaries():
    """The instrument works: the reference Adam step allocates several parameter-sized
    temporaries (m, v, m_hat, ...), which the counter must see."""
    p = torch.randn(100_000)
    p.grad = torch.randn(100_000)
    opt = descend.Adam([p], impl="reference")
    opt.step()
    assert bench.peak_extra_bytes(opt.step) >= 3 * p.numel() * p.element_size()


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop-nesterov", "adadelta",
                                  "adam", "adamw"])
def test_fast_step_peak_extra_memory_is_below_one_parameter(name):
    params = bench.make_params([200_000, 50_000, 3_000])
    opt = descend.create(name, params, impl="fast")
    # Not part of a step's working memory: state allocation (step 1), the kernel of the later
    # steps (momentum's first step has its own), and what measuring does once (the dispatch mode
    # makes torch import torch._dynamo).
    opt.step()
    opt.step()
    bench.peak_extra_bytes(lambda: torch.zeros(1).add_(1))
    largest = 200_000 * 4
    assert bench.peak_extra_bytes(opt.step) <= largest


def test_bench_times_an_optimizer_torch_lacks_against_its_reference_package(capsys):
    pytest.importorskip("lion_pytorch", reason="the dev extra holds the reference packages")
    status = cli.main(["bench", "--shape", "tiny", "--steps", "2", "--candidate-steps", "1",
                       "--bandwidth-elements", "50000", "--algorithms", "lion,ademamix",
                       "--no-first-step"])
    out = capsys.readouterr().out
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert rows["lion"][4] == "lion-pytorch" and rows["lion"][1] == "20"
    assert rows["ademamix"][4] == "pytorch-optimizer" and rows["ademamix"][1] == "36"
    assert "torch has no Lion" in out
