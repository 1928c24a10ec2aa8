"""SSNM's spatial modulator: the group's co-object heat map, with no parameters and no gradient.

Per group of N images with top-level maps ``(N, C, h, w)`` (>= 0 after ReLU), the official
code (``spatial_optimize``, reference/ssnm_coseg.md §2.2) stacks the ``M = N h w`` descriptors
as the columns of ``X`` in ``R^{C x M}`` (column ``img*h*w + y*w + x``), L2-normalises every
column, forms ``G = X^T X - 1`` (the cosine similarities minus 1 in every entry: in
``[-1, 0]`` for ReLU features, diagonal 0) and minimises, from ``s0 = 1/sqrt(M)`` in every
entry, with 200 steps of ``torch.optim.Adam(lr=0.01)`` on the CPU,

    L(s) = -s^T G s + b * phi(||s||),   phi(d) = -log(d) for d < 1,  -log(2 - d) for d >= 1,

with ``b = 50``: a relaxed Rayleigh quotient, ``phi`` a log barrier keeping ``||s||`` in
``(0, 2)``. ``s`` reshaped to ``(N, h, w)`` is the mask; it enters the network as a constant.

**Closed form** (``solver="eigen"``, the default). For a fixed norm ``r``, ``-s^T G s`` is
smallest at ``s = r v`` with ``v`` a unit top (largest algebraic) eigenvector of the symmetric
``G``, eigenvalue ``lam``. So the global minimiser is ``r* v`` with ``r*`` the minimiser of
the 1-D objective ``f(r) = -lam r^2 + b phi(r)`` on ``(0, 2)``, ``b > 0``:

* ``r < 1``: ``f'(r) = -2 lam r - b / r``. A zero needs ``lam < 0``: ``r^2 = -b / (2 lam)``,
  which is below 1 iff ``lam < -b/2``; there ``f'' = -2 lam + b / r^2 > 0`` (a minimum).
  Otherwise ``f' < 0`` on all of ``(0, 1)``: ``f`` decreases up to ``r = 1``.
* ``r >= 1``: ``f'(r) = -2 lam r + b / (2 - r)``, zero iff ``2 lam r (2 - r) = b``. Since
  ``r (2 - r) <= 1`` on ``[1, 2)``, there is no zero for ``lam <= b/2`` (``f`` increases from
  ``r = 1``), and for ``lam > b/2`` one zero in ``[1, 2)``, ``r = 1 + sqrt(1 - b / (2 lam))``,
  where ``f'`` changes from negative to positive (``f' -> +inf`` at 2): a minimum.
* ``r = 1`` is the kink of ``phi`` (slopes -1 and +1, so ``f`` has subgradients
  ``[-2 lam - b, -2 lam + b]``, containing 0 iff ``|lam| <= b/2``).

Hence (:func:`barrier_radius`; continuous in ``lam``, 1 at both ends of the middle case)::

    r* = sqrt(-b / (2 lam))           if lam < -b/2
         1                            if -b/2 <= lam <= b/2
         1 + sqrt(1 - b / (2 lam))    if lam > b/2

``trace G = sum_i (||x_i||^2 - 1) = 0`` (no zero column), so ``lam >= 0`` and with ``b = 50``
the first case needs zero columns (a zero column stays zero after normalisation instead of
NaN; its diagonal entry is -1). Real groups reach ``lam > 25``: a shared object's cluster
gives ``lam`` of order of the cluster size.

**Sign.** ``L`` is even in ``s``; gradient flow from ``s0`` scales each eigen-component of
``s`` by a positive factor, so it keeps the sign of ``s0 . v``: the closed form takes the
sign with ``sum(v) > 0``. If ``|cos(v, s0)| <= 1e-5`` (e.g. two equal, unrelated clusters)
Adam's choice depends on rounding; the closed form then makes the entry of largest magnitude
positive (the first on ties). A repeated top eigenvalue has no unique eigenvector (nor an
Adam limit): any unit vector of the eigenspace is returned.

**When the two solvers agree.** Where the top eigenvalue is well separated (``lam1 - lam2``
large: a shared object) Adam converges to ``r* v`` (cosine > 0.9999 in
``benchmarks/bench_ssnm.py``); on groups with no common object (gap ~0.05) 200 steps do not
converge and the closed form scores lower (better) on ``L``. Adam's steps move each entry by
about ``lr``, so its norm moves by up to ``lr sqrt(M)`` per step: for large ``lam`` and large
``M`` (N >= 10 with a strong cluster) it can jump over the barrier at ``||s|| = 2``, where the
official loss is NaN and the iteration diverges (``||s||`` >> 2); ``solver="adam"`` reproduces
that.

**Eigensolver.** Up to ``M = 128`` (N = 2 at 7 x 7), ``torch.linalg.eigh`` on the dense
``G``. Above, Lanczos iterations with full reorthogonalisation, batched over groups and
matrix-free (``G q = X^T (X q) - 1 (1^T q)``: ``G`` is never formed), with a Rayleigh-Ritz
step at k = 8, 16, 24, 32, 48 and 64 dimensions. A group takes the Ritz pair where the Ritz
gap is resolved, ``theta1 - theta2 >= (4/k)^2 (theta1 - theta_min)`` (closer top pairs a
Krylov method does not tell apart: it can converge to the second eigenvector and look done),
and the residual ``||G v - theta1 v||`` is at most ``1e-3 (theta1 - theta2)`` (an angle of
about 1e-3 at most): a shared object passes at 8 dimensions. Groups whose gap is below what
64 dimensions resolve (no common object: the top eigenvalues nearly tie), or not done at 64,
get the dense ``eigh``. Computation is in float32 (float64 for float64
inputs) on the features' device; float32 eigh agrees with float64 to 1 - cos ~ 1e-6.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SPATIAL_SOLVERS",
    "spatial_mask",
    "similarity_matrix",
    "spatial_objective",
    "barrier_radius",
    "adam_reference",
]

SPATIAL_SOLVERS = ("eigen", "adam")

# Adam's defaults, as the official torch.optim.Adam(lr=0.01) uses them.
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
# Dense eigh up to this M (faster on the CPU there), Lanczos above, with Rayleigh-Ritz at these
# subspace sizes k; a Ritz pair is taken where the Ritz gap is resolved at k (see _ritz) and
# the residual is <= _RITZ_TOL * (theta1 - theta2) (bench_ssnm.py measured these choices).
_DENSE_MAX_M = 128
_RITZ_CHECKS = (8, 16, 24, 32, 48, 64)
_RITZ_TOL = 1e-3
_RESOLUTION = 4.0
# |cos(v, s0)| at or below this: the sign of s0 . v is rounding noise.
_SIGN_TIE = 1e-5


def _descriptors(features: Tensor) -> Tensor:
    """``(G, N, C, h, w)`` -> the L2-normalised columns ``X``: ``(G, C, M)``, ``M = N h w``,
    column ``img*h*w + y*w + x``, in float32 (float64 kept). Zero columns stay zero."""
    if features.dim() != 5:
        raise ValueError(f"features must be (G, N, C, h, w), got shape {tuple(features.shape)}")
    g, n, c, h, w = features.shape
    if min(g, n, c, h, w) < 1:
        raise ValueError(f"features must have no empty dimension, got {tuple(features.shape)}")
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    x = features.detach().to(dtype).permute(0, 2, 1, 3, 4).reshape(g, c, n * h * w)
    return F.normalize(x, dim=1, eps=1e-12)


def _gram(x: Tensor) -> Tensor:
    """``X (G, C, M)`` -> ``G = X^T X - 1`` ``(G, M, M)``."""
    return x.transpose(1, 2) @ x - 1.0


def similarity_matrix(features: Tensor) -> Tensor:
    """The official ``G = X^T X - 1`` of every group.

    Args:
        features: ``(G, N, C, h, w)``, any float dtype, any device.

    Returns:
        ``(G, M, M)`` float32 (float64 for float64 input), ``M = N h w``, entries in
        ``[-2, 0]`` (``[-1, 0]`` for features >= 0), symmetric. Detached.
    """
    with torch.no_grad():
        return _gram(_descriptors(features))


def _phi_and_slope(d: Tensor) -> tuple[Tensor, Tensor]:
    """The official barrier ``phi(d)`` and its derivative (the d >= 1 branch at d = 1, as the
    official ``if d < 1`` does; NaN beyond 2, as ``log`` of a negative number)."""
    inside = d < 1
    phi = torch.where(inside, -torch.log(d), -torch.log(2.0 - d))
    slope = torch.where(inside, -1.0 / d, 1.0 / (2.0 - d))
    return phi, slope


def spatial_objective(gram: Tensor, s: Tensor, barrier: float = 50.0) -> Tensor:
    """The official objective ``L(s) = -s^T G s + barrier * phi(||s||)`` (lower is better).

    Args:
        gram: ``(G, M, M)`` from :func:`similarity_matrix`.
        s: ``(G, M)`` or ``(G, N, h, w)`` with ``N h w = M``.

    Returns:
        ``(G,)`` in the dtype of ``gram``; NaN where ``||s|| >= 2`` (as the official loss).
    """
    with torch.no_grad():
        s = s.reshape(s.shape[0], -1).to(gram.dtype)
        quad = (s.unsqueeze(1) @ gram @ s.unsqueeze(2)).reshape(-1)
        phi, _ = _phi_and_slope(s.norm(dim=1))
        return -quad + barrier * phi


def barrier_radius(lam: Tensor, barrier: float = 50.0) -> Tensor:
    """The norm ``r*`` minimising ``-lam r^2 + barrier * phi(r)`` on ``(0, 2)`` (derivation in
    the module docstring): ``sqrt(-b/(2 lam))`` below ``-b/2``, 1 on ``[-b/2, b/2]``,
    ``1 + sqrt(1 - b/(2 lam))`` above ``b/2``; in ``(0, 2)``, same shape and dtype as ``lam``."""
    if not barrier > 0:
        raise ValueError(f"barrier must be > 0, got {barrier}")
    half = barrier / 2.0
    safe = torch.where(lam == 0, torch.ones_like(lam), lam)  # no 0/0 in the unused branches
    low = torch.sqrt((-half / safe).clamp_min(0.0))
    high = 1.0 + torch.sqrt((1.0 - half / safe).clamp_min(0.0))
    one = torch.ones_like(lam)
    return torch.where(lam < -half, low, torch.where(lam > half, high, one))


def _oriented(v: Tensor) -> Tensor:
    """Unit eigenvectors ``(G, M)`` with the sign the all-positive start selects: ``sum > 0``;
    where ``|cos(v, 1)| <= 1e-5``, the entry of largest magnitude positive."""
    m = v.shape[1]
    total = v.sum(dim=1)
    peak = v.gather(1, v.abs().argmax(dim=1, keepdim=True)).squeeze(1)
    key = torch.where(total.abs() > _SIGN_TIE * math.sqrt(m), total, peak)
    return v * torch.where(key < 0, -1.0, 1.0).to(v.dtype).unsqueeze(1)


def _dense_top(x: Tensor) -> tuple[Tensor, Tensor]:
    """Top eigenpair of the dense ``G`` by ``torch.linalg.eigh``: ``(lam (G,), v (G, M))``."""
    values, vectors = torch.linalg.eigh(_gram(x))
    return values[:, -1], vectors[:, :, -1]


def _apply_gram(x: Tensor, q: Tensor) -> Tensor:
    """``G q`` without forming ``G``: ``X^T (X q) - 1 (1^T q)``; ``q (G, M, k)``."""
    return torch.baddbmm(q.sum(dim=1, keepdim=True), x.transpose(1, 2), x @ q, beta=-1)


def _next_basis_vector(basis: Tensor, w: Tensor, spare: Tensor) -> Tensor:
    """``w (G, M, 1)`` orthogonalised against ``basis (G, M, j)`` (twice: full reorthogonalisation)
    and normalised; where ``w`` lies in the span (an invariant subspace), ``spare`` instead."""

    def orthogonalise(u: Tensor) -> Tensor:
        for _ in range(2):
            u = torch.baddbmm(u, basis, basis.transpose(1, 2) @ u, alpha=-1)
        return u

    tiny = torch.finfo(w.dtype).tiny
    scale = w.norm(dim=1, keepdim=True)
    w = orthogonalise(w)
    norm = w.norm(dim=1, keepdim=True)
    broken = norm <= 1e-4 * scale.clamp_min(tiny)
    if bool(broken.any()):
        w = torch.where(broken, orthogonalise(spare.expand_as(w)), w)
        norm = w.norm(dim=1, keepdim=True)
    return w / norm.clamp_min(tiny)


def _resolved_gap(k: int) -> float:
    """The smallest ``(theta1 - theta2) / (theta1 - theta_min)`` trusted at ``k`` dimensions:
    ``(4 / k)^2``. After k steps Lanczos amplifies the top eigenvector over one at a relative
    distance ``delta`` by about ``cosh(2 k sqrt(delta))`` (Chebyshev), about 1e3 at this
    ``delta``: closer top pairs are not told apart (it may converge to the second one and look
    done), so those groups go to the dense solver."""
    return (_RESOLUTION / k) ** 2


def _ritz(basis: Tensor, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rayleigh-Ritz on ``basis`` (orthonormal ``(G, M, k)``) with ``image = G basis``:
    ``(theta1 (G,), v (G, M), relative Ritz gap (G,), converged (G,) bool)``, converged where
    the residual ``||G v - theta1 v||`` is at most ``1e-3 (theta1 - theta2)``."""
    t = basis.transpose(1, 2) @ image
    theta, y = torch.linalg.eigh((t + t.transpose(1, 2)) / 2)
    top = y[:, :, -1:]
    v = (basis @ top).squeeze(2)
    residual = ((image @ top).squeeze(2) - theta[:, -1:] * v).norm(dim=1)
    gap = theta[:, -1] - theta[:, -2]
    spread = (theta[:, -1] - theta[:, 0]).clamp_min(torch.finfo(theta.dtype).tiny)
    return theta[:, -1], v, gap / spread, residual <= _RITZ_TOL * gap


