"""descend under torch.distributed: agreement across ranks, and distributed checkpoints.

descend's optimizers need nothing special under DistributedDataParallel, ZeroRedundancyOptimizer
or FSDP2 (``fully_shard``): under FSDP2 parameters, gradients and state buffers are DTensors and
the rules run on them unchanged (each rank updates its own shard). These need the ranks to work
together, and live here:

- ``on_whole_tensor``: an update that needs a whole matrix (Muon's orthogonalization) gathers
  it, and each rank keeps its shard of the result.
- ``all_finite``: whether to skip a step (``skip_nonfinite=True``) must be decided over the whole
  gradient, not over this rank's shard, or one rank skips while the others step.
- ``save_checkpoint`` / ``load_checkpoint``: torch.distributed.checkpoint (DCP) of model and
  optimizer state, resharded on load, so a checkpoint saved by N ranks loads into M.

``skip_together`` makes every rank of a process group skip a non-finite step together (needed
under ZeroRedundancyOptimizer, whose ranks each see only their partition).

``finish`` ends a process of a finished distributed run without the interpreter shutdown that can
abort it under FSDP2: an opt-in workaround that skips atexit handlers (see its docstring).

torch.distributed is imported only when one of these meets a DTensor or is called.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import torch
from torch import Tensor, nn


def is_sharded(t: Tensor) -> bool:
    """True for a DTensor (an FSDP2 / tensor-parallel parameter or gradient)."""
    return hasattr(t, "device_mesh") and hasattr(t, "to_local")


def local_shards(p: Tensor, g: Tensor, state: dict[str, Any],
                 names: Sequence[str]) -> tuple[Tensor, Tensor, dict[str, Any]] | None:
    """This rank's shards of a DTensor parameter, its gradient and its state buffers (a state dict
    of local tensors, ``step`` included), or None unless all of them are DTensors on the same mesh
    with the same placements and shape: then an elementwise update of the local shards is the
    update of the whole tensors. (A gradient still ``Partial`` — not yet reduced — is not; the
    reference backend's DTensor ops redistribute it.) The local shards share the DTensors' memory.
    """
    buffers = [state[n] for n in names]
    if not all(is_sharded(t) and t.device_mesh == p.device_mesh and t.placements == p.placements
               and t.shape == p.shape for t in (g, *buffers)):
        return None
    local = dict(state)
    local.update(zip(names, (b.to_local() for b in buffers), strict=True))
    if is_sharded(local["step"]):
        local["step"] = local["step"].to_local()
    return p.to_local(), g.to_local(), local


def on_whole_tensor(t: Tensor, fn: Callable[..., Tensor], *args: Any) -> Tensor:
    """``fn(whole t, *args)`` for a DTensor ``t``, sharded like ``t``: for an update that needs
    the whole matrix (Muon's Newton-Schulz iteration). Every rank gathers ``t``
    (``full_tensor``), computes ``fn`` on it (the same input, so the same result on every rank)
    and keeps its own shard of the result, a slice of it: one all-gather per call, no other
    communication."""
    from torch.distributed.tensor import DTensor, Replicate

    mesh = t.device_mesh
    whole = DTensor.from_local(fn(t.full_tensor(), *args), mesh, [Replicate()] * mesh.ndim,
                               run_check=False)
    return whole.redistribute(mesh, t.placements)


def _locally_finite(tensors: Sequence[Tensor]) -> bool:
    """Whether every element is finite, with one wait per device and dtype rather than a check
    and a wait per tensor: a tensor whose sum is finite holds no NaN or Inf (NaN spreads, Inf
    stays, Inf - Inf is NaN). Only where some sum is not finite (a NaN or Inf, or finite values
    whose sum overflows) are the elements checked."""
    sums: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        sums.setdefault((t.device, t.dtype), []).append(t.sum())
    if all(bool(torch.isfinite(torch.stack(group)).all()) for group in sums.values()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def all_finite(grads: Sequence[Tensor], group: Any = None) -> bool:
    """True when every element of every gradient is finite, on every rank that shares a shard,
    and on every rank of ``group`` if one is given (see ``skip_together``).

    Plain tensors are checked locally. For DTensors each rank checks its local shard and one
    MIN all-reduce per mesh dimension makes every rank of the mesh give the same answer (a
    ``bool()`` of a DTensor reduction would read this rank's partial result only).
    """
    meshes, local = {}, []
    for g in grads:
        if is_sharded(g):
            mesh, g = g.device_mesh, g.to_local()
            meshes.setdefault(id(mesh), (mesh, g.device))
        local.append(g)
    ok = _locally_finite(local)
    if not meshes and group is None:
        return ok
    import torch.distributed as dist

    for mesh, device in meshes.values():
        flag = torch.tensor(int(ok), device=device)
        for mesh_group in mesh.get_all_groups():
            dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=mesh_group)
        ok = bool(flag)
    if group is not None:
        on_gpu = dist.get_backend(group) == "nccl"
        flag = torch.tensor(int(ok), device=torch.cuda.current_device() if on_gpu else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=group)
        ok = bool(flag)
    return ok


def skip_together(optimizer: torch.optim.Optimizer, group: Any = None) -> None:
    """Makes a ``skip_nonfinite=True`` optimizer skip a step on every rank of ``group`` (default:
    all ranks) when any rank finds a NaN or Inf, with one MIN all-reduce per step.

    Needed under ``ZeroRedundancyOptimizer``: each rank's inner optimizer holds only its partition
    of the parameters, so without this a NaN in rank 0's partition would skip rank 0's part of the
    step while the other ranks updated theirs. (DDP needs nothing: every rank holds the same
    gradients. FSDP2 needs nothing: DTensor gradients are checked over their mesh.) Every rank of
    the group must call ``step()`` together. Pass the ZeroRedundancyOptimizer or a descend
    optimizer::

        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=descend.Adam,
                                            lr=1e-3, skip_nonfinite=True)
        skip_together(optimizer)
    """
    import torch.distributed as dist

    inner = getattr(optimizer, "optim", optimizer)  # ZeroRedundancyOptimizer's own optimizer
    if not inner.defaults.get("skip_nonfinite"):
        raise ValueError(f"skip_together: {type(inner).__name__} was built without "
                         "skip_nonfinite=True, so it never skips a step; pass skip_nonfinite=True "
                         "(a descend optimizer) when building it")
    if not dist.is_initialized():
        raise ValueError("skip_together: torch.distributed is not initialized; call "
                         "torch.distributed.init_process_group first")
    inner.skip_group = group if group is not None else dist.group.WORLD


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module,
                    optimizer: torch.optim.Optimizer) -> None:
    """Saves model and optimizer state with torch.distributed.checkpoint, every rank its shard.

    Collective under a process group (every rank calls it); works in one process without one.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=os.fspath(path))


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module,
                    optimizer: torch.optim.Optimizer) -> None:
    """Loads a ``save_checkpoint`` directory into ``model`` and ``optimizer`` in place.

    The checkpoint may come from any number of ranks and any sharding: DCP reads into this
    process's own shapes (full tensors, or the local shards of DTensors).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, ".metadata")):
        raise FileNotFoundError(
            f"no distributed checkpoint at {path!r} (its .metadata file is missing); "
            "give the directory that save_checkpoint wrote"
        )
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])


def finish() -> NoReturn:
    """Ends this process of a finished distributed run: waits for every rank, destroys the
    process group, flushes logging and the standard streams, and exits with status 0.

    A workaround, opt-in and meant for the last line of a training script: torch 2.13 keeps
    FSDP2's device mesh in its DTensor caches, and with it the gloo process group, whose threads
    outlive ``destroy_process_group``. Joining them during interpreter shutdown sometimes aborts
    a run that has done all its work ("terminate called without an active exception", SIGABRT).
    ``os._exit`` skips that shutdown, and with it everything else the interpreter does at exit:
    ``atexit`` handlers (of your code and of libraries: experiment trackers, profilers) do not
    run, and files left open are not flushed. Close your files and finish your trackers first;
    logging's handlers are flushed here. descend never calls it itself; without FSDP2 a plain
    ``destroy_process_group()`` and a normal exit are enough.
    """
    import logging

    import torch.distributed as dist

    dist.barrier()  # no rank tears down its connections while another still uses them
    dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
