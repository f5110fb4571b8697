"""The GPU promises, checked on a CUDA machine: every model gives the same embeddings on the GPU as on the CPU (TF32 off),
1 GPU and 2 GPUs give the same bits, and how fast each model runs on a GPU with decode workers.

For each model (`--models`, default all: logmel, vggish, pann (16k), clap (HTSAT-base music), openl3 (mel256/512),
passt (base-10s), mert (v1-95m), encodec:24k, encodec:48k, dac (44 kHz), msclap (2023), sc09, and the Hugging Face
speech encoders wav2vec2:base, hubert:base, wavlm:base and whisper:tiny), seeded random weights of the full published
architecture are written in the published format by the builders the tests use (tests/refs.py; `MODELS` below says
which; msclap's text tower, which the embedder never runs, is refs' small GPT-2) and given to `fad_embed` (with `--custom-weights` where the published file's size or sha256 is pinned). On the
same generated music-like audio (44.1 kHz stereo FLAC, from bench_embed.py), with `fad_embed` run as a program:

  cpu          `--device cpu`, one process (the reference of the next row)
  gpu          `--device cuda`, one process: max |gpu - cpu| over every embedding, absolute and relative to the largest
               |cpu| value. Promise: relative difference ≤ 1e-4 for every model (`Recipe.tol`): every model computes
               in fp32 on both sides (fad_embed turns TF32 off), so nothing justifies a looser bound for any of them
               before a GPU run shows otherwise
  1 vs 2       `torchrun --nproc_per_node 2` (each process its own GPU; two processes on one GPU when only one is
               there): the outputs equal the one-process GPU run bit for bit. Promise: equal bits
  speed        audio-seconds per second of the engine on one GPU with the default decode workers (from the manifest)

A model whose builders are not importable (wav2vec2/hubert/wavlm/whisper and msclap need `transformers`; passt
hear21passt, encodec encodec, dac descript-audio-codec) or whose reference code is absent (mert: shared/refenv/mert,
sc09: shared/refenv/sashimi, or $FAD_REFENV) is listed as skipped with the reason. A model whose run fails is reported
as failed (the end of its error) and the check goes on with the next one.

Exit status 1 when a promise is broken or a model's run failed (the last line says which), 0 otherwise.

Without a GPU, `--device cpu` runs the same code path as a dry run: every "gpu" run is a CPU run (so the differences
must be 0 and the 1 vs 2 comparison is the CPU's), which checks the script itself. Every run uses OMP_NUM_THREADS=1
per process (on the CPU, VGGish's large linear layer gives other last bits with other thread counts), except the CPU
reference row on a GPU machine, which uses half its cores (other thread counts change only last bits, far below 1e-4).
The dry run of every model passes on a 2-core machine (`--device cpu --files 2 --seconds 2`: 504 s, DAC 140 s of it;
the weights of all models take 3.6 GB in the work folder). On a GPU machine, the default (6 files of 5 s, every model)
is dominated by the CPU reference rows (DAC, PaSST, OpenL3 are slow on a CPU); where one command may run 10 minutes at
most, split the models over two calls (e.g. `--models logmel vggish pann clap openl3 passt mert encodec:24k`, then the
rest).

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--models logmel vggish ... whisper:tiny] [--files 6]
       [--seconds 5] [--workdir DIR] [--json FILE]
"""
from __future__ import annotations
import argparse, importlib.util, json, os, shutil, subprocess, sys, tempfile, time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / 'tests'))           # refs.py: reference builders (random weights in published formats)
import refs
from bench_scale import SPECS, model_weights
from bench_embed import write_audio

REL_TOL = 1e-4


# ------------------------------------------------------------------ the models: spec and random weights

def once(path:Path, write:Callable[[Path], object]) -> Path:
    "`path`, written by `write(path)` unless it is already there (a --workdir reused keeps its weights)"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    return path


def hf_speech_dir(family:str, variant:str, path:Path) -> Path:
    "A repository directory of the variant's published architecture (`SPEECH_VARIANTS`), seeded, laid out as published"
    from fad_pytorch.models.hfspeech import SPEECH_VARIANTS
    v = SPEECH_VARIANTS[family][variant]
    pre = None if family == 'whisper' else {'do_normalize': bool(v.normalize)}
    return refs.save_hf_speech_dir(refs.hf_speech_ref(dict(model_type=family, **v.arch), seed=0), path, preprocessor=pre)


@dataclass(frozen=True)
class Recipe:
    "How the check gets one model: fad_embed's spec, seeded random weights in the published format, what building them needs"
    spec:str # fad_embed's MODEL argument
    weights:Callable[[Path], Path|None] # folder -> the weights file or directory written there (None: a weight-free model)
    custom:bool=False # pass --custom-weights: random weights are not the published file, whose size or sha256 is pinned
    needs:tuple=() # modules the builders import: the model is skipped when one is missing
    refenv:str|None=None # reference code the builder needs: 'mert' or 'sashimi' (shared/refenv/..., or $FAD_REFENV)
    tol:float=REL_TOL # the promise: max |gpu - cpu| / max |cpu|


