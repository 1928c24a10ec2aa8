"""SSNM's spatial modulator: the closed form equals the official Adam iteration where the top
eigenvalue is clear, is the top eigenvector with the official sign and norm, batches, and
passes no gradient; the batched Adam is torch.optim.Adam's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmseg.models.ssnm.spatial import (
    SPATIAL_SOLVERS,
    adam_reference,
    barrier_radius,
    similarity_matrix,
    spatial_mask,
    spatial_objective,
)

# Many small solves: on the small shared CPU OpenMP threads waiting for each other make them up
# to 100x slower (a 4 x 490 x 490 eigh took 20 s instead of 0.06 s under load).
pytestmark = pytest.mark.usefixtures("one_thread")


def clustered(groups: int, n: int, h: int = 7, w: int = 7, c: int = 64, seed: int = 0):
    """``(groups, n, c, h, w)`` ReLU features: a quarter of the positions share a prototype
    (a common object: a clear top eigenvalue), the rest independent noise."""
    g = torch.Generator().manual_seed(seed)
    m = n * h * w
    out = []
    for _ in range(groups):
        x = torch.relu(torch.randn(c, m, generator=g))
        proto = torch.relu(torch.randn(c, 1, generator=g))
        shared = torch.rand(m, generator=g) < 0.25
        k = int(shared.sum())
        x[:, shared] = torch.relu(2 * proto + 0.5 * torch.randn(c, k, generator=g))
        out.append(x.reshape(c, n, h, w).permute(1, 0, 2, 3))
    return torch.stack(out)


def noise(groups: int, n: int, h: int = 7, w: int = 7, c: int = 64, seed: int = 0):
    """``(groups, n, c, h, w)`` random ReLU noise: no common object (tiny eigengap)."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(groups, n, c, h, w, generator=g))


def from_columns(columns: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """One group ``(1, n, C, h, w)`` whose descriptor ``img*h*w + y*w + x`` is ``columns[:, i]``."""
    c = columns.shape[0]
    return columns.reshape(c, n, h, w).permute(1, 0, 2, 3).unsqueeze(0)


def cluster_columns(sizes: list[int]) -> torch.Tensor:
    """Columns ``e_k`` repeated ``sizes[k]`` times: G = (same cluster ? 0 : -1)."""
    return torch.cat(
        [torch.eye(len(sizes))[:, k : k + 1].repeat(1, n) for k, n in enumerate(sizes)], 1
    )


def top_eigen_of_clusters(sizes: list[int]) -> tuple[float, np.ndarray]:
    """The top eigenpair of the cluster matrix, by hand: on the orthonormal cluster indicators
    ``1_k / sqrt(n_k)`` G acts as ``S_kl = n_k delta_kl - sqrt(n_k n_l)`` (0 elsewhere)."""
    n = np.asarray(sizes, dtype=np.float64)
    s = np.diag(n) - np.sqrt(np.outer(n, n))
    values, vectors = np.linalg.eigh(s)
    a = vectors[:, -1] / np.sqrt(n)
    v = np.concatenate([np.full(k, a[i]) for i, k in enumerate(sizes)])
    return float(values[-1]), v / np.linalg.norm(v)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1), dim=1)


def test_solvers_are_named():
    assert SPATIAL_SOLVERS == ("eigen", "adam")
    with pytest.raises(ValueError, match="solver"):
        spatial_mask(noise(1, 2), solver="lbfgs")


@pytest.mark.parametrize(("n", "rtol"), [(2, 0.1), (5, 0.01)])
def test_closed_form_equals_adam_where_the_eigengap_is_clear(n, rtol):
    """N = 2: lam < 25, the minimum is phi's kink at ||s|| = 1, around which Adam's norm
    oscillates by a few percent; N = 5: lam > 25, a smooth minimum Adam settles in."""
    features = clustered(3, n, c=128, seed=n)
    values = torch.linalg.eigvalsh(similarity_matrix(features).double())
    assert bool((values[:, -1] - values[:, -2] > 5).all())  # a clear top eigenvalue
    assert bool((values[:, -1] < 25).all() if n == 2 else (values[:, -1] > 25).all())
    eigen = spatial_mask(features)
    adam = spatial_mask(features, solver="adam")
    assert bool((cosine(eigen, adam) >= 0.999).all())
    norms = eigen.flatten(1).norm(dim=1), adam.flatten(1).norm(dim=1)
    assert torch.allclose(norms[0], norms[1], rtol=rtol)
    gram = similarity_matrix(features)  # and the closed form scores at least as well
    assert bool((spatial_objective(gram, eigen) <= spatial_objective(gram, adam) + 1e-4).all())