def _top_eigenpair(x: Tensor) -> tuple[Tensor, Tensor]:
    """Top (largest algebraic) eigenpair of every group's ``G = X^T X - 1``.

    Args:
        x: ``(G, C, M)`` L2-normalised columns.

    Returns:
        ``(lam (G,), v (G, M))``, ``v`` of unit norm, sign not yet chosen.
    """
    groups, _, m = x.shape
    last = _RITZ_CHECKS[-1]
    if m <= max(_DENSE_MAX_M, last):
        return _dense_top(x)
    # A fixed start near the all-ones s0 (not on it: a top eigenvector orthogonal to 1 must
    # still be reachable) and fixed spare vectors for breakdowns; the same on every device.
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(last + 1, m, generator=gen, dtype=torch.float64) - 0.5
    noise = noise.to(device=x.device, dtype=x.dtype)
    basis = x.new_zeros(groups, m, last)
    image = x.new_zeros(groups, m, last)
    basis[:, :, 0] = F.normalize(1.0 + noise[0], dim=0)
    # Each group keeps the Ritz pair of the first check it passes, or gives up, from its own
    # Ritz values: its result does not depend on the other groups of the batch.
    lam, v = x.new_zeros(groups), x.new_zeros(groups, m)
    found = torch.zeros(groups, dtype=torch.bool, device=x.device)
    resolved = found.clone()
    for j in range(last):
        image[:, :, j : j + 1] = _apply_gram(x, basis[:, :, j : j + 1])
        if j + 1 in _RITZ_CHECKS:
            lam_j, v_j, gap, converged = _ritz(basis[:, :, : j + 1], image[:, :, : j + 1])
            take = (gap >= _resolved_gap(j + 1)) & converged & ~resolved
            lam, v = torch.where(take, lam_j, lam), torch.where(take.unsqueeze(1), v_j, v)
            found |= take
            # a gap below what the last check resolves will not pass (no common object)
            resolved |= take | (gap < _resolved_gap(last))
            if bool(resolved.all()):
                break
        if j + 1 < last:
            w = image[:, :, j : j + 1]
            spare = noise[j + 1].unsqueeze(1)
            basis[:, :, j + 1 : j + 2] = _next_basis_vector(basis[:, :, : j + 1], w, spare)
    rest = (~found).nonzero().squeeze(1)
    if rest.numel() == 0:
        return lam, v
    lam_rest, v_rest = _dense_top(x[rest])
    return lam.index_copy(0, rest, lam_rest), v.index_copy(0, rest, v_rest)


