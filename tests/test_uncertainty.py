"""How sure is the number: per-file FAD against fadtk 1.1.0's `score_individual`, FAD∞/KAD∞ in fadtk mode against
fadtk's and kadtk's `score_inf` with the same seeded global numpy generator, FAD∞ over files against the closed-form
FAD of Gaussian sets, the coverage of the bootstrap interval, the A-vs-B test, and the command line's output and
errors.

The reference tools are driven on the embeddings we write, in their cache layout (`<dir>/<stem>.wav` placeholders,
`<dir>/embeddings/<model>/<stem>.npy`). Tolerances against them: 1e-6 relative (both sides compute in float64; the
observed gaps are ~1e-12, what is left of fadtk's eigendecomposition of the non-symmetric product Σ₁Σ₂).

fadtk's float16: fadtk's own embedders store embeddings as float16, and `np.mean` of a float16 array is rounded to
float16 (its covariance is float64). The main tests write the cache as float64 (the exact values of our float32
embeddings), so fadtk computes in float64 and the numbers are compared at 1e-6. A second test writes float16 files,
as fadtk's embedders would: the whole difference is then the float16 rounding of each file's mean, which the test
adds to our number to recover fadtk's within 1e-6.

Synthetic sets: frames of a file share a file effect (correlation 0.5 between frames of one file), marginally
N(μ, diag(v)), so the true FAD between two such populations is ‖μ₁−μ₂‖² + Σ(√v₁ − √v₂)².
"""
import csv, json, logging, math, time, types
from functools import partial
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
from util import run
from fad_pytorch.embdir import save_embeddings, emb_path, MANIFEST, FORMAT
from fad_pytorch.io import save_json
from fad_pytorch.metrics import Side, MetricSettings, read_side, compare
from fad_pytorch.uncertainty import (UncertaintySettings, InfSettings, BootstrapSettings, assess, compare_systems,
                                     bootstrap_replicates, interval, fad_inf)

PROV = {'model': 'toy', 'sample_rate': 16000}


def gaussian_files(rng, n_files, frames, var, mu, rho=0.5):
    "Files of `frames` frames: x = file effect + frame noise, marginally N(mu, diag(var)), correlation rho within a file"
    z = rng.standard_normal((n_files, 1, len(var))) * np.sqrt(rho * var)
    e = rng.standard_normal((n_files, frames, len(var))) * np.sqrt((1 - rho) * var)
    return z + e + mu


def true_fad(mu1, v1, mu2, v2):
    return float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum())


def mem_side(name, arrays, prefix=''):
    "A side held in memory: one 'file' per array, named so that two sets of the same size pair up"
    per = [(f"{prefix}{i:03d}.wav", torch.as_tensor(a, dtype=torch.float32)) for i, a in enumerate(arrays)]
    return Side(name, 'embeddings', PROV, per[0][1].shape[1], {r: None for r, _ in per}, _per_file=per)


def write_set(d:Path, arrays, fadtk_dtype=np.float64, model='m'):
    "Our embedding directory at d/ours and fadtk's cache layout at d/fadtk with the same values"
    files = {}
    for i, a in enumerate(arrays):
        rel = f"{i:03d}.wav"
        x = torch.as_tensor(a, dtype=torch.float32)
        save_embeddings(emb_path(d / 'ours', rel), x, torch.arange(len(x)) * 0.5, {}, 'x', seconds=0.5 * len(x) + 0.5)
        files[rel] = {'status': 'done'}
        (d / 'fadtk' / 'embeddings' / model).mkdir(parents=True, exist_ok=True)
        (d / 'fadtk' / rel).write_bytes(b'')                                          # placeholder audio name
        np.save(d / 'fadtk' / 'embeddings' / model / f"{i:03d}.npy", x.numpy().astype(fadtk_dtype))
    save_json({'format': FORMAT, 'provenance': {**PROV, 'window': 1.0, 'hop': 0.5}, 'files': files}, d / 'ours' / MANIFEST)
    return d / 'ours', d / 'fadtk'


