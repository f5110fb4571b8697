"""SC09 metrics as in SaShiMi, end to end: `fad_embed sc09 train/ samples/ --logits`, then
`fad_score train_emb/ samples_emb/ --metrics fid,is,is_sashimi,mis,am,ndb`, on generated digit-like audio laid out as
SC09 is (class folders zero..nine), with the classifier's random weights written as SaShiMi's resnext.pth. Every
number is compared with SaShiMi's own metrics.py (and torch-fidelity's IS) on the logits and features read back
from the embedding directories in SaShiMi's order (`--order sashimi`). Also: paired KL (the same file names in two
sets), and the errors for logits that are absent, a set of one file, and statistics files.

Tolerances: 1e-9 relative for the SaShiMi formulas (both float64 here: SaShiMi's numpy code on float64 probabilities
made from the same logits), 1e-5 for FID (SaShiMi's scipy sqrtm on singular covariances, see the test), exact for NDB
(a count).
"""
import json, warnings
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
from fad_pytorch.metrics import read_side

pytestmark = pytest.mark.skipif(refs.sashimi_refenv() is None, reason="the SaShiMi reference code (shared/refenv/sashimi, "
                                "or $FAD_REFENV/sashimi) is not on this machine")
DIGITS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')


@pytest.fixture(scope='module')
def embedded(tmp_path_factory):
    d = tmp_path_factory.mktemp('sc09')
    ckpt = refs.save_sc09_file(refs.sc09_ref(seed=3), d / 'resnext.pth')
    for name, n, seed in (('train', 80, 1), ('samples', 40, 2)):
        clips = refs.digit_like(n, seed=seed, seconds=1.0)
        for i, c in enumerate(clips):
            p = d / name / DIGITS[i % 10] / f'{i}.wav'
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, c, 16000)
    run('fad_embed', 'sc09', d / 'train', d / 'samples', '--logits', '--weights', ckpt, '--num-workers', 0)
    return d


def sashimi_inputs(emb_dir):
    "Probabilities (from the stored logits) and features of a set, in SaShiMi's order"
    from fad_pytorch.classifier_metrics import dir_logits, sashimi_order
    names, logits = dir_logits(emb_dir)
    order = sashimi_order(names)
    side = read_side(emb_dir)
    feats = torch.cat([e for _, e in side.per_file()])
    return logits[order].softmax(1).numpy(), feats[order].double().numpy()


def test_sc09_metrics_equal_sashimis(embedded):
    d = embedded
    r = json.loads(run('fad_score', d / 'train_emb_sc09', d / 'samples_emb_sc09', '--metrics', 'fid,is,is_sashimi,mis,am,ndb',
                       '--order', 'sashimi', '--ndb-bins', 10, '--is-splits', 4, '--json').stdout)
    M = refs.sashimi_modules()[2]
    p_train, f_train = sashimi_inputs(d / 'train_emb_sc09')
    p_gen, f_gen = sashimi_inputs(d / 'samples_emb_sc09')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')                                             # scipy's sqrtm(disp=...) deprecation
        fid = M.fid(f_gen, f_train)
    # 80 and 40 files for 1024 dims: both covariances are singular, where scipy's sqrtm (SaShiMi's FID) is inexact: it
    # returns an imaginary part of ~1e-5 here. Its real part is compared, within 1e-5 relative (measured 3.4e-6); the
    # exactness of our trace on singular covariances is tested against 40-digit mpmath in test_stats.py.
    assert abs(fid.imag) < 1e-4 and abs(r['fad'] - fid.real) <= 1e-5 * fid.real, (r['fad'], fid)
    assert abs(r['is_sashimi'] - M.inception_score(p_gen)) <= 1e-9 * r['is_sashimi']
    assert abs(r['mis'] - M.modified_inception_score(p_gen)) <= 1e-9 * r['mis']
    assert abs(r['am'] - M.am_score(p_train, p_gen)) <= 1e-9 * abs(r['am'])
    # NDB with SaShiMi's own ndb_score (50 bins, scikit-learn's default n_init of today: 'auto'), on float32 features as its
    # classifier gives them
    n = json.loads(run('fad_score', d / 'train_emb_sc09', d / 'samples_emb_sc09', '--metrics', 'ndb', '--order', 'sashimi',
                       '--ndb-n-init', 'auto', '--json').stdout)
    assert n['ndb'] == M.ndb_score(f_train.astype(np.float32), f_gen.astype(np.float32)) and n['ndb_n_init'] == 'auto'
    assert r['ndb_bins'] == 10 and r['ndb_n_init'] == 10 and 0 <= r['ndb'] <= 1
    from torch_fidelity.metric_isc import isc_features_to_metric
    from fad_pytorch.classifier_metrics import dir_logits, sashimi_order
    names, logits = dir_logits(d / 'samples_emb_sc09')
    tf = isc_features_to_metric(logits[sashimi_order(names)], splits=4, shuffle=True, rng_seed=2020)
    assert abs(r['is_mean'] - tf['inception_score_mean']) <= 1e-9 * r['is_mean']
    assert r['real']['files'] == 80 and r['fake']['files'] == 40 and r['is_seed'] == 2020 and r['mis_seed'] == 0


def test_paired_kl_and_errors(embedded, tmp_path):
    d = embedded
    # the same names in both sets: the train set against itself gives KL 0 exactly; against a subset, pairs are listed
    r = json.loads(run('fad_score', d / 'train_emb_sc09', d / 'train_emb_sc09', '--metrics', 'kl_ref_gen,kl_gen_ref', '--json').stdout)
    assert r['kl_ref_gen'] == 0 and r['kl_gen_ref'] == 0 and r['kl_ref_gen_pairs'] == 80
    bad = run('fad_score', d / 'train_emb_sc09', d / 'samples_emb_sc09', '--metrics', 'kl_ref_gen', check=False)
    assert bad.returncode == 2 and 'have a partner of the same name' in bad.stderr and 'Traceback' not in bad.stderr
    # embedded without --logits: the error says how to get them
    run('fad_embed', 'logmel', d / 'samples', '--out', tmp_path, '--num-workers', 0)
    bad = run('fad_score', tmp_path / 'samples_emb_logmel', tmp_path / 'samples_emb_logmel', '--metrics', 'is', check=False)
    assert bad.returncode == 2 and 'made without --logits' in bad.stderr and '--logits --overwrite' in bad.stderr
    run('fad_stats', d / 'train_emb_sc09', '-o', tmp_path / 't.npz')
    bad = run('fad_score', tmp_path / 't.npz', d / 'samples_emb_sc09', '--metrics', 'am', check=False)
    assert bad.returncode == 2 and 'am needs classifier logits, but' in bad.stderr and 'statistics file' in bad.stderr
    one = tmp_path / 'one'; (one / 'zero').mkdir(parents=True)
    sf.write(one / 'zero/0.wav', refs.digit_like(1, seed=9)[0], 16000)
    run('fad_embed', 'sc09', one, '--logits', '--weights', d / 'resnext.pth', '--out', tmp_path, '--num-workers', 0)
    bad = run('fad_score', d / 'train_emb_sc09', tmp_path / 'one_emb_sc09', '--metrics', 'mis', check=False)
    assert bad.returncode == 2 and 'one_emb_sc09' in bad.stderr and 'Traceback' not in bad.stderr, bad.stderr
