"""fad_pytorch.classifier_metrics against the tools they reproduce, on the same logits / probabilities / features:

- torch-fidelity 0.4.0 `isc_features_to_metric` (IS);
- SaShiMi's metrics.py (`inception_score`, `modified_inception_score`, `am_score`, `ndb_score`, `fid`), fed the float64
  softmax of the same logits (SaShiMi's script feeds float32 probabilities; the arithmetic is the same);
- audioldm_eval 0.0.3 `metrics.kl.calculate_kl` (KL softmax and sigmoid), and the KL formulas of av-benchmark
  (`av_bench/metrics/kl.py`: log-softmax / log-sigmoid, no eps) and stable-audio-metrics (`passt_kld`: per-id
  `F.kl_div((p_ref + 1e-6).log(), p_eval, 'sum')`, averaged), re-derived here from their code.

Tolerances (relative): REL = 1e-12 where we run the same float64 operations in the same order (torch-fidelity,
audioldm_eval, the re-derived formulas: bit-equal or a rounding apart); REL_SCIPY = 1e-9 against SaShiMi's scipy code,
which sums the same float64 terms in another order (scipy/numpy pairwise sums vs torch; measured ~1e-15); NDB is a
count, compared exactly; FID through fad_pytorch's Fréchet distance (eigendecomposition) vs SaShiMi's scipy sqrtm:
REL_FID = 1e-6, the project's metric tolerance (measured 2.5e-8: scipy sqrtm is the less accurate side).
"""
import functools, json, math
import numpy as np, pytest, torch
import refs
from fad_pytorch import classifier_metrics as C
from fad_pytorch.embdir import FORMAT, MANIFEST, emb_path, save_embeddings
from fad_pytorch.stats import Stats, stats_to_fad

REL, REL_SCIPY, REL_FID = 1e-12, 1e-9, 1e-6
sashimi = pytest.mark.skipif(refs.sashimi_refenv() is None, reason="the SaShiMi reference code (shared/refenv/sashimi, or "
                             "$FAD_REFENV/sashimi) is not on this machine")


def logits(n, classes, seed, scale=3.0):
    "Seeded float64 logits with some confident and some unsure rows"
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, classes, generator=g, dtype=torch.float64) * scale * torch.rand(n, 1, generator=g, dtype=torch.float64)


def close(a, b, rel):
    return abs(a - b) <= rel * abs(b)


# ------------------------------------------------------------------ IS (torch-fidelity)

@pytest.mark.parametrize('n,classes,splits,shuffle', [(137, 10, 10, True), (500, 527, 10, True), (64, 527, 4, False)])
def test_isc_equals_torch_fidelity(n, classes, splits, shuffle):
    from torch_fidelity.metric_isc import isc_features_to_metric
    l = logits(n, classes, seed=n).float()                        # torch-fidelity is fed float32 logits, as from a model
    want = isc_features_to_metric(l, splits=splits, shuffle=shuffle, rng_seed=2020)
    got = C.isc(l, C.ISSettings(splits=splits, shuffle=shuffle))
    assert close(got['is_mean'], want['inception_score_mean'], REL) and close(got['is_std'], want['inception_score_std'], REL)
    assert got['is_mean'] > 1.2 and got['is_std'] > 0


def test_isc_seed_changes_the_number():
    l = logits(100, 10, seed=1)
    assert C.isc(l, C.ISSettings(seed=1))['is_mean'] != C.isc(l)['is_mean']


# ------------------------------------------------------------------ SaShiMi's IS, mIS, AM, NDB, FID

@sashimi
@pytest.mark.parametrize('n,classes', [(101, 10), (1000, 10), (40, 527)])
def test_is_mis_am_equal_sashimi(n, classes):
    _, _, M = refs.sashimi_modules()
    gen, data = logits(n, classes, seed=7 * n), logits(n + 33, classes, seed=11 * n)
    pg, pd = gen.softmax(1).numpy(), data.softmax(1).numpy()
    got, want = C.is_sashimi(gen)['is_sashimi'], M.inception_score(pg)
    assert close(got, want, REL_SCIPY), (got, want)
    got, want = C.mis(gen)['mis'], M.modified_inception_score(pg)
    assert close(got, want, REL_SCIPY), (got, want)
    got, want = C.am(data, gen)['am'], M.am_score(pd, pg)
    assert close(got, want, REL_SCIPY), (got, want)
    assert C.mis(gen, C.MISSettings(pairs=500, seed=4))['mis'] != C.mis(gen)['mis']     # pairs and seed are used


