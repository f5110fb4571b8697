"""Benchmark OpenL3 embedding on CPU: ours vs torchopenl3 1.0.1, the same seeded random weights, the same hop.

Rows, in time per window (ms, wall and CPU = user + system of all processes) and audio-seconds per wall-second:

  (a) forward only   ours: `Embedder.embed` on the engine's windows (front end included, micro-batches of
                     `OpenL3.micro_batch` as the engine runs them), direct convolutions and `fast=True` (Winograd);
                     torchopenl3: its model on the same windows in batches of 32, as get_audio_embedding runs it
  (b) reference tool path: per file, soundfile -> torchopenl3.get_audio_embedding(audio, sr, center=True, hop_size,
                     sampler='resampy'): downmix, resampy kaiser_best to 48 kHz, framing, model
  (c) ours end to end: the `fad_embed` program (decode, soxr resampling, embed, write .pt files and a manifest), 1 and
                     2 processes (torchrun); "program" is the whole run, "engine" the embedding loop (from the manifest)

and the speed-ups torchopenl3 time / our time. On a shared machine the CPU times are the steadier figures. The audio is generated (harmonic notes, noise bursts, chirps), 44.1 kHz stereo
FLAC. Times are the best of --repeat runs; other work on the machine slows everything (load average printed).

Usage: python benchmarks/bench_openl3.py [--variant mel256_music_512] [--files 3] [--seconds 5] [--hop 0.1]
       [--repeat 1] [--threads 2] [--no-e2e] [--json FILE]
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, soundfile as sf, torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'tests'))            # refs (seeded reference), util.run (a CLI as a real program)
import refs, util
from bench_embed import write_audio         # the same generated music-like audio as bench_embed.py
from fad_pytorch.audio import audio_to_windows, load_audio
from fad_pytorch.embedder import get_embedder


def cpu_s() -> float:
    "CPU time (user + system) of this process and its finished children"
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def best(fn, repeat:int, warm:bool=True) -> tuple[float, float]:
    "Wall and CPU time of the fastest of `repeat` calls (after a warm-up call)"
    if warm: fn()
    ts = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), cpu_s(); fn(); ts.append((time.perf_counter() - t0, cpu_s() - c0))
    return min(ts)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--variant', default='mel256_music_512')
    p.add_argument('--files', type=int, default=3)
    p.add_argument('--seconds', type=float, default=5.0)
    p.add_argument('--hop', type=float, default=0.1)
    p.add_argument('--repeat', type=int, default=1)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--no-e2e', dest='e2e', action='store_false')
    p.add_argument('--json')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')
    import torchopenl3.core as TC
    tmp = Path(tempfile.mkdtemp(prefix='bench_openl3_'))
    try:
        print(f"torch {torch.__version__}, {a.threads} threads, {os.cpu_count()} CPUs ({platform.machine()}), load average "
              f"{os.getloadavg()[0]:.1f}; openl3:{a.variant}, hop {a.hop} s, best of {a.repeat}")
        paths = write_audio(tmp / 'audio', a.files, a.seconds)
        ref = refs.openl3_ref(a.variant, seed=0)
        wfile = refs.save_openl3_file(ref.state_dict(), tmp / f'torchopenl3_{a.variant}.pth.tar')
        ours, fast = (get_embedder(f'openl3:{a.variant}', weights=wfile, opts={'fast': f}) for f in (False, True))
        wavs = [load_audio(path, 48000, 'mono')[0] for path in paths]
        w, h = ours.window_samples(hop=a.hop)
        wins = torch.cat([audio_to_windows(x, w, h, ours.pad, ours.center, ours.short) for x in wavs])
        n, audio_s = len(wins), a.files * a.seconds
        print(f"audio: {a.files} files x {a.seconds:g} s, 44.1 kHz stereo FLAC: {n} windows")
        rows = {}
        with torch.inference_mode():
            rows['ours forward'] = best(lambda: ours.embed(wins), a.repeat)
            rows['ours forward, fast=True (Winograd)'] = best(lambda: fast.embed(wins), a.repeat)
            rows['torchopenl3 forward (batches of 32)'] = best(lambda: [ref(b) for b in wins.split(32)], a.repeat)
            d = (ours.embed(wins) - torch.cat([ref(b) for b in wins.split(32)])).abs().max().item()

        def tool_path():
            for path in paths:
                x, sr = sf.read(path, dtype='float32')
                TC.get_audio_embedding(x, sr, model=ref, center=True, hop_size=a.hop, sampler='resampy', verbose=False)
        rows['torchopenl3 tool path (get_audio_embedding per file)'] = best(tool_path, a.repeat)
        if a.e2e:
            for nproc in (1, 2):
                o = tmp / f'out{nproc}'
                def e2e():
                    shutil.rmtree(o, ignore_errors=True)
                    util.run('fad_embed', f'openl3:{a.variant}', tmp / 'audio', '--weights', wfile, '--out', o,
                             '--hop', a.hop, '--device', 'cpu', nproc=nproc,
                             env={'OMP_NUM_THREADS': str(max(1, a.threads // nproc))}, timeout=7200)
                name = f'ours fad_embed, {nproc} process{"es" if nproc > 1 else ""}'
                rows[f'{name} (program)'] = best(e2e, a.repeat, warm=False)
                rows[f'{name} (engine, wall only)'] = (json.loads(next(o.glob('*/manifest.json')).read_text())['summary']['time'], float('nan'))
        print(f"{'':56s} {'wall s':>8s} {'ms/window':>10s} {'audio-s/s':>10s} {'CPU ms/window':>14s}")
        for k, (v, c) in rows.items(): print(f"{k:56s} {v:8.2f} {v / n * 1e3:10.1f} {audio_s / v:10.2f} {c / n * 1e3:14.1f}")
        ratios = {}
        for what, i in (('wall', 0), ('CPU', 1)):
            ref_fwd, ref_tool = rows['torchopenl3 forward (batches of 32)'][i], rows['torchopenl3 tool path (get_audio_embedding per file)'][i]
            ratios[f'torchopenl3 forward / ours forward ({what})'] = ref_fwd / rows['ours forward'][i]
            ratios[f'torchopenl3 forward / ours forward fast=True ({what})'] = ref_fwd / rows['ours forward, fast=True (Winograd)'][i]
            if a.e2e:
                ratios[f'torchopenl3 tool path / ours fad_embed 1 process ({what})'] = ref_tool / rows['ours fad_embed, 1 process (program)'][i]
                ratios[f'torchopenl3 tool path / ours fad_embed 2 processes ({what})'] = ref_tool / rows['ours fad_embed, 2 processes (program)'][i]
        for k, v in ratios.items(): print(f"  {k:64s} {v:5.2f}x")
        print(f"max |ours - torchopenl3| on these windows: {d:.1e}; load average at the end {os.getloadavg()[0]:.1f}")
        if a.json: Path(a.json).write_text(json.dumps({'args': vars(a), 'windows': n, 'seconds': rows, 'ratios': ratios, 'maxdiff': d}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
