"""The Fréchet distance against float64 references: scipy's sqrtm, high-precision mpmath, and the FAD functions of
frechet-audio-distance and fadtk, on random, rank-deficient and real (fadtk FMA-Pop) covariances."""
import random, warnings
from pathlib import Path
import numpy as np, pytest, scipy.linalg, torch
from fad_pytorch.stats import Stats, frechet_distance, stats_to_fad, trace_sqrt_product
from fad_pytorch.embdir import dir_to_stats, load_stats, save_embeddings, emb_path


def scipy_fad(mu1, s1, mu2, s2):
    "The classic float64 reference (pytorch-fid / frechet-audio-distance): scipy sqrtm of Σ1·Σ2, real part"
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    assert np.abs(np.imag(covmean)).max() < 1e-3 * np.abs(covmean).max()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


def random_set(n, d, seed, scale=1.0):
    "Embeddings with a well-conditioned, non-diagonal covariance (condition number ~ 10)"
    g = np.random.default_rng(seed)
    q, _ = np.linalg.qr(g.standard_normal((d, d)))
    a = q * np.linspace(1, 10 ** .5, d)
    return g.standard_normal((n, d)) @ a.T * scale + g.standard_normal(d)


@pytest.mark.parametrize('d', [16, 128, 512, 2048])
def test_matches_scipy_well_conditioned(d):
    # tolerance 1e-9 relative: both are float64 with backward-stable steps; the observed gap is ~1e-13
    x1, x2 = random_set(3 * d, d, 1), random_set(3 * d, d, 2, scale=1.3)
    mu1, s1, mu2, s2 = x1.mean(0), np.cov(x1.T), x2.mean(0), np.cov(x2.T)
    ref = scipy_fad(mu1, s1, mu2, s2)
    ours = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2), torch.from_numpy(s2))
    assert abs(ours['fad'] - ref) <= 1e-9 * abs(ref), (ours['fad'], ref)
    assert abs(ours['fad'] - ours['mean_term'] - ours['trace_term']) <= 1e-12 * ours['fad']