def fadtk_fad():
    from fadtk.fad import FrechetAudioDistance
    return FrechetAudioDistance(types.SimpleNamespace(name='m', sr=16000), audio_load_worker=1, load_model=False)


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    "A reference and an evaluated set (dim 8) in both layouts; the evaluated set has one file of a single frame"
    d = tmp_path_factory.mktemp('unc')
    rng = np.random.default_rng(0)
    dim = 8
    ref = [gaussian_files(rng, 1, int(rng.integers(20, 40)), np.linspace(1, 2, dim), 0)[0] for _ in range(30)]
    ev = [gaussian_files(rng, 1, int(rng.integers(12, 30)), np.linspace(1.5, 1, dim), 0.3)[0] for _ in range(40)]
    ev[5] = ev[5][:1]                                                                  # too short for a covariance
    r_ours, r_ft = write_set(d / 'ref', ref)
    e_ours, e_ft = write_set(d / 'ev', ev)
    return dict(d=d, ref=ref, ev=ev, r_ours=r_ours, r_ft=r_ft, e_ours=e_ours, e_ft=e_ft)


def read_rows(p):
    return list(csv.DictReader(open(p)))


def test_per_file_fad_equals_fadtk_score_individual(sets, tmp_path):
    run('fad_score', sets['r_ours'], sets['e_ours'], '--per-file', tmp_path / 'ours.csv')
    ours = read_rows(tmp_path / 'ours.csv')
    fadtk_fad().score_individual(sets['r_ft'], sets['e_ft'], tmp_path / 'fadtk.csv')   # it drops the 1-frame file
    ft = [line.split(',') for line in (tmp_path / 'fadtk.csv').read_text().splitlines()]
    assert len(ft) == 39 and len(ours) == 40
    scored = [r for r in ours if r['fad']]
    assert [Path(p).name for p, _ in ft] == [r['file'] for r in scored]              # the same order: sorted by score
    gaps = [abs(float(r['fad']) - float(v)) / float(v) for (p, v), r in zip(ft, scored)]
    print(f"per-file FAD vs fadtk score_individual: largest relative difference {max(gaps):.1e}")
    for (p, v), r in zip(ft, scored):
        assert abs(float(r['fad']) - float(v)) <= 1e-6 * float(v), (r, v)
        assert abs(float(r['mean_term']) + float(r['trace_term']) - float(r['fad'])) <= 1e-9 * float(r['fad'])
    short = ours[-1]
    assert (short['file'], short['frames'], short['fad']) == ('005.wav', '1', '')
    assert short['note'] == ("1 frame: a covariance needs at least 2; the file lasts 1 s, less than one window (1 s) plus one hop (0.5 s): "
                             "--window 0.5 (or shorter) with --hop 0.5 gives 2 frames")


def test_per_file_float16_cache_differs_only_by_the_rounded_mean(sets, tmp_path):
    "fadtk's own float16 files: its per-file mean is rounded to float16; adding that rounding to ours gives its number"
    ev16 = [torch.tensor(a).half().double().numpy() for a in sets['ev'] if len(a) > 1]   # values a float16 file can hold
    e_ours, e_ft = write_set(tmp_path / 'ev16', ev16, fadtk_dtype=np.float16)
    run('fad_score', sets['r_ours'], e_ours, '--per-file', tmp_path / 'ours.csv')
    ours = {r['file']: r for r in read_rows(tmp_path / 'ours.csv')}
    fadtk_fad().score_individual(sets['r_ft'], e_ft, tmp_path / 'fadtk.csv')            # float64 reference, float16 files
    mu_ref = read_side(sets['r_ours']).moments()[0].numpy()
    worst = 0.0
    for line in (tmp_path / 'fadtk.csv').read_text().splitlines():
        p, v = line.split(',')
        x16 = np.load(e_ft / 'embeddings' / 'm' / (Path(p).stem + '.npy'))
        mu16, mu = np.mean(x16, axis=0).astype(np.float64), x16.astype(np.float64).mean(0)   # fadtk's mean, and the exact one
        shift = ((mu_ref - mu16) ** 2).sum() - ((mu_ref - mu) ** 2).sum()
        r = ours[Path(p).name]
        worst = max(worst, abs(float(r['fad']) - float(v)) / float(v))
        assert abs(float(r['fad']) + shift - float(v)) <= 1e-6 * float(v), (r, v, shift)
    print(f"float16 files: without the mean's rounding, fadtk differs by up to {worst:.1e} relative")


