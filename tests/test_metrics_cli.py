"""fad_score as users run it with the new metrics: one reference against three sets (table, --json, --csv), the
per-category comparison (--per-subdir), statistics files refused for embedding metrics, the statistics cache, and
the numbers equal to the reference tools (kadtk 1.1.0, torch-fidelity 0.4.0) on the same feature matrices, read from
the embedding directories in the documented order (files sorted by relative path, frames in time order).

Tolerances: 1e-6 relative against the reference tools (both run in float64 here: kadtk with precision=torch.float64,
torch-fidelity on float64 arrays); our sums are float64 in tiles, so the differences are rounding (~1e-12).
"""
import csv, json
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
from util import run
import refs
from fad_pytorch.metrics import read_side

CATS = ('bitter', 'salty', 'sour', 'sweet')


def write_audio(root:Path, n:int, seed:int, colour:float, sub=None):
    "n two-second files of filtered noise (3 logmel windows each); `colour` sets the spectrum"
    g = np.random.default_rng(seed)
    for i in range(n):
        x = g.standard_normal(32000).astype(np.float32) * 0.1
        for _ in range(int(colour)): x = np.cumsum(x) * 0.1; x -= x.mean()
        p = root / (sub(i) if sub else '') / f'{i:02d}.wav'
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.clip(x, -1, 1).astype(np.float32), 16000)
    return root


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    d = tmp_path_factory.mktemp('sets')
    write_audio(d / 'ref', 24, 0, 1)
    write_audio(d / 'close', 24, 1, 1)
    write_audio(d / 'far', 24, 2, 3)
    write_audio(d / 'noise', 24, 3, 0)
    write_audio(d / 'cats', 24, 4, 1, sub=lambda i: CATS[i % 4])
    run('fad_embed', 'logmel', *(d / s for s in ('ref', 'close', 'far', 'noise', 'cats')), '--num-workers', 0)
    return {s: d / f'{s}_emb_logmel' for s in ('ref', 'close', 'far', 'noise', 'cats')}


def test_one_reference_three_sets_json_csv_table(sets, tmp_path):
    args = ['--metrics', 'fad,kad,kid,prc', '--kid-subset-size', 20, '--kid-subsets', 10]
    r = run('fad_score', sets['ref'], sets['close'], sets['far'], sets['noise'], *args, '--json', '--csv', tmp_path / 't.csv')
    obj = json.loads(r.stdout)
    assert obj['reference']['path'] == str(sets['ref']) and obj['reference']['files'] == 24
    res = obj['results']
    assert [x['fake']['path'] for x in res] == [str(sets[s]) for s in ('close', 'far', 'noise')]
    for x in res:
        assert {'fad', 'kad', 'kid_mean', 'kid_std', 'precision', 'recall', 'f_score', 'kad_bandwidth', 'kid_seed'} <= set(x)
        assert x['real']['n'] == x['fake']['n'] == 24 * 3 and x['kid_seed'] == 2020 and x['kad_bandwidth_from'] == 'reference'
    assert res[0]['fad'] < res[1]['fad'] and res[0]['kad'] < res[1]['kad']           # the close set is closer
    rows = list(csv.DictReader(open(tmp_path / 't.csv')))
    assert [r['set'] for r in rows] == [str(sets[s]) for s in ('close', 'far', 'noise')]
    assert [float(r['kad']) for r in rows] == [x['kad'] for x in res]
    table = run('fad_score', sets['ref'], sets['close'], sets['far'], '--metrics', 'fad,kad').stdout.splitlines()
    assert table[0].split()[:5] == ['set', 'files', 'frames', 'fad', 'mean_term'] and 'kad' in table[0] and len(table) == 3
    one = json.loads(run('fad_score', sets['ref'], sets['close'], '--json').stdout)             # today's object, unchanged keys
    assert {'fad', 'mean_term', 'trace_term', 'trace_sqrt', 'dim', 'real', 'fake', 'provenance_diff', 'fad_pytorch'} <= set(one)


def test_per_subdir(sets):
    obj = json.loads(run('fad_score', sets['ref'], sets['cats'], '--per-subdir', '--metrics', 'fad,kad', '--json').stdout)
    assert [x['fake']['path'] for x in obj['results']] == [f"{sets['cats']}/{c}" for c in CATS]
    assert [x['fake']['files'] for x in obj['results']] == [6] * 4
    whole = read_side(sets['cats']).embeddings()
    sweet = read_side(sets['cats']).subset('sweet').embeddings()
    assert sweet.shape[0] == 18 and any(torch.equal(sweet[:3], whole[i:i + 3]) for i in range(0, len(whole), 3))


def test_equal_to_kadtk_and_torch_fidelity_on_the_same_features(sets):
    refs.install()
    import warnings
    with warnings.catch_warnings():                      # importing kadtk.kad turns every warning off, process-wide
        from kadtk.kad import calc_kernel_audio_distance, median_pairwise_distance
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric
    x, y = (read_side(sets[s]).embeddings().double() for s in ('ref', 'far'))
    r = json.loads(run('fad_score', sets['ref'], sets['far'], '--metrics', 'kad,kid,prc', '--kid-subset-size', 30,
                       '--kid-subsets', 7, '--seed', 11, '--json').stdout)
    bw = float(median_pairwise_distance(x))
    want = float(calc_kernel_audio_distance(x, y, (None, None), 'cpu', bandwidth=bw, precision=torch.float64))
    assert abs(r['kad'] - want) <= 1e-6 * abs(want) and abs(r['kad_bandwidth'] - bw) <= 1e-6 * bw     # kadtk's median is float32
    kid = kid_features_to_metric(y, x, kid_subsets=7, kid_subset_size=30, rng_seed=11, verbose=False)
    assert abs(r['kid_mean'] - kid['kernel_inception_distance_mean']) <= 1e-6 * abs(kid['kernel_inception_distance_mean'])
    assert abs(r['kid_std'] - kid['kernel_inception_distance_std']) <= 1e-6 * abs(kid['kernel_inception_distance_std'])
    prc = prc_features_to_metric(y, x, verbose=False)
    assert (r['precision'], r['recall']) == (prc['precision'], prc['recall'])
    ev = json.loads(run('fad_score', sets['ref'], sets['far'], '--metrics', 'kad', '--kad-bandwidth-from', 'eval', '--json').stdout)
    want = float(calc_kernel_audio_distance(x, y, (None, None), 'cpu', bandwidth=None, precision=torch.float64))   # kadtk 1.1.0's own choice
    assert abs(ev['kad'] - want) <= 1e-6 * abs(want)


def test_statistics_files_and_the_cache(sets, tmp_path):
    run('fad_stats', sets['ref'], '-o', tmp_path / 'ref.npz')
    r = run('fad_score', tmp_path / 'ref.npz', sets['close'], '--metrics', 'kad', check=False)
    assert r.returncode == 2 and 'kad needs the embeddings themselves, but' in r.stderr and 'Traceback' not in r.stderr
    a = float(run('fad_score', tmp_path / 'ref.npz', sets['close']).stdout)
    b = float(run('fad_score', sets['ref'], sets['close']).stdout)
    assert abs(a - b) <= 1e-9 * b
    cache = sets['close'] / '.fad_stats.npz'
    assert cache.exists()
    cache.write_bytes(b'not a cache')                                              # corrupted: recomputed with a warning
    r = run('fad_score', sets['ref'], sets['close'])
    assert float(r.stdout) == b and 'unreadable statistics cache' in r.stderr
    r = run('fad_score', sets['ref'], sets['close'])                               # rewritten: read silently
    assert float(r.stdout) == b and 'unreadable' not in r.stderr
