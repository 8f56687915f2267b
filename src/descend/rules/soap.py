"""SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"): Adam run in the
eigenbasis of Shampoo's preconditioner, an eigenbasis refreshed every few steps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

# The preconditioner of each dimension: its statistics GG (d x d) and eigenbasis Q (d x d), or
# None where the dimension is not preconditioned (larger than max_precondition_dim; a vector
# without precondition_1d). A parameter's matrices are kept concatenated, flat, in one buffer
# each (``GG`` and ``Q``), in the order of its dimensions: state that checkpoints as tensors.
# ``Q`` holds each Q_i^T row by row (Q_i column by column, LAPACK's layout: see
# ``Layout.matrices``).
Matrices = list[Tensor | None]


def soap(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_avg_sq: Tensor, GG: Tensor, Q: Tensor,
    step: float, lr: float, betas: tuple[float, float], shampoo_beta: float | None,
    weight_decay: float, precondition_frequency: int, max_precondition_dim: int,
    merge_dims: bool, precondition_1d: bool, correct_bias: bool, normalize_gradient: bool,
    data_format: str, eps: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SOAP, as pytorch-optimizer 4.1.0's ``SOAP`` computes it (``optimizer/soap.py``). With
    L_i the EMA of the gradient's outer products over every dimension but i, and Q_i its
    eigenbasis (``project``: the tensor multiplied by every Q_i in turn; ``back``: by Q_i^T):

    step 1:  L_i <- lerp(L_i, G_(i) G_(i)^T, 1 - beta_s);  Q_i = eigh(L_i)   (no update)
    step t:  m <- lerp(m, g, 1 - beta1);  v <- lerp(v, project(g)^2, 1 - beta2)
             theta <- theta - lr * sqrt(1 - beta2^(t-1))/(1 - beta1^(t-1))
                              * back(project(m) / (sqrt(v) + eps))
             theta <- theta * (1 - lr*lambda);  L_i <- lerp(L_i, G_(i) G_(i)^T, 1 - beta_s)
             every precondition_frequency steps: Q_i <- QR(L_i Q_i), one power iteration, its
             columns (and v's) sorted by decreasing eigenvalue estimate.
    """
    beta1, beta2 = betas
    beta_s = beta2 if shampoo_beta is None else shampoo_beta
    layout = Layout(p, max_precondition_dim, merge_dims, precondition_1d, data_format)
    stats = layout.matrices(GG)
    if step == 1:  # the first step only gathers statistics and their eigenbases
        stats = accumulated(stats, layout.merged(g), beta_s, g.dim() == 1)
        return p, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "GG": layout.flat(stats, GG),
                   "Q": layout.flat(list(map(eigenbasis, stats)), Q, column_major=True)}
    bases = layout.matrices(Q, column_major=True)
    if maximize:
        g = -g
    t = step - 1
    step_size = lr
    if correct_bias:
        step_size *= math.sqrt(1.0 - math.pow(beta2, t)) / (1.0 - math.pow(beta1, t))
    exp_avg = exp_avg.lerp(g, 1.0 - beta1)
    exp_avg_sq = exp_avg_sq.lerp(layout.project(g, bases).square(), 1.0 - beta2)
    direction = layout.project(layout.project(exp_avg, bases) / (exp_avg_sq.sqrt() + eps),
                               bases, back=True)
    if normalize_gradient:
        direction = direction / (direction.square().mean().sqrt() + eps)
    p = torch.add(p, direction, alpha=-step_size)
    if weight_decay != 0.0:
        p = p * (1.0 - weight_decay * lr)
    stats = accumulated(stats, layout.merged(g), beta_s, g.dim() == 1)
    if t % precondition_frequency == 0:
        bases, exp_avg_sq = refreshed(stats, bases, exp_avg_sq, layout)
    return p, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "GG": layout.flat(stats, GG),
               "Q": layout.flat(bases, Q, column_major=True)}


def accumulated(stats: Matrices, g: Tensor, beta: float, vector: bool) -> Matrices:
    """Each L_i moved towards the outer product of g over every dimension but i."""
    if vector:
        return [None if L is None else L.lerp((g.unsqueeze(1) @ g.unsqueeze(0)).to(L.dtype),
                                               1.0 - beta) for L in stats]
    out: Matrices = []
    for i, L in enumerate(stats):
        rest = [j for j in range(g.dim()) if j != i]
        out.append(None if L is None else L.lerp(
            torch.tensordot(g, g, dims=[rest, rest]).to(L.dtype), 1.0 - beta))
    return out


def eigenbasis(L: Tensor | None) -> Tensor | None:
    """L's eigenvectors by decreasing eigenvalue (L + 1e-30 I: eigh of a zero matrix)."""
    if L is None:
        return None
    eye = torch.eye(L.shape[0], device=L.device, dtype=L.dtype)
    try:
        _, q = torch.linalg.eigh(L + 1e-30 * eye)
    except RuntimeError:  # did not converge: once more in float64, as the package does
        try:
            _, q = torch.linalg.eigh(L.to(torch.float64) + 1e-30 * eye.to(torch.float64))
        except RuntimeError as e:
            raise RuntimeError(
                "SOAP: the eigendecomposition of a preconditioner failed; its statistics hold "
                f"{'NaN or Inf' if not L.isfinite().all() else 'values eigh cannot take'} "
                "(a non-finite gradient? skip_nonfinite=True skips such steps)") from e
        q = q.to(L.dtype)
    return torch.flip(q, dims=[1])