def test_fad_inf_frames_mode_equals_fadtk_score_inf(sets):
    r = json.loads(run('fad_score', sets['r_ours'], sets['e_ours'], '--inf', '--resample-unit', 'frames', '--inf-min-n', 300,
                       '--seed', 7, '--json').stdout)
    files = sorted((sets['e_ft'] / 'embeddings' / 'm').glob('*.npy'))                  # our order: sorted by relative path
    np.random.seed(7)
    want = fadtk_fad().score_inf(sets['r_ft'], files, steps=25, min_n=300)
    assert [n for n, _ in r['fad_inf_points']] == [n for n, _ in want.points]
    for (_, a), (_, b) in zip(r['fad_inf_points'], want.points): assert abs(a - b) <= 1e-6 * abs(b), (a, b)
    print(f"FAD∞ vs fadtk score_inf: points differ by up to {max(abs(a - b) / abs(b) for (_, a), (_, b) in zip(r['fad_inf_points'], want.points)):.1e}, "
          f"FAD∞ by {abs(r['fad_inf'] - want.score) / abs(want.score):.1e} relative")
    for ours, ref in ((r['fad_inf'], want.score), (r['fad_inf_slope'], want.slope), (r['fad_inf_r2'], want.r2)):
        assert abs(ours - ref) <= 1e-6 * abs(ref), (ours, ref)
    assert (r['inf_unit'], r['inf_seed'], r['inf_steps'], r['inf_min_n']) == ('frames', 7, 25, 300)
    r8 = json.loads(run('fad_score', sets['r_ours'], sets['e_ours'], '--inf', '--resample-unit', 'frames', '--inf-min-n', 300,
                        '--seed', 8, '--json').stdout)
    assert r8['fad_inf'] != r['fad_inf']                                               # the seed is what decides the draws


def test_kad_inf_frames_mode_equals_kadtk_score_inf(sets, monkeypatch):
    "kadtk's KAD∞ (run at float64, as tests/test_kernel_metrics.py runs it) on the same seeded draws"
    import kadtk.kad as kk
    from kadtk.kad import KernelAudioDistance
    monkeypatch.setattr(kk, 'calc_kernel_audio_distance', partial(kk.calc_kernel_audio_distance, precision=torch.float64))
    files = sorted((sets['e_ft'] / 'embeddings' / 'm').glob('*.npy'))
    ml = types.SimpleNamespace(name='m', sr=16000)
    for bw_args, bw in (([], None), (['--kad-bandwidth-from', 'eval'], 'eval')):
        r = json.loads(run('fad_score', sets['r_ours'], sets['e_ours'], '--metrics', 'kad', '--inf', '--resample-unit', 'frames',
                           '--inf-min-n', 300, '--inf-steps', 6, '--seed', 3, '--json', *bw_args).stdout)
        ref_bw = r['kad_bandwidth'] if bw is None else None                           # ours: the reference's median; kadtk: given, or its own
        np.random.seed(3)
        want = KernelAudioDistance(ml, 'cpu', bandwidth=ref_bw, logger=logging.getLogger('kadtk')).score_inf(
            sets['r_ft'], files, steps=6, min_n=300)
        # with a given bandwidth both are float64 throughout (observed ~1e-14); with kadtk's own median of each resampled
        # set, its median is float32 (torch.pdist of float32 rows), which moves KAD by ~5e-8 relative: 1e-6 holds both
        for (n, a), (m, b) in zip(r['kad_inf_points'], want.points):
            assert n == m and abs(a - b) <= 1e-6 * abs(b), (bw, n, a, b)
        print(f"KAD∞ vs kadtk score_inf, bandwidth {bw or 'given'}: points differ by up to "
              f"{max(abs(a - b) / abs(b) for (_, a), (_, b) in zip(r['kad_inf_points'], want.points)):.1e}, KAD∞ by "
              f"{abs(r['kad_inf'] - want.score) / abs(want.score):.1e} relative")
        assert abs(r['kad_inf'] - want.score) <= 1e-6 * abs(want.score), (r['kad_inf'], want.score)