@pytest.mark.parametrize(
    ("sizes", "shape"),
    [
        ([3, 1], (1, 2, 2)),
        ([6, 2, 1], (1, 3, 3)),
        ([90, 45, 15], (6, 5, 5)),
        ([150, 95], (5, 7, 7)),
    ],
)
def test_closed_form_is_the_top_eigenvector_of_a_hand_built_matrix(sizes, shape):
    """Orthogonal clusters of sizes n_k; M > 128 runs the Lanczos path, and G of rank <= 3
    makes it break down (an invariant subspace) and restart."""
    lam, v = top_eigen_of_clusters(sizes)
    features = from_columns(cluster_columns(sizes), *shape)
    expected = barrier_radius(torch.tensor(lam), 50.0).item() * v * np.sign(v.sum())
    got = spatial_mask(features).flatten().double().numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    gram = similarity_matrix(features)[0].double().numpy()
    np.testing.assert_allclose(gram @ v, lam * v, atol=1e-9)  # the hand-built pair is one


def test_a_repeated_top_eigenvalue_falls_back_to_the_dense_solver():
    """Three equal clusters (M = 150, the Lanczos path): G's top eigenvalue (50) has a 2-D
    eigenspace orthogonal to 1, so Lanczos cannot meet its gap test; the dense solver returns
    a vector of the eigenspace, and its sign is the tie rule's (largest entry positive)."""
    features = from_columns(cluster_columns([50, 50, 50]), 6, 5, 5)
    s = spatial_mask(features).flatten().double()
    r = barrier_radius(torch.tensor(50.0), 50.0).item()
    assert r == pytest.approx(1 + math.sqrt(0.5))
    assert s.norm().item() == pytest.approx(r, rel=1e-5)
    gram = similarity_matrix(features)[0].double()
    torch.testing.assert_close(gram @ s, 50.0 * s, atol=1e-4, rtol=0)
    assert s[s.abs().argmax()] > 0


def test_sign_rule():
    """The sign makes sum(s) > 0 (the side of the all-positive start); with sum 0 (two equal
    unrelated clusters), the entry of largest magnitude (the first on ties) is positive."""
    s = spatial_mask(noise(4, 5, c=32))
    assert bool((s.flatten(1).sum(dim=1) > 0).all())
    tie = spatial_mask(from_columns(cluster_columns([2, 2]), 1, 2, 2)).flatten()
    torch.testing.assert_close(tie, torch.tensor([0.5, 0.5, -0.5, -0.5]))
    tie = spatial_mask(from_columns(cluster_columns([2, 2])[:, [2, 0, 3, 1]], 1, 2, 2))
    torch.testing.assert_close(tie.flatten(), torch.tensor([0.5, -0.5, 0.5, -0.5]))


@pytest.mark.parametrize("barrier", [50.0, 10.0, 1.0])
def test_norm_rule_against_a_brute_force_minimisation(barrier):
    r = torch.linspace(1e-4, 2 - 1e-4, 400_001, dtype=torch.float64)
    phi = torch.where(r < 1, -torch.log(r), -torch.log(2 - r))
    half = barrier / 2
    lams = [-4 * half, -1.5 * half, -half, -0.5 * half, 0.0, 0.3, half, 1.01 * half, 3 * half]
    for lam in lams + [100 * half]:
        f = -lam * r**2 + barrier * phi
        brute = r[f.argmin()].item()
        got = barrier_radius(torch.tensor(lam, dtype=torch.float64), barrier).item()
        assert got == pytest.approx(brute, abs=2e-5), lam
        assert (-lam * got**2 + barrier * (-math.log(got) if got < 1 else -math.log(2 - got))) <= (
            f.min().item() + 1e-9
        )


