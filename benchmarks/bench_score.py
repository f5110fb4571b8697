"""Benchmark fad_score's Fréchet distance against the reference paths, side by side in one run.

  ours      fad_pytorch.stats.frechet_distance (torch, float64: Cholesky factors + singular values)
  scipy     the classic float64 path: scipy.linalg.sqrtm(Σ1·Σ2), as frechet-audio-distance and pytorch-fid do
  ns20      fad_pytorch 0.0.6's default: 20 Newton–Schulz iterations on Σ1·Σ2, float32 covariances (our re-implementation)

For each dim it prints the time per call (best of --repeat), the ratio scipy/ours, the relative difference from the
scipy value, and each method's FAD of a set against itself (exactly 0 in exact arithmetic). Then the end-to-end case:
two embedding directories of .pt files -> score, ours (`calc_score`) vs load + np.cov + scipy.

Usage: python benchmarks/bench_score.py [--dims 128 512 2048] [--repeat 3] [--threads 2]
"""
import argparse, json, os, tempfile, time, warnings
from pathlib import Path
import numpy as np, scipy.linalg, torch
from fad_pytorch.stats import frechet_distance
from fad_pytorch.embdir import save_embeddings, emb_path
from fad_pytorch.fad_score import calc_score


def scipy_fad(mu1, s1, mu2, s2):
    "The float64 scipy path of frechet-audio-distance and pytorch-fid: sqrtm of Σ1·Σ2, real part of its trace"
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def ns20_fad(mu1, s1, mu2, s2, iters=20):
    "Newton–Schulz square root of Σ1·Σ2 in float32, as fad_pytorch 0.0.6 computes it by default"
    m1, m2 = torch.as_tensor(mu1, dtype=torch.float32), torch.as_tensor(mu2, dtype=torch.float32)
    a = torch.as_tensor(s1, dtype=torch.float32) @ torch.as_tensor(s2, dtype=torch.float32)
    norm = a.norm()
    y, z = a / norm, torch.eye(a.shape[0])
    for _ in range(iters):
        t = 0.5 * (3.0 * torch.eye(a.shape[0]) - z @ y)
        y, z = y @ t, t @ z
    covmean = y * norm.sqrt()
    return float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * covmean.trace())


def ours_fad(mu1, s1, mu2, s2):
    return frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2), torch.from_numpy(s2))['fad']


def embeddings(n, d, seed, shift=0.0):
    "Embeddings with a decaying spectrum (like real ones: a few strong directions, a long tail)"
    g = np.random.default_rng(seed)
    q, _ = np.linalg.qr(g.standard_normal((d, d)))
    scale = 1.0 / np.sqrt(1 + np.arange(d))
    return (g.standard_normal((n, d)) * scale) @ q.T + shift


def best(f, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return min(ts), out


def bench_stats(d, repeat, skip_ns=False):
    x1, x2 = embeddings(3 * d, d, 1), embeddings(3 * d, d, 2, 0.05)
    mu1, s1, mu2, s2 = x1.mean(0), np.cov(x1.T), x2.mean(0), np.cov(x2.T)
    row = {'dim': d}
    for name, f in [('ours', ours_fad), ('scipy', scipy_fad)] + ([] if skip_ns else [('ns20', ns20_fad)]):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            t, v = best(lambda: f(mu1, s1, mu2, s2), repeat)
            self_v = f(mu1, s1, mu1, s1)
        row[name] = {'time': t, 'fad': v, 'self': self_v}
    ref = row['scipy']['fad']
    for name in row:
        if name != 'dim': row[name]['rel_diff'] = abs(row[name]['fad'] - ref) / abs(ref)
    return row


def bench_dirs(d, files, frames, repeat):
    "End to end from two embedding directories"
    tmp = Path(tempfile.mkdtemp())
    for side, seed, shift in (('a', 3, 0.0), ('b', 4, 0.05)):
        x = embeddings(files * frames, d, seed, shift).astype(np.float32)
        for i in range(files):
            save_embeddings(emb_path(tmp / side, f'{i:05d}.wav'), torch.from_numpy(x[i * frames:(i + 1) * frames]), torch.zeros(frames), {}, 'x')

    def reference():
        sides = []
        for side in 'ab':
            e = np.concatenate([torch.load(p, weights_only=True)['embeddings'].numpy() for p in sorted((tmp / side).glob('*.pt'))])
            e = e.astype(np.float64)                       # a float32 mean alone would be off by ~1e-8 relative
            sides.append((e.mean(0), np.cov(e.T)))
        return scipy_fad(sides[0][0], sides[0][1], sides[1][0], sides[1][1])

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t_ours, v_ours = best(lambda: calc_score(tmp / 'a', tmp / 'b'), repeat)
        t_ref, v_ref = best(reference, repeat)
    return {'dim': d, 'files': files, 'frames': files * frames, 'ours': t_ours, 'reference': t_ref,
            'rel_diff': abs(v_ours - v_ref) / abs(v_ref)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dims', type=int, nargs='+', default=[128, 512, 2048])
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--files', type=int, default=500, help='files per side, end-to-end case')
    p.add_argument('--frames', type=int, default=20, help='frames per file, end-to-end case')
    p.add_argument('--json', help='also write the results here')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, {a.threads} threads, "
          f"{os.cpu_count()} CPUs; time = best of {a.repeat}")
    print(f"{'dim':>5} {'ours s':>9} {'scipy s':>9} {'ns20 s':>9} {'scipy/ours':>10} {'ns20/ours':>9}  "
          f"{'|ours-scipy|/scipy':>18} {'|ns20-scipy|/scipy':>18}  {'self: ours':>11} {'scipy':>9} {'ns20':>9}")
    rows = []
    for d in a.dims:
        r = bench_stats(d, a.repeat); rows.append(r)
        o, s, n = r['ours'], r['scipy'], r['ns20']
        print(f"{d:>5} {o['time']:>9.4f} {s['time']:>9.4f} {n['time']:>9.4f} {s['time'] / o['time']:>9.1f}x "
              f"{n['time'] / o['time']:>8.1f}x  {o['rel_diff']:>18.2e} {n['rel_diff']:>18.2e}  "
              f"{o['self']:>11.2e} {s['self']:>9.2e} {n['self']:>9.2e}", flush=True)
    e = bench_dirs(max(a.dims), a.files, a.frames, max(1, a.repeat - 1))
    print(f"\nend to end, two directories of {a.files} .pt files x {a.frames} frames, dim {e['dim']}: "
          f"ours {e['ours']:.3f} s, load+np.cov+scipy {e['reference']:.3f} s, ratio {e['reference'] / e['ours']:.1f}x, "
          f"|diff|/ref {e['rel_diff']:.1e}")
    if a.json: Path(a.json).write_text(json.dumps({'stats': rows, 'dirs': e}, indent=1))


if __name__ == '__main__':
    main()