def test_fad_inf_over_files_is_closer_to_the_truth_than_plain_fad():
    "Gaussian sets with correlated frames, 40 files of 8 frames, dim 8: FAD∞ (files) removes most of the 1/n bias"
    dim, trials = 8, 20
    v1, v2, mu2 = np.linspace(1, 2, dim), np.linspace(1.5, 1, dim), np.full(dim, 0.3)
    truth = true_fad(0, v1, mu2, v2)
    plain, inf = [], []
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        ref = mem_side('ref', gaussian_files(rng, 500, 8, v1, 0))                   # a large reference
        ev = mem_side('ev', gaussian_files(rng, 40, 8, v2, mu2))
        r = assess(ref, ev, unc=UncertaintySettings(inf=InfSettings(seed=t)))
        plain.append(r['fad']); inf.append(r['fad_inf'])
    plain, inf = np.array(plain), np.array(inf)
    print(f"truth {truth:.4f}: plain FAD {plain.mean():.4f} (rmse {np.sqrt(((plain - truth) ** 2).mean()):.4f}), "
          f"FAD∞ {inf.mean():.4f} (rmse {np.sqrt(((inf - truth) ** 2).mean()):.4f})")
    assert abs(inf.mean() - truth) < 0.5 * abs(plain.mean() - truth)
    assert np.sqrt(((inf - truth) ** 2).mean()) < np.sqrt(((plain - truth) ** 2).mean())


@pytest.fixture
def one_thread():
    "Small matrices: one thread avoids the overhead of waking the others (on a shared machine it is 10x faster)"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_coverage_of_the_bootstrap_interval(one_thread):
    """200 seeded trials, dim 4, 40 files of 6 correlated frames a side, B = 200: the default (bias-corrected) 95 %
    interval covers the true FAD in 180-198 of 200 trials (observed 192; about 35 s on 2 busy cores). Binomial tolerance: at a true coverage of 95 % the count
    has mean 190 and standard deviation 3.1, so 180-198 is about ±3σ (P(outside) ≈ 0.2 %); a method that covers 85 %
    or 99.9 % falls outside. The percentile interval of the same replicates covers far less: the bias of the FAD
    (here about a fifth of the interval's width) is counted twice by it."""
    dim, files, frames, trials, B = 4, 40, 6, 200, 200
    v1, v2, mu2 = np.linspace(1, 2, dim), np.linspace(1.5, 1, dim), np.full(dim, 0.3)
    truth = true_fad(0, v1, mu2, v2)
    covered, covered_pct, ratio, t0 = 0, 0, [], time.time()
    for t in range(trials):
        rng = np.random.default_rng(t)
        ref, ev = mem_side('ref', gaussian_files(rng, files, frames, v1, 0)), mem_side('ev', gaussian_files(rng, files, frames, v2, mu2))
        point = compare(ref, ev)
        reps = bootstrap_replicates(ref, [ev], ('fad',), [point], MetricSettings(), BootstrapSettings(replicates=B, seed=t))['fad'][:, 0]
        lo, hi, bias, _ = interval(point['fad'], reps, 0.95, BootstrapSettings().method, floor=0.0)   # the default method
        plo, phi, _, _ = interval(point['fad'], reps, 0.95, 'percentile', floor=0.0)
        covered += lo <= truth <= hi; covered_pct += plo <= truth <= phi
        ratio.append(bias / (hi - lo))
    print(f"coverage {covered}/{trials} (percentile: {covered_pct}/{trials}); bias / width {np.mean(ratio):.2f}; {time.time() - t0:.0f} s")
    assert 180 <= covered <= 198, covered
    assert covered_pct < 170, covered_pct
    assert np.mean(ratio) < 0.5                                                        # the regime where the first-order correction holds