def refreshed(stats: Matrices, bases: Matrices, exp_avg_sq: Tensor,
              layout: Layout) -> tuple[Matrices, Tensor]:
    """One power iteration and a QR (in float32, as the package does) per eigenbasis, columns
    sorted by decreasing eigenvalue estimate diag(Q^T L Q); v's entries follow their columns."""
    v = layout.merged(exp_avg_sq)
    new_bases: Matrices = []
    for i, (L, q) in enumerate(zip(stats, bases, strict=True)):
        if L is None:
            new_bases.append(None)
            continue
        product = L @ q
        order = torch.argsort((q * product).sum(dim=0), descending=True)
        v = v.index_select(i, order)
        power = product.index_select(1, order)
        new_bases.append(torch.linalg.qr(power.to(torch.float32))[0].to(power.dtype))
    return new_bases, layout.unmerged(v, exp_avg_sq.shape)


class Layout:
    """How SOAP sees a parameter: its dimensions after merging small ones (``merge_dims``; a
    4-D channels-last tensor is permuted to channels-first first), which of them it
    preconditions, and where their matrices lie in the flat ``GG`` and ``Q`` buffers."""

    def __init__(self, p: Tensor, max_dim: int, merge_dims: bool, precondition_1d: bool,
                 data_format: str) -> None:
        self.merge = merge_dims and p.dim() > 1  # (a vector is never merged)
        self.permute = self.merge and data_format == "channels_last" and p.dim() == 4
        self.max_dim = max_dim
        if p.dim() == 1:
            self.sizes = [p.shape[0] if precondition_1d and p.shape[0] <= max_dim else None]
        else:
            shape = list(p.shape)
            if self.permute:
                shape = [shape[0], shape[3], shape[1], shape[2]]
            if self.merge:
                shape = merge_small_dims(shape, max_dim)
            self.sizes = [d if d <= max_dim else None for d in shape]

    def numel(self) -> int:
        """The length of the flat buffers."""
        return sum(d * d for d in self.sizes if d is not None)

    def matrices(self, flat: Tensor, column_major: bool = False) -> Matrices:
        """The d x d matrices of the flat buffer, None for dimensions left alone. Copies, not
        views, in the layout the package's matrices have (``column_major`` for eigenbases,
        which eigh and QR return so): BLAS may round a product differently for another layout,
        or for an operand that starts inside another allocation."""
        out: Matrices = []
        offset = 0
        for d in self.sizes:
            if d is None:
                out.append(None)
                continue
            m = flat[offset:offset + d * d].view(d, d).clone()
            out.append(m.mT if column_major else m)
            offset += d * d
        return out

    def flat(self, matrices: Matrices, like: Tensor, column_major: bool = False) -> Tensor:
        """The matrices concatenated into a buffer like ``like`` (``matrices`` undone)."""
        parts = [(m.mT if column_major else m).reshape(-1).to(like.dtype)
                 for m in matrices if m is not None]
        return torch.cat(parts) if parts else like

    def merged(self, t: Tensor) -> Tensor:
        """t (shaped like the parameter) in the merged dimensions."""
        if not self.merge:
            return t
        if self.permute:
            t = t.permute(0, 3, 1, 2)
        return t.reshape(merge_small_dims(t.shape, self.max_dim))

    def unmerged(self, t: Tensor, shape: torch.Size) -> Tensor:
        """``merged`` undone: back to the parameter's ``shape``."""
        if not self.merge:
            return t
        if self.permute:
            return t.reshape(shape[0], shape[3], shape[1], shape[2]).permute(0, 2, 3, 1)
        return t.reshape(shape)

    def project(self, t: Tensor, bases: Matrices, back: bool = False) -> Tensor:
        """t multiplied along each dimension by its eigenbasis (transposed: ``back``); a
        dimension without one is only rotated to the end, as the others are."""
        shape = t.shape
        t = self.merged(t)
        for q in bases:
            if q is None:
                t = t.permute([*range(1, t.dim()), 0])
            else:
                t = torch.tensordot(t, q, dims=[[0], [1 if back else 0]])
        return self.unmerged(t, shape)


def merge_small_dims(shape: Sequence[int], max_dim: int) -> list[int]:
    """pytorch-optimizer's ``merge_small_dims``: consecutive dimensions multiplied together
    while the product stays <= max_dim ([1, 2, 768, 1, 2048] -> [2, 768, 2048] for 1024).
    Where everything merges into one dimension the package returns [1], and then fails to
    reshape the tensor; that dimension is kept whole here."""
    merged, product = [], 1
    for d in shape:
        product *= d
        if product > max_dim:
            merged.append(product // d)
            product = d
    return [*merged, product]


def buffer_length(p: Tensor, group: Mapping[str, Any]) -> tuple[int]:
    """The shape of ``GG`` and ``Q`` for parameter ``p`` of ``group``: one flat dimension."""
    layout = Layout(p, group["max_precondition_dim"], group["merge_dims"],
                    group["precondition_1d"], group["data_format"])
    return (layout.numel(),)
