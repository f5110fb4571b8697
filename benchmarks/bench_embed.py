"""Benchmark embedding throughput on CPU, ours vs the reference implementations, side by side in one run.

For each model (same seeded random weights in ours and in the reference, same generated audio), in audio-seconds
embedded per wall-second:

  (a) forward only   ours: `Embedder.embed` on the engine's windows (front end included; micro-batches as the engine
                     runs them); the reference model's forward on the same inputs, precomputed the way the reference
                     needs them (VGGish: torchvggish's VGG on waveform_to_examples' examples; PANN: panns_inference's
                     Cnn14 in the 16 kHz configuration on the same 10 s windows; OpenL3: torchopenl3's mel256/512 model
                     on the same 1 s windows, in its batches of 32; CLAP: laion_clap's
                     get_audio_embedding_from_data on the same 10 s windows; PaSST: hear21passt's PasstBasicWrapper,
                     front end included, on the same 10 s windows; MERT-95M: the reference MERTModel (refenv/mert on
                     transformers' HuBERT) on the same whole files, normalised by its Wav2Vec2FeatureExtractor
                     beforehand, all 13 hidden states as fadtk asks for them)
  (b) reference tool path, as the tools run it, file by file: decode, resample, embed (in memory, nothing written)
                     VGGish: torchvggish waveform_to_examples (resampy inside) + VGG, one waveform at a time, as
                     fad_pytorch 0.0.6 calls it; PANN: frechet-audio-distance style, resampy to 16 kHz, whole file
                     per forward; OpenL3: torchopenl3.get_audio_embedding (resampy to 48 kHz, centred, hop 0.1 s)
                     CLAP: laion_clap on the same 10 s windows after soxr HQ to 48 kHz (its own file path crops one
                     10 s window per file at random); PaSST: stable-audio-metrics' passt_kld (soxr HQ to 32 kHz,
                     peak -1 dB, 10 s windows every 5 s, one forward per window); MERT: fadtk's
                     MERTModel._get_embedding per whole file (processor + forward + layer 12) after soxr HQ to 24 kHz
                     (fadtk's torchaudio resampler and 16-bit round trip left out)
  (d) peers        fadtk's and frechet-audio-distance's own pipelines (benchmarks/peers.py), warm, in-process, on the
                     same files with the same random weights: VGGish (fadtk, fad), PANN Cnn14_16k (fad), CLAP
                     HTSAT-base 'music' (fadtk: 10 s windows every 1 s; fad: one call per whole file, laion_clap crops
                     one 10 s window); the "windows" column says how much model work each row did
  (c) ours end to end: the `fad_embed` program (decode -> resample -> embed -> write .pt files and a manifest), 1
                     process and 2 processes (torchrun), the --threads shared among the processes; with --threads 2
                     also 1 process of 1 thread, so that "2 processes / 1 process of 1 thread" shows how the work
                     scales over processes (1 process of 2 threads already uses both cores of a 2-core machine);
                     "program" counts the whole run (start-up, weights check and load included), "engine" the
                     embedding loop only (the time in its manifest)

and the ratios: ours e2e / ours forward, ours / reference (forward, and e2e vs tool path), ours / the fastest peer,
2 processes / 1 process.
Our forward passes always take exactly `micro_batch` windows (zero-padded; this makes results independent of batching),
so a small audio set mostly computes padding: use the default size (12 x 30 s) or larger for numbers you report.
The audio is generated: music-like (harmonic notes with vibrato and envelopes, noise-burst drums, chirps), 44.1 kHz
stereo FLAC. Times are the best of --repeat runs. Other work on the machine slows everything: the load average is
printed at the start and the end.

Add a model by adding a `ModelBench` to `MODELS` (see the entries below). OpenL3 embeds 10 windows per second
of audio (hop 0.1 s, ~0.3 s of CPU each): give it fewer files (`--models openl3 --files 2 --seconds 10`);
benchmarks/bench_openl3.py has more OpenL3 rows (fast=True, other hops, CPU times).

MERT (MERT-v1-95M) embeds whole files (attention over all of a file's frames): give it files of the lengths you evaluate.

Usage: python benchmarks/bench_embed.py [--models vggish pann clap openl3 passt mert] [--files 12] [--seconds 30] [--repeat 2] [--threads 2]
       [--no-e2e] [--no-peers] [--keep DIR] [--json FILE]
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, sys, tempfile, time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
import numpy as np, soundfile as sf, torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'tests'))           # refs.py (reference builders), util.py (run a CLI as a program)
import refs, util
import peers
from fad_pytorch.audio import audio_to_windows, load_audio
from fad_pytorch.embedder import get_embedder


# ------------------------------------------------------------------ audio

def music_like(seconds:float, sr:int, seed:int) -> np.ndarray:
    "Seeded music-like stereo audio (samples, 2) float32: two voices of harmonic notes, noise-burst drums, chirps"
    g = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n)
    for voice, (lo, step) in enumerate(((110.0, 0.5), (220.0, 0.25))):         # a bass line and a melody
        for start in np.arange(0, seconds, step):
            f0 = lo * 2 ** (g.integers(0, 24) / 12)
            a, b = int(start * sr), min(n, int((start + 4 * step) * sr))
            t = np.arange(b - a) / sr
            env = np.minimum(1, t / 0.01) * np.exp(-t * (3 + 3 * voice))
            phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * 5 * t))       # vibrato
            x[a:b] += sum(0.12 / h * np.sin(h * phase + g.uniform(0, 6.3)) for h in range(1, 9) if f0 * h < sr / 2.2) * env
    for s in range(0, n, sr // 4):                                              # drums on an eighth-note grid (120 bpm)
        m = min(sr // 10, n - s)
        x[s:s + m] += g.standard_normal(m) * np.exp(-np.arange(m) / (sr / 200)) * (0.4 if s % (sr // 2) == 0 else 0.15)
    for c in range(3):                                                          # three windowed chirps, ~150 Hz to 12 kHz
        a, m = int(g.uniform(0, max(seconds - 2, 0.1)) * sr), min(2 * sr, n)
        a = min(a, n - m)
        t = np.arange(m) / sr
        x[a:a + m] += 0.1 * np.hanning(m) * np.sin(2 * np.pi * (150 * t + (12000 - 150) / 4 * t ** 2))
    x = x / max(1.0, np.abs(x).max() / 0.9)
    return np.stack([x, 0.8 * np.roll(x, 11) + 0.2 * x], 1).astype(np.float32)


def write_audio(root:Path, files:int, seconds:float, sr:int=44100) -> list[Path]:
    "The benchmark's audio set: `files` FLAC files (PCM_16, stereo) of `seconds` each"
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f'{i:03d}.flac' for i in range(files)]
    for i, p in enumerate(paths):
        if not p.exists(): sf.write(p, music_like(seconds, sr, i), sr, subtype='PCM_16')
    return paths


# ------------------------------------------------------------------ what is measured per model

@dataclass
class ModelBench:
    "How to benchmark one model against its reference"
    spec:str # our registry spec
    reference:Callable # () -> the reference model with seeded random weights
    save_weights:Callable # (reference model, directory) -> the weights file in the published format
    ref_inputs:Callable # (our embedder, list of mono 16 kHz / model-rate tensors) -> precomputed reference inputs (untimed)
    ref_forward:Callable # (reference model, inputs) -> None: the reference model's forward only
    tool_path:Callable # (reference model, list of audio files) -> None: the reference pipeline as tools run it
    tool_name:str # what tool_path reproduces
    ours_core:Callable|None = None # (our embedder, inputs) -> None: an extra "ours" row on the reference's inputs
    custom_weights:bool = False # load the random weights as a custom file (the published file's size or sha256 is pinned)


def windows(emb, wavs:list) -> list[torch.Tensor]:
    "The engine's windows of each file, grouped into tensors of equal window length (short files under pad='end' differ)"
    groups = {}
    for w in wavs:
        x = audio_to_windows(w, *emb.window_samples(), emb.pad, emb.center, emb.short)
        groups.setdefault(x.shape[-1], []).append(x)
    return [torch.cat(g) for g in groups.values()]


def batches(xs:list[torch.Tensor], n:int) -> list[torch.Tensor]:
    "Batches of at most `n` windows, never mixing lengths"
    return [b for x in xs for b in x.split(n)]


def vggish_ref_inputs(emb, wavs):
    "torchvggish's examples of each file (waveform_to_examples at 16 kHz), batched like our micro-batches"
    from torchvggish import vggish_input
    ex = torch.cat([vggish_input.waveform_to_examples(w[0].numpy(), 16000).detach() for w in wavs])
    return batches([ex], emb.micro_batch)


def vggish_tool_path(ref, paths):
    "fad_pytorch 0.0.6's call: per file, soundfile float32 -> waveform_to_examples(x, 44100) (mono mean, resampy) -> VGG"
    from torchvggish import vggish_input
    for p in paths:
        x, sr = sf.read(p, dtype='float32')
        with torch.no_grad(): ref(vggish_input.waveform_to_examples(x, sr))


def pann_ref_inputs(emb, wavs):
    "The same 10 s windows our engine makes, batched like our micro-batches"
    return [b[:, 0] for b in batches(windows(emb, wavs), emb.micro_batch)]


def pann_tool_path(ref, paths):
    "frechet-audio-distance's PANN path: per file, soundfile float32, mono mean, resampy kaiser_best to 16 kHz, whole file"
    import resampy
    for p in paths:
        x, sr = sf.read(p, dtype='float32')
        x = resampy.resample(x.mean(axis=1), sr, 16000)
        with torch.no_grad(): ref(torch.tensor(x).float()[None])['embedding']


def clap_reference():
    "laion_clap's HTSAT-base CLAP_Module (the default model's tower) with seeded random weights, built offline"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return refs.clap_randomize(refs.clap_module('HTSAT-base', False, small_text=True), 0)


def clap_ref_forward(ref, xs):
    "laion_clap's get_audio_embedding_from_data on the engine's 10 s windows, a micro-batch per call"
    for x in xs: ref.get_audio_embedding_from_data(list(x[:, 0]), use_tensor=True)


def clap_tool_path(ref, paths):
    """Per file: soundfile float32, mono mean, soxr HQ to 48 kHz (what librosa.load(sr=48000) in laion_clap's
    get_audio_embedding_from_filelist runs), the same 10 s windows as ours (laion_clap itself would crop one 10 s
    window at random), get_audio_embedding_from_data"""
    import soxr
    for p in paths:
        x, sr = sf.read(p, dtype='float32')
        y = torch.from_numpy(soxr.resample(x.mean(axis=1), sr, 48000, quality='HQ'))[None]
        w = audio_to_windows(y, 480000, 480000, 'end', short='repeat')[:, 0]
        with torch.no_grad(): ref.get_audio_embedding_from_data(list(w), use_tensor=True)


def passt_ref_forward(ref, xs):
    "hear21passt's PasstBasicWrapper forward (front end + network, mode='all') on the engine's 10 s windows, a micro-batch per call"
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):             # hear21passt prints on its first forward
        for x in xs: ref(x)


def passt_tool_path(ref, paths):
    """stable-audio-metrics' passt_kld path per file: soundfile float32, mono mean, soxr HQ to 32 kHz (librosa.load's
    default resampler), peak-normalised to -1 dB (pyloudnorm.normalize.peak), 10 s windows every 5 s (the last one
    zero-padded), one forward per window"""
    import contextlib, io, soxr
    for p in paths:
        x, sr = sf.read(p, dtype='float32')
        y = soxr.resample(x.mean(axis=1), sr, 32000, quality='HQ')
        y = torch.from_numpy((y * (10 ** (-1 / 20) / np.abs(y).max())).astype(np.float32))
        step, win = 5 * 32000, 10 * 32000
        for i in range(0, max(step, len(y) - step), step):
            w = y[i:i + win]
            if len(w) < win and len(w) > 0.15 * win: w = torch.nn.functional.pad(w, (0, win - len(w)))
            with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()): ref(w[None])


def mert_ref_inputs(emb, wavs):
    "The reference preprocessor's output (normalised input_values, attention mask) for the engine's whole files, 4 per call"
    fe = refs.mert_feature_extractor()
    return [fe([w[0].numpy() for w in b], sampling_rate=24000, return_tensors='pt') for b in batches(windows(emb, wavs), emb.micro_batch)]


def mert_tool_path(ref, paths):
    "fadtk's MERT loader per file: soundfile float32, mono mean, soxr HQ to 24 kHz, _get_embedding (whole file, layer 12)"
    import soxr
    from fadtk.model_loader import MERTModel
    ml = MERTModel(layer=12)
    ml.model, ml.processor, ml.device = ref, refs.mert_feature_extractor(), torch.device('cpu')
    for p in paths:
        x, sr = sf.read(p, dtype='float32')
        with torch.no_grad(): ml._get_embedding(soxr.resample(x.mean(axis=1), sr, 24000, quality='HQ'))


def openl3_ref_inputs(emb, wavs):
    "The engine's 1 s windows (centred, hop 0.1 s, as torchopenl3 frames them), in torchopenl3's batches of 32"
    return batches(windows(emb, wavs), 32)


def openl3_tool_path(ref, paths):
    "torchopenl3.get_audio_embedding per file: soundfile float32, downmix, resampy kaiser_best to 48 kHz, centred, hop 0.1 s"
    import logging
    import torchopenl3.core as TC
    logging.disable(logging.WARNING)                 # torchopenl3 logs a warning per resampled file
    for p in paths:
        x, sr = sf.read(p, dtype='float32')
        TC.get_audio_embedding(x, sr, model=ref, center=True, hop_size=0.1, sampler='resampy', verbose=False)
    logging.disable(logging.NOTSET)


MODELS = {
    'vggish': ModelBench(
        spec='vggish', reference=lambda: refs.vggish_fad(seed=0),
        save_weights=lambda ref, d: refs.save_vggish_file(ref.state_dict(), d / 'vggish-10086976.pth'),
        ref_inputs=vggish_ref_inputs, ref_forward=lambda ref, xs: [ref(x) for x in xs],
        tool_path=vggish_tool_path, tool_name='torchvggish waveform_to_examples + VGG per file (fad_pytorch 0.0.6)',
        ours_core=lambda emb, xs: [emb.embed_examples(x) for x in xs]),
    'pann': ModelBench(
        spec='pann:16k', reference=lambda: refs.pann_ref('16k', seed=0),
        save_weights=lambda ref, d: refs.save_pann_file(ref.state_dict(), d / 'Cnn14_16k_mAP=0.438.pth'),
        ref_inputs=pann_ref_inputs, ref_forward=lambda ref, xs: [ref(x) for x in xs],
        tool_path=pann_tool_path, tool_name='frechet-audio-distance style: resampy, whole file per Cnn14_16k forward'),
    'clap': ModelBench(                        # the default's architecture; the default's file has a published sha256
        spec='clap:music_audioset_epoch_15_esc_90.14', reference=clap_reference,
        save_weights=lambda ref, d: refs.clap_save_published(ref.model, d / 'music_audioset_epoch_15_esc_90.14.pt'),
        ref_inputs=lambda emb, wavs: batches(windows(emb, wavs), emb.micro_batch), ref_forward=clap_ref_forward,
        tool_path=clap_tool_path, tool_name='laion_clap get_audio_embedding_from_data per file on our 10 s windows (soxr HQ)'),
    'openl3': ModelBench(
        spec='openl3', reference=lambda: refs.openl3_ref('mel256_music_512', seed=0),
        save_weights=lambda ref, d: refs.save_openl3_file(ref.state_dict(), d / 'torchopenl3_mel256_music_512.pth.tar'),
        ref_inputs=openl3_ref_inputs, ref_forward=lambda ref, xs: [ref(x) for x in xs],
        tool_path=openl3_tool_path, tool_name='torchopenl3.get_audio_embedding per file (resampy, centred, hop 0.1 s)'),
    'passt': ModelBench(                       # the published 10 s file's size and sha256 are pinned: random weights load as custom
        spec='passt', reference=lambda: refs.passt_ref_random('base-10s', seed=0),
        save_weights=lambda ref, d: refs.save_passt_file(ref.net.state_dict(), d / 'passt-s-f128-p16-s10-ap.476-swa.pt'),
        ref_inputs=lambda emb, wavs: [b[:, 0] for b in batches(windows(emb, wavs), emb.micro_batch)],
        ref_forward=passt_ref_forward, tool_path=passt_tool_path, custom_weights=True,
        tool_name='stable-audio-metrics passt_kld style: soxr HQ, peak -1 dB, 10 s windows every 5 s, one forward each'),
    'mert': ModelBench(                        # two files (config.json, pytorch_model.bin): the weights are a directory
        spec='mert', reference=lambda: refs.mert_ref('mert_base', seed=0),
        save_weights=lambda ref, d: refs.save_mert_published(ref, d / 'MERT-v1-95M'),
        ref_inputs=mert_ref_inputs, ref_forward=lambda ref, xs: [ref(**x, output_hidden_states=True) for x in xs],
        tool_path=mert_tool_path, tool_name="fadtk MERTModel._get_embedding per whole file (soxr HQ to 24 kHz)"),
}


# ------------------------------------------------------------------ timing

def best(fn:Callable, repeat:int, warmup:Callable|None=None) -> float:
    "Best wall time of `repeat` calls, after one warm-up call"
    (warmup or fn)()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)


def e2e(spec:str, audio:Path, weights:Path, out:Path, nproc:int, threads:int, repeat:int, custom:bool=False) -> dict:
    "Run fad_embed as a real program `repeat` times; best program wall time and best engine time (from the manifest)"
    walls, engines = [], []
    for r in range(repeat):
        o = out / f'{nproc}p_{threads}t_{r}'                       # a fresh directory: a rerun would resume
        shutil.rmtree(o, ignore_errors=True)                        # (--keep keeps those of an earlier invocation)
        t0 = time.perf_counter()
        util.run('fad_embed', spec, audio, '--weights', weights, '--out', o, *(['--custom-weights'] if custom else []), nproc=nproc,
                 env={'OMP_NUM_THREADS': str(max(1, threads // nproc))}, timeout=7200)
        walls.append(time.perf_counter() - t0)
        (man,) = o.glob('*/manifest.json')
        engines.append(json.loads(man.read_text())['summary']['time'])
    return {'program': min(walls), 'engine': min(engines)}


def bench_model(name:str, mb:ModelBench, paths:list[Path], audio_s:float, a, tmp:Path) -> dict:
    "All measurements of one model"
    print(f"\n== {name} ({mb.spec})", flush=True)
    t0 = time.perf_counter()
    ref = mb.reference().eval()
    wdir = tmp / f'weights_{name}'; wdir.mkdir(exist_ok=True)
    wfile = mb.save_weights(ref, wdir)
    emb = get_embedder(mb.spec, weights=wfile, custom_weights=mb.custom_weights)
    print(f"setup (reference build, weights written and loaded): {time.perf_counter() - t0:.1f} s", flush=True)
    # the same audio at the model's rate, as our engine decodes it (untimed for the forward-only rows)
    wavs = [load_audio(p, emb.sample_rate, 'mono')[0] for p in paths]
    wins = windows(emb, wavs)
    xs = mb.ref_inputs(emb, wavs)
    nwin, m = sum(len(w) for w in wins), emb.micro_batch
    padded = sum(-(-len(w) // m) * m for w in wins)
    print(f"{nwin} windows; our forward passes of exactly {m} windows compute {padded} ({100 * (padded - nwin) / padded:.0f} % "
          f"zero padding: small sets are dominated by it)", flush=True)
    rows = {}
    with torch.inference_mode():
        rows['ours forward'] = best(lambda: [emb.embed(w) for w in wins], a.repeat, lambda: emb.embed(wins[0][:emb.micro_batch]))
        if mb.ours_core: rows['ours network only (reference inputs)'] = best(lambda: mb.ours_core(emb, xs), a.repeat, lambda: mb.ours_core(emb, xs[:1]))
        rows['reference forward'] = best(lambda: mb.ref_forward(ref, xs), a.repeat, lambda: mb.ref_forward(ref, xs[:1]))
    rows['reference tool path'] = best(lambda: mb.tool_path(ref, paths), a.repeat, lambda: mb.tool_path(ref, paths[:1]))
    nwins = {'ours forward': nwin}
    for pname, make in (peers.PEERS.get(name, {}) if a.peers else {}).items():
        try:
            t0 = time.perf_counter()
            run, got = make(paths, wfile, tmp / f'peer_{name}'), {}
            print(f"{pname}: set up in {time.perf_counter() - t0:.1f} s", flush=True)
            rows[f'peer {pname}'] = best(lambda: got.__setitem__('w', run(paths)), a.repeat, lambda: run(paths[:1]))
            nwins[f'peer {pname}'] = got['w']
        except Exception as e: print(f"peer {pname}: could not run it ({type(e).__name__}: {str(e)[:300]})", flush=True)
    if a.e2e:
        runs = [(1, a.threads, '1 process'), (2, a.threads, '2 processes')]
        if a.threads > 1: runs.insert(1, (1, 1, '1 process, 1 thread'))
        for nproc, threads, label in runs:
            r = e2e(mb.spec, paths[0].parent, wfile, tmp / f'out_{name}', nproc, threads, a.repeat, mb.custom_weights)
            rows[f'ours fad_embed, {label} (program)'] = r['program']
            rows[f'ours fad_embed, {label} (engine)'] = r['engine']
    rate = {k: audio_s / v for k, v in rows.items()}
    print(f"{'':52s} {'wall s':>8s} {'audio-s/s':>10s} {'windows':>8s}")
    for k, v in rows.items(): print(f"{k:52s} {v:8.2f} {rate[k]:10.1f} {nwins.get(k, nwin if k.startswith('ours') else ''):>8}")
    print(f"  reference tool path = {mb.tool_name}")
    ratios = {'ours forward / reference forward': rate['ours forward'] / rate['reference forward']}
    if a.e2e:
        e1, e2 = rate['ours fad_embed, 1 process (program)'], rate['ours fad_embed, 2 processes (program)']
        ratios.update({'ours e2e (1 process, program) / ours forward': e1 / rate['ours forward'],
                       'ours e2e (1 process, engine) / ours forward': rate['ours fad_embed, 1 process (engine)'] / rate['ours forward'],
                       'ours e2e (1 process, program) / reference tool path': e1 / rate['reference tool path'],
                       'ours e2e (best, program) / reference tool path': max(e1, e2) / rate['reference tool path'],
                       '2 processes / 1 process (program)': e2 / e1,
                       '2 processes / 1 process (engine)': rate['ours fad_embed, 2 processes (engine)'] / rate['ours fad_embed, 1 process (engine)']})
        if a.threads > 1:                      # process scaling: each of the 2 processes has 1 thread
            ratios['2 processes / 1 process of 1 thread (engine)'] = (rate['ours fad_embed, 2 processes (engine)'] /
                                                                      rate['ours fad_embed, 1 process, 1 thread (engine)'])
    fastest = max((k for k in rows if k.startswith('peer ')), key=lambda k: rate[k], default=None)
    if fastest and a.e2e:
        ratios[f'ours e2e (1 process, engine) / fastest peer ({fastest[5:]})'] = rate['ours fad_embed, 1 process (engine)'] / rate[fastest]
        ratios[f'ours e2e (1 process, program) / fastest peer ({fastest[5:]})'] = rate['ours fad_embed, 1 process (program)'] / rate[fastest]
    if fastest: ratios[f'ours forward / fastest peer ({fastest[5:]})'] = rate['ours forward'] / rate[fastest]
    for k, v in ratios.items(): print(f"  {k:60s} {v:6.2f}x")
    return {'seconds': rows, 'rate': rate, 'ratios': ratios, 'windows': nwins}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    p.add_argument('--files', type=int, default=12, help='number of audio files')
    p.add_argument('--seconds', type=float, default=30.0, help='length of each file')
    p.add_argument('--repeat', type=int, default=2, help='timed runs per measurement (the best is kept)')
    p.add_argument('--threads', type=int, default=2, help='torch threads (shared by the processes of the 2-process run)')
    p.add_argument('--no-e2e', dest='e2e', action='store_false', help='skip the fad_embed program runs')
    p.add_argument('--no-peers', dest='peers', action='store_false', help="skip fadtk's and frechet-audio-distance's own pipelines")
    p.add_argument('--keep', help='directory for the audio, weights and outputs (kept; default: a temporary one)')
    p.add_argument('--json', help='also write the results here')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix='bench_embed_'))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {a.threads} threads, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average {os.getloadavg()[0]:.1f}; best of {a.repeat}")
    t0 = time.perf_counter()
    paths = write_audio(tmp / 'audio', a.files, a.seconds)
    audio_s = a.files * a.seconds
    print(f"audio: {a.files} files x {a.seconds:g} s = {audio_s:g} s, 44.1 kHz stereo FLAC, in {tmp / 'audio'} "
          f"({time.perf_counter() - t0:.1f} s to generate)")
    results = {}
    try:
        for name in a.models: results[name] = bench_model(name, MODELS[name], paths, audio_s, a, tmp)
    finally:
        if not a.keep:
            import shutil; shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if a.json: Path(a.json).write_text(json.dumps({'args': vars(a), 'audio_seconds': audio_s, 'results': results}, indent=1))


if __name__ == '__main__':
    main()