def _old(name:str) -> Recipe:
    "The first five models: bench_scale's recipes"
    return Recipe(SPECS[name], lambda d, s=SPECS[name]: model_weights(s, d))


def _encodec(variant:str) -> Recipe:
    from fad_pytorch.models.encodec import ENCODEC_VARIANTS
    return Recipe(f'encodec:{variant}', lambda d: once(d / ENCODEC_VARIANTS[variant].checkpoint.file,
                                                       lambda p: refs.save_encodec_file(refs.encodec_ref(variant, seed=0), p)),
                  custom=True, needs=('encodec',))


def _dac(d:Path) -> Path:
    from fad_pytorch.models.dac import DAC_CHECKPOINT
    return once(d / DAC_CHECKPOINT.file, lambda p: refs.save_dac_file(refs.dac_ref(seed=0), p))


def _hf(family:str, variant:str) -> Recipe:
    return Recipe(f'{family}:{variant}', lambda d: once(d / f'{family}-{variant}', lambda p: hf_speech_dir(family, variant, p)),
                  custom=True, needs=('transformers',))


MODELS = {
    **{m: _old(m) for m in ('logmel', 'vggish', 'pann', 'clap', 'openl3')},
    'passt': Recipe('passt:base-10s', lambda d: once(d / 'passt-s-f128-p16-s10-ap.476-swa.pt', lambda p: refs.save_passt_file(
        refs.passt_ref_random('base-10s', seed=0).net.state_dict(), p)), custom=True, needs=('hear21passt', 'timm')),
    'mert': Recipe('mert:v1-95m', lambda d: once(d / 'MERT-v1-95M', lambda p: refs.save_mert_published(refs.mert_ref('mert_base', seed=0), p)),
                   custom=True, needs=('transformers',), refenv='mert'),
    'encodec:24k': _encodec('24k'),
    'encodec:48k': _encodec('48k'),
    'dac': Recipe('dac:44khz', _dac, custom=True, needs=('dac', 'audiotools')),
    'msclap': Recipe('msclap:2023', lambda d: once(d / 'CLAP_weights_2023.pth', lambda p: refs.msclap_save_published(
        refs.msclap_randomize(refs.msclap_model(), 0), p)), custom=True, needs=('msclap', 'transformers')),
    'sc09': Recipe('sc09', lambda d: once(d / 'resnext.pth', lambda p: refs.save_sc09_file(refs.sc09_ref(seed=0), p)),
                   custom=True, refenv='sashimi'),
    **{f'{f}:{v}': _hf(f, v) for f, v in (('wav2vec2', 'base'), ('hubert', 'base'), ('wavlm', 'base'), ('whisper', 'tiny'))},
}


def missing(r:Recipe) -> str|None:
    "Why the model cannot be checked here (a builder's package or the reference code is absent), or None"
    gone = [m for m in r.needs if importlib.util.find_spec(m) is None]
    if gone: return (f"needs {', '.join(gone)} (not importable): install the test dependencies (.ci/setup)"
                     + (", or pip install 'fad_pytorch[hf]' for transformers" if 'transformers' in gone else ''))
    if r.refenv and {'mert': refs.mert_refenv, 'sashimi': refs.sashimi_refenv}[r.refenv]() is None:
        return f"needs the reference code shared/refenv/{r.refenv} beside the repository; set $FAD_REFENV"
    return None


# ------------------------------------------------------------------ running and comparing

def fad_embed(spec:str, audio:Path, out:Path, device:str, weights:Path|None, nproc:int=1, threads:int=1, workers:int|None=None,
              custom:bool=False) -> Path:
    "Run fad_embed as a program (torchrun for nproc > 1); the output directory"
    exe = Path(sys.executable).parent / 'fad_embed'
    cmd = [str(exe), spec, str(audio), '--out', str(out), '--device', device]
    if weights: cmd += ['--weights', str(weights)] + (['--custom-weights'] if custom else [])
    if workers is not None: cmd += ['--num-workers', str(workers)]
    if nproc > 1: cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', '--no-python', '--'] + cmd
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0: raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    return d


def embeddings(d:Path) -> dict:
    return {p.relative_to(d).as_posix(): torch.load(p, weights_only=True)['embeddings'] for p in sorted(d.rglob('*.pt'))}


def compare(a:dict, b:dict) -> dict:
    "Max absolute difference, relative to the largest |a|, and whether every tensor is equal bit for bit"
    assert a.keys() == b.keys() and a, (sorted(a)[:3], sorted(b)[:3])
    diff = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    scale = max(a[k].abs().max().item() for k in a)
    return {'max_abs': diff, 'max_rel': diff / max(scale, 1e-30), 'bitwise': all(torch.equal(a[k], b[k]) for k in a)}