def test_the_mask_norm_follows_the_top_eigenvalue():
    features = torch.cat([clustered(2, 5, c=64, seed=1), noise(1, 5, c=64)])
    lam = torch.linalg.eigvalsh(similarity_matrix(features).double())[:, -1]
    for barrier in (50.0, 5.0):
        s = spatial_mask(features, barrier=barrier).flatten(1).norm(dim=1).double()
        torch.testing.assert_close(s, barrier_radius(lam, barrier), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="barrier"):
        spatial_mask(features, barrier=0.0)


@pytest.mark.parametrize("solver", SPATIAL_SOLVERS)
def test_batching_equals_per_group_results(solver):
    features = torch.cat([clustered(2, 5, c=48, seed=3), noise(2, 5, c=48, seed=4)])
    batched = spatial_mask(features, solver=solver)
    single = torch.cat([spatial_mask(features[i : i + 1], solver=solver) for i in range(4)])
    # eigen: a batch runs Lanczos until its last group passes, so early groups get more steps
    torch.testing.assert_close(batched, single, atol=2e-5, rtol=0)


@pytest.mark.parametrize("solver", SPATIAL_SOLVERS)
def test_no_gradient_flows(solver):
    features = clustered(1, 2, c=16).requires_grad_(True)
    with torch.enable_grad():
        s = spatial_mask(features, solver=solver, steps=5)
    assert not s.requires_grad and s.grad_fn is None
    assert not similarity_matrix(features).requires_grad


@pytest.mark.parametrize(
    ("groups", "n", "h", "w"), [(1, 2, 7, 7), (2, 5, 3, 5), (1, 20, 7, 7), (3, 2, 1, 9)]
)
def test_shapes(groups, n, h, w):
    features = noise(groups, n, h, w, c=24)
    for solver in SPATIAL_SOLVERS:
        s = spatial_mask(features, solver=solver, steps=3)
        assert s.shape == (groups, n, h, w) and s.dtype == torch.float32
        assert bool(torch.isfinite(s).all())


def test_one_descriptor_and_zero_features():
    """M = 1: G = [[0]], lam = 0, the mask is 1. All-zero features: zero columns stay zero
    (G = -J, lam = 0 with an eigenspace orthogonal to 1): a finite mask of norm 1."""
    one = spatial_mask(torch.rand(1, 1, 8, 1, 1))
    torch.testing.assert_close(one, torch.ones(1, 1, 1, 1))
    zero = spatial_mask(torch.zeros(2, 2, 8, 3, 3))
    assert bool(torch.isfinite(zero).all())
    torch.testing.assert_close(zero.flatten(1).norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_double_precision_inputs(dtype):
    features = clustered(2, 5, c=32, seed=5)
    reference = spatial_mask(features.to(dtype).float())
    s = spatial_mask(features.to(dtype))
    assert s.dtype == torch.float32
    torch.testing.assert_close(s, reference, atol=1e-5, rtol=0)


def test_layout_is_image_then_row_then_column():
    """Descriptor i = img*h*w + y*w + x: the one odd column (a different direction) is found
    where the official reshape puts it."""
    n, h, w = 3, 2, 5
    columns = torch.zeros(2, n * h * w)
    columns[0] = 1.0
    odd = 1 * h * w + 1 * w + 3  # image 1, row 1, column 3
    columns[:, odd] = torch.tensor([0.0, 1.0])
    s = spatial_mask(from_columns(columns, n, h, w))[0]
    assert s[1, 1, 3] < 0 and int(s.argmin()) == odd  # the outlier is the odd one out
    assert bool((s.flatten()[torch.arange(n * h * w) != odd] > 0).all())


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 200])
def test_batched_adam_is_torch_adam(steps):
    """The hand-written batched update equals torch.optim.Adam with autograd on one group, to
    float rounding, after each number of steps."""
    features = clustered(2, 5, c=64, seed=6)
    gram = similarity_matrix(features)
    batched = spatial_mask(features, solver="adam", steps=steps).flatten(1)
    for i in range(2):
        reference = adam_reference(gram[i], steps=steps)
        torch.testing.assert_close(batched[i], reference, atol=2e-6, rtol=0)


