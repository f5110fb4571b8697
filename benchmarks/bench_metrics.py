"""Benchmark KAD, KID and precision/recall against kadtk 1.1.0 and torch-fidelity 0.4.0, side by side in one run,
on the same feature matrices (CPU), then KAD on a large set (peak memory and time).

  KAD   ours `kad(..., bandwidth_from='eval')` (the same work as kadtk: eval median + three kernel sums, float64, tiles)
        vs kadtk `calc_kernel_audio_distance(bandwidth=None)` at its default float32 and at float64 (dense n×n matrices)
  KID   ours `kid` (float64) vs torch-fidelity `kid_features_to_metric` (NumPy at the input dtype: float32 features,
        and float64), both at torch-fidelity's defaults (100 subsets of 1000, poly kernel)
  PRC   ours `precision_recall` (float64, tiles) vs torch-fidelity `prc_features_to_metric` (float32 cdist, full), on
        a third set from the reference's distribution
  big   ours `kad` with default settings on --big-n rows a side, in a fresh process: wall time and peak RSS

Each row prints the time (best of --repeat), the ratio reference/ours and the relative difference of the values.

Usage: python benchmarks/bench_metrics.py [--n 5000] [--dim 128] [--repeat 2] [--threads N] [--big-n 200000] [--skip-big]
(--threads sets torch's and the BLAS libraries' threads for both sides; on a busy machine 1 thread is steadier)
"""
import argparse, json, os, subprocess, sys, textwrap, time, warnings
if '--threads' in sys.argv:   # before NumPy and torch load their BLAS
    for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ[v] = sys.argv[sys.argv.index('--threads') + 1]
import torch
import torch_fidelity.metric_kid as tf_kid
import torch_fidelity.metric_prc as tf_prc
with warnings.catch_warnings():
    import kadtk.kad as kadtk_kad
from fad_pytorch.kernel import KADSettings, KIDSettings, kad, kid
from fad_pytorch.prc import precision_recall


def features(n, dim, seed, scale=1.0, shift=0.0):
    "float32 embeddings with a decaying spectrum (a few strong directions, a long tail), like real ones"
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    s = 1.0 / torch.sqrt(1 + torch.arange(dim, dtype=torch.float64))
    return ((torch.randn(n, dim, generator=g, dtype=torch.float64) * s) @ q.T * scale + shift).float()


def best(f, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return min(ts), out


def row(name, t_ours, v_ours, t_ref, v_ref):
    print(f"  {name:<44} ours {t_ours:8.2f} s   ref {t_ref:8.2f} s   ref/ours {t_ref / t_ours:6.2f}×   "
          f"rel. diff {abs(v_ours - v_ref) / abs(v_ref):.1e}")


def side_by_side(n, dim, repeat):
    ref, ev = features(n, dim, 1), features(n, dim, 2, scale=1.05, shift=0.01)
    print(f"side by side: {n} × {dim} a side, float32 features, {torch.get_num_threads()} threads, best of {repeat}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t_o, o = best(lambda: kad(ref, ev, KADSettings(bandwidth_from='eval'))['kad'], repeat)
        for prec in (torch.float32, torch.float64):
            t_r, r = best(lambda: kadtk_kad.calc_kernel_audio_distance(ref, ev, (None, None), 'cpu', precision=prec).item(), repeat)
            row(f"KAD vs kadtk (eval bandwidth, {str(prec)[6:]})", t_o, o, t_r, r)
    t_o, o = best(lambda: kid(ref, ev)['kid_mean'], repeat)
    for dt in (torch.float32, torch.float64):
        t_r, r = best(lambda: tf_kid.kid_features_to_metric(ev.to(dt), ref.to(dt), verbose=False)[tf_kid.KEY_METRIC_KID_MEAN], repeat)
        row(f"KID vs torch-fidelity (100 × 1000, {str(dt)[6:]})", t_o, o, t_r, r)
    ev = features(n, dim, 3)   # precision/recall of two samples of one distribution: neither near 0 nor near 1
    t_o, o = best(lambda: precision_recall(ref, ev), repeat)
    t_r, r = best(lambda: tf_prc.prc_features_to_metric(ev, ref, verbose=False), repeat)
    row("precision/recall vs torch-fidelity (F-score)", t_o, o['f_score'], t_r, r['f_score'])
    print(f"  (precision {o['precision']:.4f} / {r['precision']:.4f}, recall {o['recall']:.4f} / {r['recall']:.4f})")


BIG = textwrap.dedent('''
    import json, resource, sys, time, torch
    from fad_pytorch.kernel import kad
    n, dim = int(sys.argv[1]), int(sys.argv[2])
    g = torch.Generator().manual_seed(0)
    ref, ev = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) * 1.05 + 0.01
    def status_kb(key):   # VmHWM is this process's own peak (ru_maxrss carries the parent's peak across exec)
        with open('/proc/self/status') as f: return next(int(l.split()[1]) for l in f if l.startswith(key + ':'))
    before = status_kb('VmRSS')
    try:   # reset the peak to the current RSS (without it, the peak since exec: still an upper bound)
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
    except OSError: pass
    t0, c0 = time.perf_counter(), time.process_time()
    r = kad(ref, ev)
    t, c = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps(dict(r, seconds=t, cpu_seconds=c, rss_before_kb=before, peak_rss_kb=status_kb('VmHWM'))))
''')


def big(n, dim):
    print(f"\nKAD on {n} × {dim} a side (default settings, in a fresh process), load average {os.getloadavg()[0]:.1f}")
    out = subprocess.run([sys.executable, '-c', BIG, str(n), str(dim)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    gib = 2 ** 20
    print(f"  kad {r['kad']:.6g}   bandwidth {r['kad_bandwidth']:.6g} (median over {r['kad_median_n']} rows, "
          f"subsampled {r['kad_median_subsampled']}, seed {r['kad_seed']})")
    print(f"  time {r['seconds']:.0f} s (CPU {r['cpu_seconds']:.0f} s)   peak RSS {r['peak_rss_kb'] / gib:.2f} GiB "
          f"(before the call {r['rss_before_kb'] / gib:.2f} GiB; one dense {n}×{n} float64 matrix: {n * n * 8 / 2 ** 30:.0f} GiB)")


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=5000, help='rows a side for the side-by-side rows')
    p.add_argument('--dim', type=int, default=128)
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--threads', type=int, default=None, help='threads for torch and BLAS (default: their own choice)')
    p.add_argument('--big-n', type=int, default=200_000, help='rows a side for the large KAD run')
    p.add_argument('--skip-big', action='store_true')
    p.add_argument('--skip-side', action='store_true', help='only the large KAD run')
    a = p.parse_args()
    if not a.skip_side: side_by_side(a.n, a.dim, a.repeat)
    if not a.skip_big: big(a.big_n, a.dim)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