def _eigen_solve(x: Tensor, barrier: float) -> Tensor:
    """The closed form ``r*(lam) v`` of every group: ``(G, M)``."""
    lam, v = _top_eigenpair(x)
    v = _oriented(F.normalize(v, dim=1))
    return barrier_radius(lam, barrier).unsqueeze(1) * v


def _official_start(groups: int, m: int, like: Tensor) -> Tensor:
    """The official start ``sqrt(M * ones) / M`` (``(groups, M)``): 1/sqrt(M) rounded as the
    official expression rounds it."""
    start = torch.sqrt(torch.full((), float(m), dtype=like.dtype, device=like.device)) / m
    return start.expand(groups, m).clone()


def _adam_solve(gram: Tensor, steps: int, lr: float, barrier: float) -> Tensor:
    """The official Adam iteration, batched over groups, its gradient written out:
    ``dL/ds = -2 G s + b phi'(||s||) s / ||s||``; the updates are ``torch.optim.Adam``'s
    (single-tensor path, no weight decay, no amsgrad). ``gram (G, M, M)`` -> ``s (G, M)``."""
    groups, m, _ = gram.shape
    s = _official_start(groups, m, gram)
    exp_avg = torch.zeros_like(s)
    exp_avg_sq = torch.zeros_like(s)
    for step in range(1, steps + 1):
        # sqrt(sum(s^2)) as the official code writes it: at the start ||s|| is 1 up to float
        # rounding, and which side of 1 it rounds to picks the barrier's branch (the kink),
        # which decides the sign of the first steps; torch.norm rounds differently.
        d = (s * s).sum(dim=1, keepdim=True).sqrt()
        _, slope = _phi_and_slope(d)
        grad = (barrier * slope / d) * s - 2.0 * (gram @ s.unsqueeze(2)).squeeze(2)
        exp_avg.lerp_(grad, 1 - _BETA1)
        exp_avg_sq.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
        step_size = lr / (1 - _BETA1**step)
        denom = (exp_avg_sq.sqrt() / (1 - _BETA2**step) ** 0.5).add_(_EPS)
        s.addcdiv_(exp_avg, denom, value=-step_size)
    return s