def test_adam_on_noise_does_not_reach_the_closed_form():
    """No common object: 200 steps stop far from the top eigenvector, and the closed form
    scores lower (better) on the official objective."""
    features = noise(2, 5, c=128)
    gram = similarity_matrix(features)
    eigen, adam = spatial_mask(features), spatial_mask(features, solver="adam")
    assert bool((cosine(eigen, adam).abs() < 0.9).all())
    assert bool((spatial_objective(gram, eigen) < spatial_objective(gram, adam)).all())


def test_a_shared_object_is_solved_by_lanczos_alone(monkeypatch):
    """M > 128 with a clear top eigenvalue: the Lanczos pair is taken, no dense eigh."""
    import cmseg.models.ssnm.spatial as spatial

    def refuse(x):
        raise AssertionError(f"dense eigh called on {tuple(x.shape)}")

    monkeypatch.setattr(spatial, "_dense_top", refuse)
    features = clustered(3, 10, c=96, seed=9)
    values, vectors = torch.linalg.eigh(similarity_matrix(features.double()))
    v = vectors[:, :, -1] * torch.sign(vectors[:, :, -1].sum(dim=1, keepdim=True))
    assert bool((cosine(spatial_mask(features), v) >= 0.99999).all())


def test_a_near_tie_at_the_top_goes_to_the_dense_solver(monkeypatch):
    """Random noise (top two eigenvalues within 0.1 of each other, out of a spread of ~100):
    finer than Lanczos resolves in 64 dimensions, where it can converge to the second
    eigenvector and look done; those groups, and only those, get the dense eigh."""
    import cmseg.models.ssnm.spatial as spatial

    seen = []
    dense = spatial._dense_top
    monkeypatch.setattr(spatial, "_dense_top", lambda x: seen.append(x.shape[0]) or dense(x))
    features = torch.cat([noise(2, 5, c=128, seed=10), clustered(1, 5, c=128, seed=11)])
    values = torch.linalg.eigvalsh(similarity_matrix(features[:2]).double())
    assert bool((values[:, -1] - values[:, -2] < 0.2).all())
    spatial_mask(features)
    assert seen == [2]


def test_lanczos_matches_a_dense_float64_solver():
    features = torch.cat([clustered(2, 10, c=96, seed=7), noise(2, 10, c=96, seed=8)])
    s = spatial_mask(features).flatten(1).double()
    values, vectors = torch.linalg.eigh(similarity_matrix(features.double()))
    v = vectors[:, :, -1] * torch.sign(vectors[:, :, -1].sum(dim=1, keepdim=True))
    assert bool((cosine(s, v) >= 0.9999).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("solver", SPATIAL_SOLVERS)
def test_cuda_equals_cpu(solver):
    features = torch.cat([clustered(2, 5, c=64), noise(1, 5, c=64)])
    cpu = spatial_mask(features, solver=solver)
    cuda = spatial_mask(features.cuda(), solver=solver)
    assert cuda.device.type == "cuda"
    if solver == "eigen":
        torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0)
    else:  # only the clustered groups converge; noise groups stop at rounding-dependent points
        torch.testing.assert_close(cuda[:2].cpu(), cpu[:2], atol=1e-3, rtol=0)


def test_adam_follows_the_official_loop_at_the_barriers_kink():
    """Where the minimum sits at ||s|| = 1 (no clear eigengap), the first steps depend on
    which side of 1 the start's norm rounds to; the official loop is written out here as its
    model.py does it: an (M, 1) parameter sqrt(M * ones) / M, the loss via its transposed
    view, d = sqrt(sum(s ** 2)), ``if d >= 1``."""
    torch.manual_seed(11)
    feats = torch.rand(1, 5, 32, 7, 7)
    gram = similarity_matrix(feats)[0]
    m = gram.shape[0]
    s = torch.nn.Parameter(torch.sqrt(m * torch.ones((m, 1))) / m)
    s_t = s.transpose(1, 0)
    opt = torch.optim.Adam([s], 0.01)
    for _ in range(200):
        d = torch.sqrt(torch.sum(s**2))
        barrier = -torch.log(2 - d) if d >= 1 else -torch.log(d)
        loss = 50 * barrier - torch.sum(s_t @ gram @ s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ours = spatial_mask(feats, solver="adam").flatten()
    assert torch.allclose(ours, s.data.flatten(), atol=1e-6)
    assert torch.allclose(adam_reference(gram), s.data.flatten(), atol=1e-6)