def check_model(model:str, audio:Path, work:Path, device:str, ndev:int, audio_s:float) -> dict:
    "The three runs of one model and their comparisons (a printed line and a result dict)"
    rec, t0 = MODELS[model], time.perf_counter()
    weights = rec.weights(work / 'weights')
    tw = time.perf_counter() - t0
    out = work / f"out_{model.replace(':', '-')}"
    shutil.rmtree(out, ignore_errors=True)
    run = lambda sub, dev, **kw: fad_embed(rec.spec, audio, out / sub, dev, weights, custom=rec.custom, **kw)
    # the CPU reference: one thread in the dry run (its rows are compared bit for bit); on a GPU machine half its cores
    cpu = embeddings(run('cpu', 'cpu', threads=1 if device == 'cpu' else max(1, (os.cpu_count() or 2) // 2)))
    one_dir = run('dev1', device)
    one = embeddings(one_dir)
    man = json.loads((one_dir / 'manifest.json').read_text())['summary']
    # under torchrun each process takes its own GPU with --device auto; on the CPU (dry run) --device cpu
    two = embeddings(run('dev2', 'auto' if device.startswith('cuda') and ndev > 1 else device, nproc=2))
    c, t = compare(cpu, one), compare(one, two)
    r = {'spec': rec.spec, 'cpu_vs_device': c, 'one_vs_two': t, 'tol': rec.tol, 'rate': man['seconds'] / man['time'],
         'engine_s': man['time'], 'weights_s': tw, 'check_s': time.perf_counter() - t0,
         'ok_device': c['max_rel'] <= rec.tol, 'ok_two': t['bitwise'], 'two_on': f"{min(2, ndev)} GPU(s)" if device.startswith('cuda') else 'CPU'}
    two_txt = 'same bits' if t['bitwise'] else f"DIFFERENT (max {t['max_abs']:.2e})"
    print(f"{model:13s} |dev-cpu| {c['max_abs']:.2e} (rel {c['max_rel']:.2e} vs {rec.tol:g}) {'ok' if r['ok_device'] else 'BROKEN'};  "
          f"1 vs 2 processes on {r['two_on']}: {two_txt};  {r['rate']:.1f} audio-s/s on {device} ({audio_s:g} s of audio);  "
          f"{r['check_s']:.0f} s ({tw:.0f} s writing weights)", flush=True)
    return r


def verdict(m:str, r:dict) -> str|None:
    "What is broken for one model ('' parts joined), or None"
    if 'error' in r: return f"{m}: run failed"
    bad = [w for ok, w in ((r['ok_device'], 'GPU differs from CPU'), (r['ok_two'], '1 vs 2 not bitwise')) if not ok]
    return f"{m}: {' and '.join(bad)}" if bad else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda', help="cuda (the check), or cpu (a dry run of the same code path)")
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    p.add_argument('--files', type=int, default=6)
    p.add_argument('--seconds', type=float, default=5.0)
    p.add_argument('--workdir')
    p.add_argument('--json')
    a = p.parse_args()
    if a.device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run it on a GPU machine, or pass --device cpu for a dry run of the code path")
    ndev = torch.cuda.device_count() if a.device.startswith('cuda') else 0
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix='gpu_check_'))
    work.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if ndev else 'CPU (dry run)'
    print(f"torch {torch.__version__}, device {a.device}: {name}, {ndev} GPU(s); {os.cpu_count()} CPUs", flush=True)
    write_audio(work / 'audio', a.files, a.seconds)
    results, skipped, t0 = {}, {}, time.perf_counter()
    try:
        for m in a.models:
            why = missing(MODELS[m])
            if why:
                skipped[m] = why
                print(f"{m:13s} skipped: {why}", flush=True)
                continue
            try: results[m] = check_model(m, work / 'audio', work, a.device, ndev, a.files * a.seconds)
            except Exception as e:                          # report it and go on: one model's failure is not the others'
                results[m] = {'spec': MODELS[m].spec, 'error': f"{type(e).__name__}: {e}"[-3000:]}
                print(f"{m:13s} FAILED: {results[m]['error']}", flush=True)
    finally:
        if not a.workdir: shutil.rmtree(work, ignore_errors=True)
    broken = [v for m, r in results.items() if (v := verdict(m, r))]
    print(f"{time.perf_counter() - t0:.0f} s; " + (f"BROKEN: {'; '.join(broken)}" if broken else "every promise holds")
          + (f"; skipped: {', '.join(skipped)}" if skipped else ''))
    if a.json: Path(a.json).write_text(json.dumps({'device': a.device, 'name': name, 'gpus': ndev, 'results': results,
                                                   'skipped': skipped}, indent=1))
    sys.exit(1 if broken else 0)


if __name__ == '__main__':
    main()
