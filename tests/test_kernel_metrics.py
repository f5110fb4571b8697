"""KAD, KID and precision/recall against the reference tools on the same feature matrices: kadtk 1.1.0
(`calc_kernel_audio_distance`, `median_pairwise_distance`) and torch-fidelity 0.4.0 (`kid_features_to_metric`, its
`mmd2` for the three estimators, `prc_features_to_metric`); exact tie handling; memory bounded by the tiles.

Precision of the references (read from their code):
- kadtk computes the kernel matrices in `precision` (default float32; float64 when asked) but its
  `median_pairwise_distance` always casts to float32 (`torch.pdist` in float32, lower median);
- torch-fidelity's KID runs in NumPy at the input's dtype; its precision/recall uses `torch.cdist` at the input's
  dtype and returns float32 means (`.float().mean()`).
We compute in float64 throughout, so the equality tests run the references at float64 (float64 input, kadtk's
`precision=torch.float64`), and the gap to their float32 paths is asserted separately with its own stated bound."""
import functools, json, subprocess, sys, textwrap, warnings
import numpy as np, pytest, torch
import torch_fidelity.metric_kid as tf_kid
import torch_fidelity.metric_prc as tf_prc
with warnings.catch_warnings():   # kadtk.kad calls warnings.filterwarnings("ignore") at import: keep that local
    import kadtk.kad as kadtk_kad
from fad_pytorch.kernel import KADSettings, KIDSettings, kad, kid, median_pairwise_distance
from fad_pytorch.prc import PRCSettings, knn_radii, precision_recall

SHAPES = [(300, 300, 16), (500, 400, 64), (800, 700, 512)]   # (n_ref, n_eval, dim)
DTYPES = [torch.float32, torch.float64]


def rel(a, b): return abs(a - b) / abs(b)


def feature_sets(n_ref, n_eval, dim, dtype, seed=0):
    "Two Gaussian sets with a small shift and scale difference, an offset from the origin, in `dtype`"
    g = torch.Generator().manual_seed(seed + dim)
    ref = torch.randn(n_ref, dim, generator=g, dtype=torch.float64) * 2 + 1
    ev = torch.randn(n_eval, dim, generator=g, dtype=torch.float64) * 2.1 + 1.05
    return ref.to(dtype), ev.to(dtype)


def pdist_median64(x):
    "kadtk's median_pairwise_distance at float64: torch.median (lower median) of torch.pdist"
    return torch.median(torch.pdist(x.double())).item()


def kadtk(ref, ev, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return kadtk_kad.calc_kernel_audio_distance(ref, ev, (None, None), 'cpu', **kw).item()


def kadtk_median(x):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # it calls torch.tensor() on a tensor
        return kadtk_kad.median_pairwise_distance(x)


# ---------------------------------------------------------------- median pairwise distance
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('n_ref,n_eval,dim', SHAPES)
def test_median_matches_kadtk(n_ref, n_eval, dim, dtype):
    x, _ = feature_sets(n_ref, n_eval, dim, dtype)
    ours = median_pairwise_distance(x)
    assert (ours.n_rows, ours.subsampled) == (n_ref, False)
    # 1e-12: both float64; our product form after centring vs pdist's differences (observed ≤ 4e-16)
    assert rel(ours.distance, pdist_median64(x)) <= 1e-12
    # 1e-6: kadtk's own function casts to float32, so each of its distances carries float32 rounding (observed ≤ 6e-8)
    assert rel(ours.distance, kadtk_median(x)) <= 1e-6


@pytest.mark.parametrize('n', [150, 152])   # 11175 pairs (odd) and 11476 (even: the lower middle value)
@pytest.mark.parametrize('dtype', DTYPES)
def test_median_ties_select_the_same_element(n, dtype):
    # integers far from the origin (2²⁰ + 0..2, exact in float32 too): every squared distance is an exact small integer
    # in float32 and float64 alike, with massive ties; our centre must be subtracted exactly to keep them exact
    x = (torch.randint(0, 3, (n, 4), generator=torch.Generator().manual_seed(n)) + 2 ** 20).to(dtype)
    ours = median_pairwise_distance(x, block=37).distance
    assert ours == pdist_median64(x)   # the same element, bit for bit
    theirs = kadtk_median(x)
    assert round(ours ** 2) == round(theirs ** 2)   # kadtk selects the same squared distance ...
    assert rel(ours, theirs) <= 2 ** -24   # ... whose float32 square root differs by its rounding only


def test_median_far_from_origin():
    # a common offset 1000× the spread: the product form would lose ~6 digits without centring
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 32, generator=g, dtype=torch.float64) + 1000
    assert rel(median_pairwise_distance(x).distance, pdist_median64(x)) <= 1e-12


