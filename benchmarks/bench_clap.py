"""Benchmark the CLAP embedder against laion_clap 1.1.7 on CPU, with the same random weights.

  forward     N non-overlapping 10 s windows at 48 kHz, already in memory (N = the end-to-end audio in 10 s windows,
              rounded up to whole micro-batches): ours `ClapAudio.embed` (micro-batches of 8) vs laion_clap
              `get_audio_embedding_from_data(windows, use_tensor=True)` (all windows in one call)
  end to end  a directory of 44.1 kHz FLAC files -> one embedding per 10 s window (CLAP's default framing), saved:
              ours `embed_dir` (decode, soxr HQ to 48 kHz, windows, model, one .pt per file, manifest) vs the same work
              through laion_clap: soundfile + soxr HQ (what librosa.load(sr=48000) in its get_audio_embedding_from_filelist
              runs, less librosa's length fix, which can add a zero sample and so a window), the same windows,
              get_audio_embedding_from_data, torch.save

Both sides load the same seeded random weights (laion_clap's model, written in the published checkpoint format and
read by our loader; tests/refs.py builds the reference offline). Prints audio-seconds per wall-second (best of
--repeat), the ratio ours/laion_clap, and the max |diff| of the embeddings (same weights, same windows: ~1e-7).

Usage: python benchmarks/bench_clap.py [--tower HTSAT-tiny|HTSAT-base] [--fusion] [--files 6] [--seconds 30]
                                       [--repeat 2] [--threads 2] [--json FILE]
"""
import argparse, json, os, shutil, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, soundfile as sf, soxr, torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests'))
import refs
from fad_pytorch.audio import audio_to_windows
from fad_pytorch.embedder import get_embedder
from fad_pytorch.fad_embed import embed_dir
from fad_pytorch.models.clap import CLIP

VARIANT = {('HTSAT-tiny', False): '630k-best', ('HTSAT-base', False): 'music_audioset_epoch_15_esc_90.14',
           ('HTSAT-tiny', True): '630k-fusion-best'}