@sashimi
def test_is_sashimi_is_not_the_textbook_is():
    "SaShiMi's IS normalises class columns (scipy's default axis 0): near the textbook IS for balanced confident predictions, not otherwise"
    _, _, M = refs.sashimi_modules()
    balanced = torch.eye(10, dtype=torch.float64).repeat(20, 1) * 30
    two = balanced[:2].repeat(100, 1)                                          # half class 0, half class 1
    for l in (balanced, two):
        assert close(C.is_sashimi(l)['is_sashimi'], M.inception_score(l.softmax(1).numpy()), REL_SCIPY)
    assert abs(C.is_sashimi(balanced)['is_sashimi'] - C.isc(balanced, C.ISSettings(splits=1))['is_mean']) < 0.5   # ~10 both
    assert C.isc(two, C.ISSettings(splits=1))['is_mean'] > 1.99 and C.is_sashimi(two)['is_sashimi'] < 1.2


def ndb_features(seed=0, n_ref=2000, n_eval=700, dim=64, k=12):
    "Reference and eval features from two different mixtures of k Gaussians (the eval mixture reweighted and shifted), float32"
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)) * 3
    w_ref = rng.dirichlet(np.ones(k) * 2)
    w_ev = 0.5 * w_ref + 0.5 * rng.dirichlet(np.ones(k))
    def draw(n, w, shift):
        c = rng.choice(k, n, p=w)
        return (centres[c] + rng.standard_normal((n, dim)) * rng.uniform(0.5, 2.0, k)[c][:, None] + shift).astype(np.float32)
    return draw(n_ref, w_ref, 0.0), draw(n_eval, w_ev, 0.15)


@sashimi
def test_ndb_equals_sashimi(monkeypatch):
    """ndb_score passes no n_init: scikit-learn >= 1.4 runs k-means once ('auto'), older versions 10 times. Ours with
    n_init='auto' == ndb_score under this scikit-learn; ours with n_init=10 (our default) == ndb_score with the pre-1.4
    default, and differs from the single run on these features. (Run once by hand: ndb_score under scikit-learn
    1.3.2 gives our n_init=10 number, 0.48 (same centres); under 1.1.3 and 1.2.2 k-means++ starts elsewhere: 0.40.)"""
    import sklearn
    from sklearn.cluster import KMeans
    _, _, M = refs.sashimi_modules()
    r, e = ndb_features()
    if sklearn.__version__.split('.')[:2] >= ['1', '4']:
        want_auto = M.ndb_score(r, e)
        got = C.ndb(r, e, C.NDBSettings(n_init='auto'))
        assert got['ndb'] == want_auto and got['ndb_n_init'] == 'auto' and got['ndb_sklearn'] == sklearn.__version__
    monkeypatch.setattr(M, 'KMeans', functools.partial(KMeans, n_init=10))
    want10 = M.ndb_score(r, e)
    got = C.ndb(r.astype(np.float64), e.astype(np.float64))                        # float64 in: clustered in float32 as SaShiMi's
    assert got['ndb'] == want10 and got['ndb_n_init'] == 10 and got['ndb_different_bins'] == round(want10 * 50)
    assert 0.2 < want10 < 0.8                                                          # a comparison of a real signal
    assert C.ndb(r, r[::3])['ndb'] < want10                                            # a subset of the reference differs less
    if sklearn.__version__.split('.')[:2] >= ['1', '4']: assert want10 != want_auto    # n_init matters here


@sashimi
def test_fid_on_classifier_features_equals_sashimi():
    "`fid` is fad_pytorch's Fréchet distance on the classifier features; SaShiMi's fid (scipy sqrtm, disp=False) gives the same"
    import warnings
    _, _, M = refs.sashimi_modules()
    r, e = ndb_features(seed=1, n_ref=600, n_eval=400, dim=16)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)                           # sqrtm's disp, gone in scipy 1.18
        want = float(M.fid(r, e))
    s1, s2 = Stats(16), Stats(16)
    s1.add(torch.from_numpy(r)); s2.add(torch.from_numpy(e))
    got = stats_to_fad(s1, s2)['fad']
    assert close(got, want, REL_FID) and want > 1, (got, want)