# ---------------------------------------------------------------- KAD against kadtk
@pytest.mark.parametrize('kernel', ['gaussian', 'iq', 'imq'])
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('n_ref,n_eval,dim', SHAPES)
def test_kad_matches_kadtk(n_ref, n_eval, dim, dtype, kernel):
    ref, ev = feature_sets(n_ref, n_eval, dim, dtype)
    # our default: bandwidth from the reference set; kadtk given that median explicitly, at float64.
    # 1e-6 relative (observed ≤ 5e-12): both float64, the sums in a different order
    ours = kad(ref, ev, KADSettings(kernel=kernel))
    assert ours['kad_bandwidth_from'] == 'reference' and ours['kad_median_n'] == n_ref
    assert rel(ours['kad'], kadtk(ref, ev, bandwidth=pdist_median64(ref), kernel=kernel, precision=torch.float64)) <= 1e-6
    # kadtk 1.1.0's own code path: bandwidth=None takes the eval set's median (its issue #9), in float32.
    # 1e-6 relative (observed ≤ 5.2e-7): its float32 median moves σ by ≤ 3e-8, which moves KAD up to ~20× that
    ours_eval = kad(ref, ev, KADSettings(kernel=kernel, bandwidth_from='eval'))
    assert ours_eval['kad_bandwidth_from'] == 'eval' and ours_eval['kad_median_n'] == n_eval
    assert rel(ours_eval['kad'], kadtk(ref, ev, kernel=kernel, precision=torch.float64)) <= 1e-6
    # ... and with that median at float64, the same path agrees to float64 rounding (observed ≤ 4e-12)
    assert rel(ours_eval['kad'], kadtk(ref, ev, bandwidth=pdist_median64(ev), kernel=kernel, precision=torch.float64)) <= 1e-9
    # an explicit bandwidth is used as given (0.8 × the reference median: a different kernel, same scale)
    bw = 0.8 * pdist_median64(ref)
    fixed = kad(ref, ev, KADSettings(kernel=kernel, bandwidth=bw))
    assert fixed['kad_bandwidth_from'] == 'explicit' and fixed['kad_median_n'] is None and fixed['kad_bandwidth'] == bw
    assert rel(fixed['kad'], kadtk(ref, ev, bandwidth=bw, kernel=kernel, precision=torch.float64)) <= 1e-6
    # the float32 gap: kadtk's default precision sums ~n² float32 kernel values whose difference is ~1e-3 of them,
    # which costs it 3-4 digits (observed up to 2.3e-3 relative); bound 5e-3
    assert rel(ours['kad'], kadtk(ref, ev, bandwidth=pdist_median64(ref), kernel=kernel)) <= 5e-3


def test_kad_tiny_scale_keeps_kadtks_epsilon():
    # γ = 1/(2σ² + 1e-8): at features ~1e-5 the 1e-8 is comparable to 2σ² and changes KAD by tens of percent;
    # kadtk's guard is part of its definition, so we must agree there too (1e-6 relative, observed ~1e-12)
    ref, ev = feature_sets(300, 250, 8, torch.float64, seed=6)
    ref, ev = ref * 1e-5, ev * 1e-5
    ours = kad(ref, ev)
    assert rel(ours['kad'], kadtk(ref, ev, bandwidth=pdist_median64(ref), precision=torch.float64)) <= 1e-6
    sigma = ours['kad_bandwidth']
    assert 0.1 < 1e-8 / (2 * sigma ** 2) < 10   # the guard matters at this scale


# ---------------------------------------------------------------- KID against torch-fidelity
KID_CASES = [(300, 350, 16, 10, 100), (500, 400, 64, 10, 200), (1200, 1100, 512, 5, 1000)]   # + subsets, subset size


def tf_kid_metric(ref, ev, est, **kw):
    "torch-fidelity's kid_features_to_metric (features_1 = generated = eval) with its mmd2 set to estimator `est`"
    orig = tf_kid.mmd2
    tf_kid.mmd2 = functools.partial(orig, mmd_est=est)   # kernel_mmd hard-codes the default estimator
    try: r = tf_kid.kid_features_to_metric(ev, ref, verbose=False, **kw)
    finally: tf_kid.mmd2 = orig
    return r[tf_kid.KEY_METRIC_KID_MEAN], r[tf_kid.KEY_METRIC_KID_STD]