def adam_reference(
    gram: Tensor, *, steps: int = 200, lr: float = 0.01, barrier: float = 50.0
) -> Tensor:
    """One group solved as the official code does: ``torch.optim.Adam`` on a leaf ``s`` with
    autograd through ``L`` (``if d < 1`` in Python), one group at a time. For tests and the
    benchmark (the reference :func:`spatial_mask`'s ``"adam"`` reproduces); slow.

    Args:
        gram: ``(M, M)`` one group's ``G``.

    Returns:
        ``s`` ``(M,)``, detached, in ``gram``'s dtype.
    """
    gram = gram.detach()
    m = gram.shape[0]
    s = _official_start(1, m, gram)[0].requires_grad_(True)
    optimizer = torch.optim.Adam([s], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            d = torch.sqrt(torch.sum(s**2))
            phi = -torch.log(d) if d < 1 else -torch.log(2 - d)
            loss = -(s @ gram @ s) + barrier * phi
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return s.detach()


def spatial_mask(
    features: Tensor,
    *,
    solver: str = "eigen",
    steps: int = 200,
    lr: float = 0.01,
    barrier: float = 50.0,
) -> Tensor:
    """The spatial mask of every group.

    Args:
        features: ``(G, N, C, h, w)``: G groups of N images' top-level maps (>= 0 after ReLU
            in SSNM), any float dtype (half precision is computed in float32), any device.
        solver: ``"eigen"`` (closed form, default) or ``"adam"`` (the official iteration);
            :data:`SPATIAL_SOLVERS`.
        steps, lr: the Adam iteration's (``"adam"`` only; official 200 and 0.01).
        barrier: the barrier weight ``b`` (official 50).

    Returns:
        ``(G, N, h, w)`` float32 on the features' device, detached (no gradient flows, as in
        the official ``.data``): signed entries, ``||mask||`` per group in ``(0, 2)`` for
        ``"eigen"`` (for ``"adam"`` wherever the iteration stays inside the barrier).
    """
    if solver not in SPATIAL_SOLVERS:
        raise ValueError(f"solver must be one of {SPATIAL_SOLVERS}, got {solver!r}")
    if not barrier > 0:
        raise ValueError(f"barrier must be > 0, got {barrier}")
    if steps < 0 or not lr > 0:
        raise ValueError(f"steps must be >= 0 and lr > 0, got steps={steps}, lr={lr}")
    with torch.no_grad():
        x = _descriptors(features)
        if solver == "eigen":
            s = _eigen_solve(x, barrier)
        else:
            s = _adam_solve(_gram(x), steps, lr, barrier)
    g, n, _, h, w = features.shape
    return s.reshape(g, n, h, w).to(torch.float32)