def test_interval_keys_of_assess_are_those_of_the_replicates(one_thread):
    rng = np.random.default_rng(1)
    ref, ev = mem_side('ref', gaussian_files(rng, 30, 5, np.ones(4), 0)), mem_side('ev', gaussian_files(rng, 30, 5, np.ones(4), 0.5))
    for method in ('bias-corrected', 'percentile', 'basic'):
        b = BootstrapSettings(replicates=50, seed=4, method=method, level=0.9)
        r = assess(ref, ev, unc=UncertaintySettings(bootstrap=b))
        reps = bootstrap_replicates(ref, [ev], ('fad',), [r], MetricSettings(), b)['fad'][:, 0]
        lo, hi, bias, se = interval(r['fad'], reps, 0.9, method, floor=0.0)
        assert (r['fad_ci_low'], r['fad_ci_high'], r['fad_bootstrap_bias'], r['fad_bootstrap_se']) == (lo, hi, bias, se)
        assert (r['ci_method'], r['ci_level'], r['bootstrap_replicates'], r['bootstrap_seed']) == (method, 0.9, 50, 4)


def test_a_vs_b(one_thread):
    """A truly closer system is detected (the interval of FAD(A) − FAD(B) below 0) in every one of 20 trials; two draws
    of the same system give an interval containing 0 in at least 18 of 20 trials, paired (the same prompts: a shared
    file effect) and unpaired (expected 19 of 20; 18 or more has probability 92 % at a true coverage of 95 %). Pairing
    matters: the same paired draws, with B's files renamed (so resampled independently), give intervals at least
    1.5 times as wide on average."""
    dim, files, frames, trials = 4, 40, 6, 20
    v = np.linspace(1, 2, dim)
    detected, zero_paired, zero_unpaired, share, widths = 0, 0, 0, [], []
    us = UncertaintySettings(bootstrap=BootstrapSettings(replicates=200))
    for t in range(trials):
        rng = np.random.default_rng(1000 + t)
        ref = mem_side('ref', gaussian_files(rng, files, frames, v, 0))
        a, b = mem_side('A', gaussian_files(rng, files, frames, v, 0.1)), mem_side('B', gaussian_files(rng, files, frames, v, 0.6))
        c = compare_systems(ref, a, b, unc=us)
        detected += c['fad_diff_ci_high'] < 0; share.append(c['fad_a_better'])
        assert c['pairing'] == 'paired'                                                # same file names
        prompts = gaussian_files(rng, files, 1, v, 0.3)                                # one system, two draws for the same prompts
        a2, b2 = (mem_side(n, prompts + gaussian_files(rng, files, frames, v * 0.5, 0)) for n in ('A', 'B'))
        c = compare_systems(ref, a2, b2, unc=us)
        zero_paired += c['fad_diff_ci_low'] <= 0 <= c['fad_diff_ci_high']
        cu = compare_systems(ref, a2, mem_side('B', [e.numpy() for _, e in b2.per_file()], prefix='other_'), unc=us)
        assert (c['pairing'], cu['pairing']) == ('paired', 'unpaired') and cu['fad_diff'] == c['fad_diff']
        widths.append((cu['fad_diff_ci_high'] - cu['fad_diff_ci_low']) / (c['fad_diff_ci_high'] - c['fad_diff_ci_low']))
        b3 = mem_side('B', gaussian_files(rng, files + 1, frames, v, 0.3))             # a different number of files: unpaired
        a3 = mem_side('A', gaussian_files(rng, files, frames, v, 0.3))
        c = compare_systems(ref, a3, b3, unc=us)
        assert c['pairing'] == 'unpaired'
        zero_unpaired += c['fad_diff_ci_low'] <= 0 <= c['fad_diff_ci_high']
    print(f"detected {detected}/{trials} (A better in {np.mean(share):.3f} of replicates); 0 inside: paired {zero_paired}/{trials}, "
          f"unpaired {zero_unpaired}/{trials}; unpaired/paired width {np.mean(widths):.2f}")
    assert detected == trials and np.mean(share) > 0.99 and np.mean(widths) > 1.5
    assert zero_paired >= 18 and zero_unpaired >= 18