@pytest.mark.parametrize('d', [128, 2048])
def test_self_distance_is_zero(d):
    x = random_set(2 * d, d, 3)
    mu, s = torch.from_numpy(x.mean(0)), torch.from_numpy(np.cov(x.T))
    r = frechet_distance(mu, s, mu, s)
    assert 0 <= r['fad'] < 1e-9, r
    # singular covariance too (n < dim)
    y = random_set(d // 4, d, 4)
    mu, s = torch.from_numpy(y.mean(0)), torch.from_numpy(np.cov(y.T))
    assert 0 <= frechet_distance(mu, s, mu, s)['fad'] < 1e-9


def mp_trace_sqrt(x1, x2, dps=40):
    "Tr √(Σ1Σ2) in 40-digit arithmetic, covariances included: eigenvalues of √Σ1·Σ2·√Σ1 with mpmath"
    import mpmath as mp
    mp.mp.dps = dps
    def cov(x):
        X = mp.matrix(x.tolist()); n, d = X.rows, X.cols
        mu = [sum(X[i, j] for i in range(n)) / n for j in range(d)]
        C = mp.matrix(n, d)
        for i in range(n):
            for j in range(d): C[i, j] = X[i, j] - mu[j]
        return C.T * C / (n - 1)
    A, B = cov(x1), cov(x2)
    e, q = mp.eigsy(A)
    r = q * mp.diag([mp.sqrt(max(v, 0)) for v in e]) * q.T
    ev, _ = mp.eigsy(r * B * r)
    return float(sum(mp.sqrt(max(v, 0)) for v in ev))


@pytest.mark.parametrize('n1,n2', [(10, 200), (10, 12), (200, 200)])
def test_rank_deficient_against_high_precision(n1, n2):
    # ground truth: covariances and Tr√(Σ1Σ2) in 40-digit arithmetic from the same float64 data, so a singular
    # covariance (n < dim = 24) is exactly singular there; float64 covariances carry rounding-level eigenvalues
    # instead, whose square roots a naive method would add up (~1e-7 here)
    d = 24
    x1, x2 = random_set(n1, d, 5), random_set(n2, d, 6)
    s1, s2 = np.cov(x1.T), np.cov(x2.T)
    truth = mp_trace_sqrt(x1, x2)
    ours = float(trace_sqrt_product(torch.from_numpy(s1), torch.from_numpy(s2)))
    # 1e-9 relative: float64 rounding of the covariance and of our steps, far below any meaningful FAD difference
    assert abs(ours - truth) <= 1e-9 * truth, (ours, truth)
    swapped = float(trace_sqrt_product(torch.from_numpy(s2), torch.from_numpy(s1)))
    assert abs(swapped - truth) <= 1e-9 * truth


def test_rank_deficient_warns_and_is_finite():
    s1, s2 = Stats(64).add(torch.from_numpy(random_set(20, 64, 7))), Stats(64).add(torch.from_numpy(random_set(500, 64, 8)))
    with pytest.warns(UserWarning, match='n=20 embeddings for dim=64'):
        r = stats_to_fad(s1, s2)
    assert np.isfinite(r['fad']) and r['fad'] > 0
    ref = scipy_fad(s1.mu.numpy(), s1.sigma.numpy(), s2.mu.numpy(), s2.sigma.numpy())
    assert abs(r['fad'] - ref) <= 1e-6 * ref    # scipy's sqrtm is itself less accurate on singular products


@pytest.fixture(scope='module')
def fma_pop():
    "Real covariances of real models: fadtk's FMA-Pop reference statistics"
    fadtk = pytest.importorskip('fadtk')
    p = Path(fadtk.__file__).parent / 'stats' / 'fma_pop.npz'
    assert p.exists(), f"{p} missing: the reference env is incomplete"
    return p


@pytest.mark.parametrize('a,b', [('clap-laion-audio', 'clap-laion-music'), ('MERT-v1-95M-5', 'MERT-v1-95M-6'),
                                 ('vggish', 'encodec-emb')])
def test_real_covariances_against_scipy_and_reference_tools(fma_pop, a, b):
    mu1, s1, _, _ = load_stats(fma_pop, key=a)
    mu2, s2, _, _ = load_stats(fma_pop, key=b)
    ours = frechet_distance(mu1, s1, mu2, s2)['fad']
    ref = scipy_fad(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    assert abs(ours - ref) <= 1e-9 * abs(ref), (ours, ref)
    from fadtk.fad import calc_frechet_distance
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ft = calc_frechet_distance(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    # fadtk takes the eigendecomposition of the non-symmetric product: agreement at 1e-6 relative reflects its accuracy
    assert abs(ours - ft) <= 1e-6 * abs(ft), (ours, ft)
    assert frechet_distance(mu1, s1, mu1, s1)['fad'] < 1e-9


def test_streaming_equals_one_shot_and_order_free(tmp_path):
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randn(random.Random(i).randint(1, 40), 32, generator=g) * 2 + 5 for i in range(30)]
    allx = torch.cat(blocks).double()
    for i, b in enumerate(blocks): save_embeddings(emb_path(tmp_path / 'e', f'{i:03d}.wav'), b, torch.zeros(len(b)), {}, 'x')
    s, _, _ = dir_to_stats(tmp_path / 'e')
    assert s.n == len(allx)
    np.testing.assert_allclose(s.mu.numpy(), allx.mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(s.sigma.numpy(), np.cov(allx.numpy().T), rtol=1e-10, atol=1e-12)
    # merging shards in any grouping and order gives the same statistics
    shards = [Stats(32).add(b) for b in blocks]
    random.Random(1).shuffle(shards)
    merged = shards[0]
    for o in shards[1:]: merged = merged + o
    np.testing.assert_allclose(merged.sigma.numpy(), s.sigma.numpy(), rtol=1e-12, atol=1e-13)
    ref = Stats(32).add(torch.randn(500, 32, generator=g))
    f1, f2 = stats_to_fad(ref, s)['fad'], stats_to_fad(ref, merged)['fad']
    assert abs(f1 - f2) <= 1e-12 * f1