# ------------------------------------------------------------------ KL (audioldm_eval, av-benchmark, stable-audio-metrics)

def audioldm_kl():
    "audioldm_eval.metrics.kl without the package __init__ (which imports its whole evaluation stack)"
    refs._package_without_init('audioldm_eval'); refs._package_without_init('audioldm_eval.metrics')
    import audioldm_eval.metrics.kl as K
    return K


def test_kl_equals_audioldm_eval(capsys):
    K = audioldm_kl()
    ref, gen = logits(60, 527, seed=3), logits(60, 527, seed=4)
    names = [f'/x/{i}.wav' for i in range(60)]
    out, _, _ = K.calculate_kl({'logits': gen, 'file_path_': names}, {'logits': ref, 'file_path_': names}, 'logits')
    got = C.kl_ref_gen(ref, gen, eps=1e-6)['kl_ref_gen']
    assert close(got, out['kullback_leibler_divergence_softmax'], REL), (got, out)
    got = C.kl_ref_gen_sigmoid(ref, gen, eps=1e-6)['kl_ref_gen_sigmoid']
    assert close(got, out['kullback_leibler_divergence_sigmoid'], REL), (got, out)
    exact = C.kl_ref_gen(ref, gen)['kl_ref_gen']
    assert exact > out['kullback_leibler_divergence_softmax'] > 0.5                  # eps lowers the value; a real divergence


def test_kl_exact_equals_av_benchmark_formula():
    "av-benchmark's compute_kl: kl_div(log_softmax(gen), log_softmax(gt), log_target=True, 'sum') / n, and the same with logsigmoid"
    F = torch.nn.functional
    ref, gen = logits(50, 527, seed=5), logits(50, 527, seed=6)
    soft = F.kl_div(F.log_softmax(gen, 1), F.log_softmax(ref, 1), reduction='sum', log_target=True) / len(gen)
    sig = F.kl_div(F.logsigmoid(gen), F.logsigmoid(ref), reduction='sum', log_target=True) / len(gen)
    assert close(C.kl_ref_gen(ref, gen)['kl_ref_gen'], float(soft), REL)
    assert close(C.kl_ref_gen_sigmoid(ref, gen)['kl_ref_gen_sigmoid'], float(sig), REL)


def test_kl_gen_ref_equals_stable_audio_metrics_formula():
    "stable-audio-metrics' passt_kld: Σ_ids kl_div((p_ref + 1e-6).log(), p_eval, 'sum') / count: KL(gen‖ref)"
    F = torch.nn.functional
    ref, gen = logits(40, 527, seed=8), logits(40, 527, seed=9)
    total = sum(F.kl_div((ref[i].softmax(0) + 1e-6).log(), gen[i].softmax(0), reduction='sum') for i in range(40))
    got = C.kl_gen_ref(ref, gen, eps=1e-6)
    assert close(got['kl_gen_ref'], float(total / 40), REL) and got['kl_gen_ref_eps'] == 1e-6 and got['kl_gen_ref_pairs'] == 40
    assert not close(C.kl_ref_gen(ref, gen, eps=1e-6)['kl_ref_gen'], got['kl_gen_ref'], 1e-3)      # the directions differ


# ------------------------------------------------------------------ embedding directories, pairing, bad input

def write_dir(root, files, logits_flag=True):
    "An embedding directory as fad_embed writes it: {rel: (embeddings, logits or None)}"
    root.mkdir(parents=True)
    for rel, (e, l) in files.items():
        save_embeddings(emb_path(root, rel), e, torch.arange(len(e), dtype=torch.float64), {'size': 1, 'mtime_ns': 1}, 'cfg', 1.0, l)
    prov = {'model': 'pann', 'variant': '16k', **({'logits': True} if logits_flag else {})}
    man = {'format': FORMAT, 'version': 1, 'provenance': prov, 'input': '/data/audio', 'files': {r: {'status': 'done'} for r in files}}
    (root / MANIFEST).write_text(json.dumps(man))
    return root


def test_dir_logits_reduces_files_in_sorted_order(tmp_path):
    l = {r: logits(n, 5, seed=i) for i, (r, n) in enumerate((('b.wav', 3), ('a/x.wav', 1), ('a/10.wav', 2)))}
    d = write_dir(tmp_path / 'd', {r: (torch.zeros(len(v), 4), v.float()) for r, v in l.items()})
    names, rows = C.dir_logits(d)
    assert names == ['a/10.wav', 'a/x.wav', 'b.wav'] and rows.dtype == torch.float64 and rows.shape == (3, 5)
    assert torch.equal(rows[2], l['b.wav'].float().double().mean(0))
    assert torch.equal(C.dir_logits(d, 'max')[1][0], l['a/10.wav'].float().double().amax(0))


