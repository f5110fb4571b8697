"""Benchmark the uncertainty module: bootstrap intervals of FAD (and KAD), FAD∞ against fadtk 1.1.0's score_inf.

  boot  ours: `bootstrap_replicates` (weights × per-file sums, then the exact `frechet_distance` per replicate), B
        replicates resampling the files of both sides, `--files` files of `--frames` frames a side, at each `--dims`;
        vs a naive bootstrap as one would write it with fadtk's tools: per replicate, concatenate the drawn files'
        frames, `np.cov`, fadtk's `calc_frechet_distance` (timed on a few replicates, scaled to B)
  kad   ours: KAD replicates from one weighted pass over the kernel tiles, vs `kad()` on each replicate's rows
        (timed on a few replicates, scaled to B), at `--kad-files` files a side
  inf   ours: `fad_inf` in fadtk mode (frames, with replacement) vs fadtk `score_inf` on the same embeddings
        (its cache layout, float64 .npy) with the same seeded global generator; values compared

Each row prints wall times, the ratio reference/ours and, where both compute the same number, the relative difference.
Dimensions above `--big-dim` use `--big-b` replicates (a dim-2048 FAD takes tens of seconds on a 2-core CPU) and
report the per-replicate time scaled to B as well.

Usage: python benchmarks/bench_uncertainty.py [--dims 128,512,2048] [--files 5000] [--frames 10] [--B 200]
       [--big-dim 1024] [--big-b 10] [--kad-files 300] [--threads N] [--skip-kad] [--skip-inf]
"""
import argparse, os, sys, tempfile, time, types, warnings
if '--threads' in sys.argv:   # before NumPy and torch load their BLAS
    for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ[v] = sys.argv[sys.argv.index('--threads') + 1]
from pathlib import Path
import numpy as np, torch
from fad_pytorch.metrics import Side, MetricSettings, compare
from fad_pytorch.kernel import KADSettings, kad
from fad_pytorch.uncertainty import (BootstrapSettings, InfSettings, bootstrap_replicates, bootstrap_weights, side_units, fad_inf)


def side(name, n_files, frames, dim, seed, shift=0.0):
    "In-memory side: files of correlated frames (a file effect plus frame noise), a decaying spectrum"
    g = torch.Generator().manual_seed(seed)
    scale = 1.0 / torch.sqrt(1 + torch.arange(dim, dtype=torch.float32))
    z = torch.randn(n_files, 1, dim, generator=g)
    x = ((z + torch.randn(n_files, frames, dim, generator=g)) * scale + shift)
    per = [(f"{i:05d}.wav", x[i]) for i in range(n_files)]
    return Side(name, 'embeddings', {'model': 'bench'}, dim, {r: None for r, _ in per}, _per_file=per)


def naive_fad_replicates(ref, ev, k, seed):
    "What a bootstrap with fadtk's tools costs: per replicate, concatenate the drawn files, np.cov, calc_frechet_distance"
    from fadtk.fad import calc_frechet_distance
    rng = np.random.RandomState(seed)
    rf, ef = [e.numpy().astype(np.float64) for _, e in ref.per_file()], [e.numpy().astype(np.float64) for _, e in ev.per_file()]
    out, t0 = [], time.perf_counter()
    for _ in range(k):
        xr = np.concatenate([rf[i] for i in rng.randint(0, len(rf), len(rf))])
        xe = np.concatenate([ef[i] for i in rng.randint(0, len(ef), len(ef))])
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            out.append(calc_frechet_distance(xr.mean(0), np.cov(xr.T), xe.mean(0), np.cov(xe.T)))
    return (time.perf_counter() - t0) / k


def bench_boot(dim, files, frames, B, naive_k=3):
    ref, ev = side('ref', files, frames, dim, 1), side('ev', files, frames, dim, 2, 0.02)
    point = compare(ref, ev)
    t0 = time.perf_counter()
    side_units(ref); side_units(ev)
    t_units = time.perf_counter() - t0
    t0 = time.perf_counter()
    reps = bootstrap_replicates(ref, [ev], ('fad',), [point], MetricSettings(), BootstrapSettings(replicates=B, seed=0))['fad'][:, 0]
    t = time.perf_counter() - t0
    t_naive = naive_fad_replicates(ref, ev, naive_k, 0)
    q = np.quantile(reps, [0.025, 0.975])
    print(f"  boot  dim {dim:5d}, {files} files × {frames} frames a side, B={B:4d}: ours {t:8.1f} s ({t / B:.3f} s a replicate; "
          f"units {t_units:.1f} s)   naive {t_naive:.3f} s a replicate → {t_naive * B:8.1f} s   naive/ours {t_naive / (t / B):5.1f}×   "
          f"FAD {point['fad']:.4g}, replicates 2.5–97.5 % {q[0]:.4g}–{q[1]:.4g}")
    return t / B