@pytest.mark.parametrize('estimator', ['unbiased', 'biased', 'u-statistic'])
@pytest.mark.parametrize('kernel', ['poly', 'rbf'])
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('n_ref,n_eval,dim,subsets,size', KID_CASES)
def test_kid_matches_torch_fidelity(n_ref, n_eval, dim, subsets, size, dtype, kernel, estimator):
    ref, ev = feature_sets(n_ref, n_eval, dim, dtype, seed=1)
    kw = dict(kid_subsets=subsets, kid_subset_size=size, kid_kernel=kernel, rng_seed=2020)
    ours = kid(ref, ev, KIDSettings(subsets=subsets, subset_size=size, kernel=kernel, estimator=estimator))
    mean64, std64 = tf_kid_metric(ref.double(), ev.double(), estimator, **kw)
    # 1e-6 relative, mean and std (observed: poly ≤ 1e-12; RBF ≤ 1e-11 on the mean and ≤ 4e-9 on the std, at dim 512
    # where exp(−d²/200) ~ 1e-9 and the estimate ~1e-9 is what is left after cancelling sums of such values): both
    # float64, the same subsets
    assert rel(ours['kid_mean'], mean64) <= 1e-6 and rel(ours['kid_std'], std64) <= 1e-6
    if dtype == torch.float32:
        # the float32 gap: torch-fidelity then computes in float32 NumPy (observed ≤ 7e-6 relative on the mean)
        mean32, _ = tf_kid_metric(ref, ev, estimator, **kw)
        assert rel(ours['kid_mean'], mean32) <= 1e-4


def test_kid_defaults_match_torch_fidelity():
    # torch-fidelity's defaults: 100 subsets of 1000, poly kernel of degree 3, γ = 1/dim, seed 2020, unbiased
    ref, ev = feature_sets(1300, 1100, 64, torch.float64, seed=2)
    ours = kid(ref, ev)
    r = tf_kid.kid_features_to_metric(ev, ref, verbose=False)
    assert (ours['kid_subsets'], ours['kid_subset_size'], ours['kid_seed'], ours['kid_gamma']) == (100, 1000, 2020, 1 / 64)
    assert rel(ours['kid_mean'], r[tf_kid.KEY_METRIC_KID_MEAN]) <= 1e-6   # observed ~1e-14
    assert rel(ours['kid_std'], r[tf_kid.KEY_METRIC_KID_STD]) <= 1e-6
    # a different seed draws different subsets: the number moves (so the seed is really used)
    assert kid(ref, ev, KIDSettings(subsets=2))['kid_mean'] != kid(ref, ev, KIDSettings(subsets=2, seed=1))['kid_mean']


def test_kid_small_set_is_a_clear_error():
    ref, ev = feature_sets(1200, 800, 16, torch.float32)
    with pytest.raises(ValueError, match=r"the reference set has 1200 and the eval set 800: choose a subset size of at most 800 \(--kid-subset-size\)"):
        kid(ref, ev)