def test_logits_absent(tmp_path):
    d = write_dir(tmp_path / 'noflag', {'a.wav': (torch.zeros(1, 4), None), 'b.wav': (torch.zeros(1, 4), None)}, logits_flag=False)
    with pytest.raises(ValueError, match=r"noflag: made without --logits, so it holds no classifier logits\. Embed it again with "
                                         r"logits: `fad_embed MODEL /data/audio --logits --overwrite`"):
        C.dir_logits(d)
    d = write_dir(tmp_path / 'onefile', {'a.wav': (torch.zeros(1, 4), torch.zeros(1, 3)), 'b.wav': (torch.zeros(1, 4), None)})
    with pytest.raises(ValueError, match=r"onefile/b.wav.pt: no logits in this file\. Embed it again with logits"):
        C.dir_logits(d)


def test_nan_and_mismatched_logits(tmp_path):
    bad = torch.zeros(2, 3); bad[1, 2] = math.nan
    d = write_dir(tmp_path / 'nan', {'a.wav': (torch.zeros(2, 4), torch.zeros(2, 3)), 'b.wav': (torch.zeros(2, 4), bad)})
    with pytest.raises(ValueError, match=r"nan/b.wav.pt: its logits contain NaN or infinite values"):
        C.dir_logits(d)
    d = write_dir(tmp_path / 'mixed', {'a.wav': (torch.zeros(1, 4), torch.zeros(1, 3)), 'b.wav': (torch.zeros(1, 4), torch.zeros(1, 10))})
    with pytest.raises(ValueError, match=r"mixed/b.wav.pt: 10 classes, but a.wav has 3: the set mixes classifiers"):
        C.dir_logits(d)
    with pytest.raises(ValueError, match=r"eval logits: row 1 \(of 2\) contains NaN or infinite values"):
        C.mis(bad)
    for f in (lambda: C.am(logits(5, 527, 1), logits(5, 10, 2)), lambda: C.kl_ref_gen(logits(5, 527, 1), logits(5, 10, 2)),
              lambda: C.ndb(np.zeros((60, 8)), np.zeros((5, 9)))):
        with pytest.raises(ValueError, match=r"the reference (logits|features) have (527 classes|8 dims) but the eval"):
            f()


def test_one_file_sets():
    one = logits(1, 10, seed=0)
    for name, f in (('IS with 10 splits', lambda: C.isc(one)), ("SaShiMi's IS \\(two halves\\)", lambda: C.is_sashimi(one)),
                    ('mIS', lambda: C.mis(one)), ('AM', lambda: C.am(logits(5, 10, 1), one)),
                    ('NDB', lambda: C.ndb(np.random.default_rng(0).standard_normal((60, 4)), np.zeros((1, 4))))):
        with pytest.raises(ValueError, match=rf"1 row\(s\) \(files\); {name} needs at least"):
            f()
    C.kl_ref_gen(one, one)                                            # one pair is a valid (per-file) comparison


def test_pairing_for_kl():
    "Pairs by name; rows are reordered to match; below 99 % paired it is an error naming the files without a partner"
    ref_names = [f'{i}.wav' for i in range(150)]
    ev_names = list(reversed(ref_names[1:])) + ['extra.wav']
    ref, ev = logits(150, 10, seed=1), logits(150, 10, seed=2)
    p = C.pair_files(ref_names, ev_names)
    assert p.ref_only == ['0.wav'] and p.eval_only == ['extra.wav'] and len(p.names) == 149
    got = C.kl_ref_gen(ref[p.ref_index], ev[p.eval_index])['kl_ref_gen']
    by_name = {n: ev[i] for i, n in enumerate(ev_names)}
    want = C.kl_ref_gen(ref[1:], torch.stack([by_name[n] for n in ref_names[1:]]))['kl_ref_gen']
    assert close(got, want, REL)
    with pytest.raises(ValueError, match=r"only 140 of the 150 reference files have a partner .* Without a partner: 0.wav, 1.wav, 2.wav"):
        C.pair_files(ref_names, ref_names[10:])