# ---- the command line ----

def write_ours(d:Path, arrays, seconds=None):
    files = {}
    for i, a in enumerate(arrays):
        rel = f"{i:03d}.wav"
        save_embeddings(emb_path(d, rel), torch.as_tensor(a, dtype=torch.float32), torch.zeros(len(a)), {}, 'x', seconds=seconds)
        files[rel] = {'status': 'done'}
    save_json({'format': FORMAT, 'provenance': PROV, 'files': files}, d / MANIFEST)
    return d


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp('cli')
    rng = np.random.default_rng(5)
    v = np.ones(4)
    out = dict(ref=write_ours(d / 'ref', gaussian_files(rng, 30, 5, v, 0)), a=write_ours(d / 'a', gaussian_files(rng, 20, 5, v, 0.2)),
               b=write_ours(d / 'b', gaussian_files(rng, 20, 5, v, 0.8)), one=write_ours(d / 'one', gaussian_files(rng, 1, 5, v, 0)), d=d)
    run('fad_stats', out['ref'], '-o', d / 'ref.npz')
    return out


def test_plain_call_prints_what_it_printed(small):
    r = run('fad_score', small['ref'], small['a'])
    assert len(r.stdout.splitlines()) == 1 and float(r.stdout) > 0
    assert r.stderr.strip().splitlines() == [f"mean term {r.stderr.split('mean term ')[1].split(',')[0]}, trace term "
                                             f"{r.stderr.split('trace term ')[1].split(';')[0]}; n = 150 vs 100 frames (30 vs 20 files), dim 4"]
    keys = set(json.loads(run('fad_score', small['ref'], small['a'], '--json').stdout))
    assert keys == {'fad', 'mean_term', 'trace_term', 'trace_sqrt', 'dim', 'real', 'fake', 'provenance_diff', 'metrics', 'fad_pytorch'}


def test_match_n_and_sizes_in_the_output(small):
    r = run('fad_score', small['ref'], small['a'], '--match-n', '--seed', 1)
    assert 'n = 100 vs 100 frames (20 vs 20 files), dim 4' in r.stderr and '--match-n: 20 files a side (seed 1; the reference had 30' in r.stderr
    j = json.loads(run('fad_score', small['ref'], small['a'], '--match-n', '--seed', 1, '--json').stdout)
    assert (j['match_n'], j['real']['files'], j['real']['files_total'], j['fake']['files']) == (20, 20, 30, 20)
    table = run('fad_score', small['ref'], small['a'], small['b'], '--match-n').stdout.splitlines()
    assert table[0].split()[:5] == ['set', 'files', 'frames', 'ref_files', 'ref_frames'] and table[1].split()[1:5] == ['20', '100', '20', '100']


def test_compare_on_the_command_line(small):
    r = run('fad_score', small['ref'], small['a'], small['b'], '--compare', '--bootstrap', 200, '--seed', 2)
    lines = r.stdout.splitlines()
    assert lines[0].startswith('fad(A) - fad(B) = -') and '(paired)' in lines[0], r.stdout
    assert '20 files, 100 frames' in lines[1] and '20 files, 100 frames' in lines[2] and lines[3].endswith('30 files, 150 frames')
    assert 'paired resampling: A and B hold the same file names' in r.stderr
    j = json.loads(run('fad_score', small['ref'], small['a'], small['b'], '--compare', '--bootstrap', 200, '--seed', 2, '--json').stdout)
    assert j['fad_diff_ci_high'] < 0 and j['fad_a_better'] > 0.95 and j['pairing'] == 'paired' and j['bootstrap_seed'] == 2
    assert j['a']['fad_ci_low'] <= j['a']['fad_bias_corrected'] <= j['a']['fad_ci_high']