# ---------------------------------------------------------------- precision / recall against torch-fidelity
def tf_prc_counts(ref, ev):
    "torch-fidelity's prc_features_to_metric (features_1 = generated = eval): precision and recall as row counts"
    r = tf_prc.prc_features_to_metric(ev, ref, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    # its float32 mean of n booleans is count/n rounded to float32: the count is recovered exactly (n < 2²³)
    return round(r['precision'] * len(ev)), round(r['recall'] * len(ref)), r['f_score']


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('n_ref,n_eval,dim', SHAPES)
def test_prc_matches_torch_fidelity(n_ref, n_eval, dim, dtype):
    ref, ev = feature_sets(n_ref, n_eval, dim, dtype, seed=3)
    ours = precision_recall(ref, ev, PRCSettings(block=512))
    counts = round(ours['precision'] * n_eval), round(ours['recall'] * n_ref)
    assert 0 < counts[0] < n_eval and 0 < counts[1] < n_ref   # a non-trivial case
    p64, r64, f64 = tf_prc_counts(ref.double(), ev.double())
    # the same points inside the same balls: counts equal exactly (both float64); the F-score differs only by
    # torch-fidelity's float32 means (≤ 2⁻²⁴ relative each), bound 1e-6
    assert counts == (p64, r64)
    assert rel(ours['f_score'], f64) <= 1e-6
    if dtype == torch.float32:
        # torch-fidelity at float32 ranks float32 distances (~1e-7 relative): a point that close to a ball's
        # boundary could flip; none do here (observed 0), at most one per set allowed
        p32, r32, _ = tf_prc_counts(ref, ev)
        assert abs(counts[0] - p32) <= 1 and abs(counts[1] - r32) <= 1


@pytest.mark.parametrize('dtype', DTYPES)
def test_prc_exact_ties(dtype):
    # integer points on a small grid, with eval sharing rows with the reference: exact duplicates, radii that equal
    # distances to other points, points exactly on ball boundaries. Both computations are exact here, in float32 too
    g = torch.Generator().manual_seed(4)
    ref = torch.randint(0, 4, (400, 3), generator=g).to(dtype)
    ev = torch.cat([ref[:100], torch.randint(-1, 5, (250, 3), generator=g).to(dtype)])
    ours = precision_recall(ref, ev, PRCSettings(block=64))
    p, r, _ = tf_prc_counts(ref, ev)
    assert (round(ours['precision'] * len(ev)), round(ours['recall'] * len(ref))) == (p, r)
    assert p < len(ev)   # some points outside every ball, so the boundary test matters
    for x in (ref, ev):   # the k-th neighbour radii are the same elements: equal at float64, the same squares at float32
        ours = knn_radii(x.double(), 3, 64)
        assert torch.equal(ours, torch.cdist(x.double(), x.double()).kthvalue(4).values)
        assert torch.equal(ours.square().round(), torch.cdist(x, x).kthvalue(4).values.double().square().round())


@pytest.mark.parametrize('dtype', DTYPES)
def test_knn_radii_match_cdist(dtype):
    ref, _ = feature_sets(700, 10, 64, dtype, seed=5)
    ours = knn_radii(ref.double(), 3, 256)
    want64 = torch.cdist(ref.double(), ref.double()).kthvalue(4).values
    assert ((ours - want64).abs() / want64).max() <= 1e-12   # float64 both; product forms, different sums
    want = torch.cdist(ref, ref).kthvalue(4).values.double()   # torch-fidelity's radii at the input's dtype
    assert ((ours - want).abs() / want).max() <= (1e-12 if dtype == torch.float64 else 1e-5)   # float32: its rounding


# ---------------------------------------------------------------- memory
MEMORY_RUN = textwrap.dedent('''
    import json, sys, torch
    from fad_pytorch.kernel import kad, KADSettings
    n, dim, block = map(int, sys.argv[1:4])
    g = torch.Generator().manual_seed(0)
    ref, ev = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) * 1.1
    def status_kb(key):   # VmHWM is this process's own peak (ru_maxrss would carry pytest's peak across exec)
        with open('/proc/self/status') as f: return next(int(l.split()[1]) for l in f if l.startswith(key + ':'))
    before = status_kb('VmRSS')
    try:   # reset the peak to the current RSS (without it, the peak since exec: still an upper bound)
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
    except OSError: pass
    r = kad(ref, ev, KADSettings(block=block))
    print(json.dumps(dict(extra_kb=status_kb('VmHWM') - before, **r)))
''')


def test_kad_memory_is_bounded_by_tiles():
    # KAD of 20,000 × 128 a side, median over all 2·10⁸ pairs of the reference included. One n×n float64 matrix
    # alone would be 3.2 GB (kadtk forms four). The peak resident memory above what the process held before the
    # call must stay within a few tiles plus a few copies of the features: 4·block²·8 B + 8·(2n·dim·8 B) + 100 MB
    n, dim, block = 20_000, 128, 2048
    out = subprocess.run([sys.executable, '-c', MEMORY_RUN, str(n), str(dim), str(block)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    extra = r['extra_kb'] * 1024
    bound = 4 * block ** 2 * 8 + 8 * (2 * n * dim * 8) + 100 * 2 ** 20
    assert extra <= bound, (extra / 2 ** 20, bound / 2 ** 20)
    assert bound < n * n * 8 / 5   # the bound is far below one dense matrix
    assert r['kad_median_n'] == n and not r['kad_median_subsampled'] and r['kad'] > 0