def music(n:int, sr:int, seed:int) -> np.ndarray:
    "n samples of a seeded music-like signal: two voices with harmonics and note changes, plus a little noise"
    g = np.random.default_rng(seed)
    t = np.arange(n) / sr
    notes = 220 * 2 ** (g.integers(0, 24, size=(2, int(t[-1] // 0.25) + 1)) / 12)
    x = sum(np.sin(2 * np.pi * k * notes[v][(t // 0.25).astype(int)] * t) / k for v in range(2) for k in range(1, 6))
    return (0.15 * x + 0.01 * g.standard_normal(n)).astype(np.float32)


def best(f, repeat:int):
    "Best wall time of `repeat` calls, and the last result"
    ts, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return min(ts), out


def bench_clap(tower:str='HTSAT-tiny', # 'HTSAT-tiny' or 'HTSAT-base'
               fusion:bool=False, # a fusion model (HTSAT-tiny only)
               files:int=6, # audio files in the end-to-end case
               seconds:float=30.0, # length of each file
               repeat:int=2, # timed runs; the best counts
               num_workers:int=0, # decoding processes for ours (0: in the main process, like the reference)
              ) -> dict: # audio seconds, times, rates and differences of both cases
    "Ours vs laion_clap: forward on 10 s windows, and end to end from audio files to saved embeddings"
    tmp = Path(tempfile.mkdtemp(prefix='bench_clap_'))
    try:
        variant = VARIANT[tower, fusion]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            ref = refs.clap_randomize(refs.clap_module(tower, fusion, small_text=True), 0)
        path = refs.clap_save_published(ref.model, tmp / f'{variant}.pt')
        emb = get_embedder(f'clap:{variant}', weights=path)
        res = {'tower': tower, 'fusion': fusion, 'variant': variant, 'threads': torch.get_num_threads()}

        # forward only: non-overlapping 10 s windows at 48 kHz
        m = emb.micro_batch
        n = -(-max(1, int(files * seconds // 10)) // m) * m
        wins = torch.from_numpy(np.stack([music(CLIP, 48000, 100 + i) for i in range(n)]))
        with torch.inference_mode():
            emb.embed(wins[:1, None]); ref.get_audio_embedding_from_data(list(wins[:1]), use_tensor=True)   # warm up
            t_ours, e_ours = best(lambda: emb.embed(wins[:, None]), repeat)
            t_ref, e_ref = best(lambda: ref.get_audio_embedding_from_data(list(wins), use_tensor=True), repeat)
        res['forward'] = {'audio_s': 10.0 * n, 'ours_s': t_ours, 'ref_s': t_ref, 'max_diff': (e_ours - e_ref).abs().max().item()}

        # end to end: 44.1 kHz FLAC files -> saved embeddings of every 10 s window
        src = tmp / 'audio'; src.mkdir()
        for i in range(files): sf.write(src / f'{i:03d}.flac', music(int(seconds * 44100), 44100, i), 44100)

        def ours():
            out = tmp / 'ours'
            shutil.rmtree(out, ignore_errors=True)
            embed_dir(emb, src, out, resampler='soxr_hq', num_workers=num_workers, progress=False)
            return out

        def reference():
            out = tmp / 'ref'; out.mkdir(exist_ok=True)
            for p in sorted(src.glob('*.flac')):
                y, sr = sf.read(p, dtype='float32')
                y = soxr.resample(y, sr, 48000, quality='HQ')
                w = audio_to_windows(torch.from_numpy(y)[None], CLIP, CLIP, 'end', short='repeat')[:, 0]
                with torch.no_grad(): e = ref.get_audio_embedding_from_data(list(w), use_tensor=True)
                torch.save(e, out / f'{p.name}.pt')
            return out

        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            t_ours, d_ours = best(ours, repeat)
            t_ref, d_ref = best(reference, repeat)
        diff = max((torch.load(d_ours / f'{p.name}.pt', weights_only=True)['embeddings'] -
                    torch.load(d_ref / f'{p.name}.pt', weights_only=True)).abs().max().item() for p in src.glob('*.flac'))
        res['end_to_end'] = {'audio_s': files * seconds, 'ours_s': t_ours, 'ref_s': t_ref, 'max_diff': diff}
        for k in ('forward', 'end_to_end'):
            r = res[k]
            r['ours_rate'], r['ref_rate'] = r['audio_s'] / r['ours_s'], r['audio_s'] / r['ref_s']
            r['ratio'] = r['ref_s'] / r['ours_s']
        return res
    finally: shutil.rmtree(tmp, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tower', default='HTSAT-tiny', choices=['HTSAT-tiny', 'HTSAT-base'])
    p.add_argument('--fusion', action='store_true', help='a fusion model (HTSAT-tiny)')
    p.add_argument('--files', type=int, default=6)
    p.add_argument('--seconds', type=float, default=30.0)
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--num-workers', type=int, default=0, help="ours: decoding processes (0: in the main process)")
    p.add_argument('--json', help='also write the results here')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    r = bench_clap(a.tower, a.fusion, a.files, a.seconds, a.repeat, a.num_workers)
    print(f"CLAP {r['tower']}{' fusion' if r['fusion'] else ''} (clap:{r['variant']}, random weights), torch "
          f"{torch.__version__}, {r['threads']} threads, {os.cpu_count()} CPUs; best of {a.repeat}")
    print(f"{'case':<12} {'audio s':>8} {'ours s':>8} {'laion s':>8} {'ours audio-s/s':>15} {'laion audio-s/s':>16} "
          f"{'laion/ours':>10} {'max |diff|':>10}")
    for k in ('forward', 'end_to_end'):
        x = r[k]
        print(f"{k:<12} {x['audio_s']:>8.0f} {x['ours_s']:>8.2f} {x['ref_s']:>8.2f} {x['ours_rate']:>15.1f} "
              f"{x['ref_rate']:>16.1f} {x['ratio']:>9.2f}x {x['max_diff']:>10.1e}")
    if a.json: Path(a.json).write_text(json.dumps(r, indent=1))


if __name__ == '__main__':
    main()
