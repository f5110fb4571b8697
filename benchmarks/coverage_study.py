"""Coverage of the bootstrap intervals of FAD on Gaussian sets with a known FAD, by method, across sizes and dimensions.

Each side: `files` files of `frames` frames; the frames of a file share a file effect (correlation `rho`), marginally
N(μ, diag(v)), so the true FAD is ‖μ₁−μ₂‖² + Σ(√v₁ − √v₂)². For each trial (seeded): the FAD, B bootstrap replicates
resampling the files of both sides (`uncertainty.bootstrap_replicates`), and the 95 % intervals of every method
(`uncertainty.interval`). Prints, per configuration, the mean bias estimate over the interval's width and the share
of trials whose interval covers the truth. This is where the numbers in nbs/36_uncertainty.ipynb come from.

Usage: python benchmarks/coverage_study.py [--trials 200] [--B 200] [--configs 4:40:8:0.5,8:30:8:0.5:near,...]
"""
import argparse, os, time
os.environ.setdefault('OMP_NUM_THREADS', '1')            # small matrices: one thread is much faster on a shared machine
import numpy as np, torch
from fad_pytorch.metrics import Side, MetricSettings, compare
from fad_pytorch.uncertainty import BootstrapSettings, CI_METHODS, bootstrap_replicates, interval

CONFIGS = ('4:40:8:0.5,8:30:8:0.5,4:100:4:0.8,8:20:4:0.9,8:200:8:0.5,16:40:8:0.5,32:30:8:0.5,64:40:8:0.5,'
           '8:100:8:0.5:near,8:30:8:0.5:near,8:20:4:0.9:near')


def gaussian_side(name, rng, files, frames, var, mu, rho):
    z = rng.standard_normal((files, 1, len(var))) * np.sqrt(rho * var)
    x = z + rng.standard_normal((files, frames, len(var))) * np.sqrt((1 - rho) * var) + mu
    per = [(f"{i:04d}.wav", torch.as_tensor(a, dtype=torch.float32)) for i, a in enumerate(x)]
    return Side(name, 'embeddings', {'model': 'study'}, len(var), {r: None for r, _ in per}, _per_file=per)


def study(dim, files, frames, rho, trials, B, near=False):
    "`near`: a small FAD (a mean shift of 0.1, equal covariances), smaller than its own bias"
    v1, v2, mu2 = np.linspace(1, 2, dim), np.linspace(1.5, 1, dim), np.full(dim, 0.3)
    if near: v2, mu2 = v1, np.full(dim, 0.1)
    truth = float((mu2 ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum())
    hits, ratio, t0 = {m: 0 for m in CI_METHODS}, [], time.time()
    for t in range(trials):
        rng = np.random.default_rng(t)
        ref, ev = gaussian_side('ref', rng, files, frames, v1, 0, rho), gaussian_side('ev', rng, files, frames, v2, mu2, rho)
        point = compare(ref, ev)
        reps = bootstrap_replicates(ref, [ev], ('fad',), [point], MetricSettings(), BootstrapSettings(replicates=B, seed=t))['fad'][:, 0]
        for m in CI_METHODS:
            lo, hi, bias, _ = interval(point['fad'], reps, 0.95, m, floor=0.0)
            hits[m] += lo <= truth <= hi
            if m == 'bias-corrected': ratio.append(bias / (hi - lo))
    print(f"| {dim} | {files} × {frames} (ρ {rho}) | {truth:.3f} | {np.mean(ratio):.2f} | "
          + ' | '.join(f"{100 * hits[m] / trials:.1f} %" for m in ('percentile', 'basic', 'bias-corrected')) + f" | {time.time() - t0:.0f} s |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--trials', type=int, default=200); p.add_argument('--B', type=int, default=200)
    p.add_argument('--configs', default=CONFIGS, help="dim:files:frames:rho[:near],... (near: a small true FAD)")
    a = p.parse_args()
    torch.set_num_threads(1)
    print(f"{a.trials} trials, B = {a.B}, 95 % intervals\n")
    print("| dim | files × frames a side | true FAD | bias / width | percentile | basic | bias-corrected | time |\n|---|---|---|---|---|---|---|---|")
    for c in a.configs.split(','):
        d, f, fr, rho, *near = c.split(':')
        study(int(d), int(f), int(fr), float(rho), a.trials, a.B, near == ['near'])


if __name__ == '__main__':
    main()