def bench_kad(dim, files, frames, B, naive_k=3):
    ref, ev = side('ref', files, frames, dim, 3), side('ev', files, frames, dim, 4, 0.02)
    point = compare(ref, ev, ('kad',))
    t0 = time.perf_counter()
    reps = bootstrap_replicates(ref, [ev], ('kad',), [point], MetricSettings(), BootstrapSettings(replicates=B, seed=0))['kad'][:, 0]
    t = time.perf_counter() - t0
    ur, ue = side_units(ref), side_units(ev)
    rng = np.random.RandomState(0)
    wr, we = bootstrap_weights(files, naive_k, rng), bootstrap_weights(files, naive_k, rng)
    ks = KADSettings(bandwidth=point['kad_bandwidth'])
    t0 = time.perf_counter()
    for r in range(naive_k):
        rows = lambda u, w: u.x[torch.repeat_interleave(torch.arange(len(u.x)), w[u.index()].long())]
        kad(rows(ur, wr[r]), rows(ue, we[r]), ks)
    t_naive = (time.perf_counter() - t0) / naive_k
    print(f"  kad   dim {dim:5d}, {files} files × {frames} frames a side, B={B:4d}: ours {t:8.1f} s   kad() per replicate {t_naive:.2f} s "
          f"→ {t_naive * B:8.1f} s   ratio {t_naive * B / t:5.1f}×   KAD {point['kad']:.4g}, replicates 2.5–97.5 % "
          f"{np.quantile(reps, 0.025):.4g}–{np.quantile(reps, 0.975):.4g}")


def bench_inf(dim, files, frames):
    from fadtk.fad import FrechetAudioDistance
    ref, ev = side('ref', files, frames, dim, 5), side('ev', files, frames, dim, 6, 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for s, name in ((ref, 'ref'), (ev, 'ev')):
            (tmp / name / 'embeddings' / 'm').mkdir(parents=True)
            for r, e in s.per_file(): np.save(tmp / name / 'embeddings' / 'm' / (Path(r).stem + '.npy'), e.numpy().astype(np.float64))
        ft = FrechetAudioDistance(types.SimpleNamespace(name='m', sr=16000), audio_load_worker=1, load_model=False)
        ft.load_stats(tmp / 'ref')                                                       # its statistics cache, computed once
        files_ev = sorted((tmp / 'ev' / 'embeddings' / 'm').glob('*.npy'))
        s = InfSettings(unit='frames', seed=0)
        t0 = time.perf_counter(); ours = fad_inf(ref, ev, s); t = time.perf_counter() - t0
        np.random.seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            t0 = time.perf_counter(); want = ft.score_inf(tmp / 'ref', files_ev); t_ref = time.perf_counter() - t0
    print(f"  inf   dim {dim:5d}, {files} files × {frames} frames, 25 subsets (frames): ours {t:7.2f} s   fadtk {t_ref:7.2f} s   "
          f"fadtk/ours {t_ref / t:5.1f}×   FAD∞ rel. diff {abs(ours['fad_inf'] - want.score) / abs(want.score):.1e}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dims', default='128,512,2048'); p.add_argument('--files', type=int, default=5000)
    p.add_argument('--frames', type=int, default=10); p.add_argument('--B', type=int, default=200)
    p.add_argument('--big-dim', type=int, default=1024); p.add_argument('--big-b', type=int, default=10)
    p.add_argument('--kad-files', type=int, default=300); p.add_argument('--threads', type=int)
    p.add_argument('--skip-kad', action='store_true'); p.add_argument('--skip-inf', action='store_true')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    print(f"fad_pytorch uncertainty, CPU, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    for dim in (int(d) for d in a.dims.split(',')):
        B = a.B if dim < a.big_dim else a.big_b
        per = bench_boot(dim, a.files, a.frames, B, naive_k=3 if dim < a.big_dim else 1)
        if B != a.B: print(f"        dim {dim}: B={a.B} would take about {per * a.B:.0f} s at this rate")
    if not a.skip_kad: bench_kad(128, a.kad_files, a.frames, a.B)
    if not a.skip_inf: bench_inf(128, 2000, a.frames)


if __name__ == '__main__':
    main()