@pytest.mark.parametrize('args,msg', [
    (['{ref}', '{a}', '--bootstrap', 5], "--bootstrap 5: use at least 10 replicates"),
    (['{ref}', '{a}', '--bootstrap', 20, '--ci', 0], "--ci 0.0: the confidence level must lie strictly between 0 and 1"),
    (['{ref}', '{a}', '--bootstrap', 20, '--ci', 1.5], "--ci 1.5: the confidence level must lie strictly between 0 and 1"),
    (['{ref}', '{a}', '--compare'], "--compare needs two evaluated sets: fad_score REF A B --compare"),
    (['{ref}', '{one}', '--bootstrap', 20], "one: 1 file; the bootstrap draws whole files and needs at least 2 per side"),
    (['{one}', '{a}', '--bootstrap', 20], "one: 1 file; the bootstrap draws whole files and needs at least 2 per side"),
    (['{ref}', '{a}', '--inf', '--resample-unit', 'frames'], "from --inf-min-n 500 up to the 100 frames of the evaluated set: give --inf-min-n below 100"),
    (['{ref}', '{a}', '--bootstrap', 20, '--ci-method', 'bca'], "--ci-method 'bca' is unknown: choose one of bias-corrected, percentile, basic"),
    (['{stats}', '{a}', '--bootstrap', 20], "is a statistics file (only a mean and a covariance): give its embedding directory (or --bootstrap-side eval"),
    (['{stats}', '{a}', '--match-n'], "--match-n draws files, but"),
])
def test_bad_input_is_a_clear_error(small, args, msg):
    paths = {k: small[k] for k in ('ref', 'a', 'b', 'one')} | {'stats': small['d'] / 'ref.npz'}
    r = run('fad_score', *[str(a).format(**paths) for a in args], check=False)
    assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_eval_only_bootstrap_takes_a_statistics_file_as_reference(small):
    j = json.loads(run('fad_score', small['d'] / 'ref.npz', small['a'], '--bootstrap', 50, '--bootstrap-side', 'eval', '--json').stdout)
    k = json.loads(run('fad_score', small['ref'], small['a'], '--bootstrap', 50, '--bootstrap-side', 'eval', '--json').stdout)
    assert j['bootstrap_side'] == 'eval' and abs(j['fad_ci_low'] - k['fad_ci_low']) <= 1e-9 * k['fad_ci_low']


def test_per_file_suggests_a_window_that_works(tmp_path):
    "A 0.8 s file gives logmel (1 s windows, 0.5 s hop) one frame; the --window the CSV suggests gives it 2"
    rng = np.random.default_rng(0)
    for d, n in (('ref', 4), ('ev', 3)):
        (tmp_path / d).mkdir()
        for i in range(n): sf.write(tmp_path / d / f'{i}.wav', (rng.standard_normal(32000) * 0.1).astype(np.float32), 16000)
    sf.write(tmp_path / 'ev' / 'short.wav', (rng.standard_normal(12800) * 0.1).astype(np.float32), 16000)
    run('fad_embed', 'logmel', tmp_path / 'ref', tmp_path / 'ev', '--num-workers', 0)
    r = run('fad_score', tmp_path / 'ref_emb_logmel', tmp_path / 'ev_emb_logmel', '--per-file', tmp_path / 'pf.csv')
    assert '1 of them without a FAD' in r.stderr
    rows = read_rows(tmp_path / 'pf.csv')
    assert [x['file'] for x in rows][-1] == 'short.wav' and rows[-1]['fad'] == '' and rows[-1]['frames'] == '1'
    note = rows[-1]['note']
    assert '--window 0.3 (or shorter) with --hop 0.5 gives 2 frames' in note, note
    (tmp_path / 'again').mkdir(); (tmp_path / 'again' / 'short.wav').write_bytes((tmp_path / 'ev' / 'short.wav').read_bytes())
    run('fad_embed', 'logmel', tmp_path / 'again', '--window', 0.3, '--hop', 0.5, '--num-workers', 0)
    assert read_side(tmp_path / 'again_emb_logmel').per_file()[0][1].shape[0] >= 2
