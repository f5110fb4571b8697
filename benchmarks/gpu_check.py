"""The GPU promises, checked on a CUDA machine: every model gives the same embeddings on the GPU as on the CPU (TF32 off),
1 GPU and 2 GPUs give the same bits, and how fast each model runs on a GPU with decode workers.

For each model (`--models`; seeded random weights written in the published formats, as in tests/refs.py), on the same
generated music-like audio (44.1 kHz stereo FLAC, from bench_embed.py), with `fad_embed` run as a program:

  cpu          `--device cpu`, one process (the reference of the next row)
  gpu          `--device cuda`, one process: max |gpu - cpu| over every embedding, absolute and relative to the largest
               |cpu| value. Promise: relative difference ≤ 1e-4 (fp32 on both sides: fad_embed turns TF32 off)
  1 vs 2       `torchrun --nproc_per_node 2` (each process its own GPU; two processes on one GPU when only one is
               there): the outputs equal the one-process GPU run bit for bit. Promise: equal bits
  speed        audio-seconds per second of the engine on one GPU with the default decode workers (from the manifest)

Exit status 1 when a promise is broken (the table says which), 0 otherwise.

Without a GPU, `--device cpu` runs the same code path as a dry run: every "gpu" run is a CPU run (so the differences
must be 0 and the 1 vs 2 comparison is the CPU's), which checks the script itself. Every run uses OMP_NUM_THREADS=1
per process in the CPU rows (on the CPU, VGGish's large linear layer gives other last bits with other thread counts).

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--models logmel vggish pann clap openl3] [--files 6]
       [--seconds 5] [--workdir DIR] [--json FILE]
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_scale import SPECS, model_weights
from bench_embed import write_audio

REL_TOL = 1e-4


def fad_embed(spec:str, audio:Path, out:Path, device:str, weights:Path|None, nproc:int=1, threads:int=1, workers:int|None=None) -> Path:
    "Run fad_embed as a program (torchrun for nproc > 1); the output directory"
    exe = Path(sys.executable).parent / 'fad_embed'
    cmd = [str(exe), spec, str(audio), '--out', str(out), '--device', device]
    if weights: cmd += ['--weights', str(weights)]
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
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    scale = max(a[k].abs().max().item() for k in a)
    return {'max_abs': diff, 'max_rel': diff / max(scale, 1e-30), 'bitwise': all(torch.equal(a[k], b[k]) for k in a)}


def check_model(model:str, audio:Path, work:Path, device:str, ndev:int, audio_s:float) -> dict:
    spec = SPECS[model]
    weights = model_weights(spec, work / 'weights')
    out = work / f'out_{model}'
    shutil.rmtree(out, ignore_errors=True)
    cpu = embeddings(fad_embed(spec, audio, out / 'cpu', 'cpu', weights))
    one_dir = fad_embed(spec, audio, out / 'dev1', device, weights, workers=None)
    one = embeddings(one_dir)
    man = json.loads((one_dir / 'manifest.json').read_text())['summary']
    # under torchrun each process takes its own GPU with --device auto; on the CPU (dry run) --device cpu
    two = embeddings(fad_embed(spec, audio, out / 'dev2', 'auto' if device.startswith('cuda') and ndev > 1 else device, weights, nproc=2))
    c, t = compare(cpu, one), compare(one, two)
    r = {'cpu_vs_device': c, 'one_vs_two': t, 'rate': man['seconds'] / man['time'], 'engine_s': man['time'],
         'ok_device': c['max_rel'] <= REL_TOL, 'ok_two': t['bitwise'], 'two_on': f"{min(2, ndev)} GPU(s)" if device.startswith('cuda') else 'CPU'}
    two_txt = 'same bits' if t['bitwise'] else f"DIFFERENT (max {t['max_abs']:.2e})"
    print(f"{model:8s} |dev-cpu| {c['max_abs']:.2e} (rel {c['max_rel']:.2e}) {'ok' if r['ok_device'] else 'BROKEN'};  "
          f"1 vs 2 processes on {r['two_on']}: {two_txt};  {r['rate']:.1f} audio-s/s on {device} ({audio_s:g} s of audio)", flush=True)
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda', help="cuda (the check), or cpu (a dry run of the same code path)")
    p.add_argument('--models', nargs='+', default=['logmel', 'vggish', 'pann', 'clap', 'openl3'], choices=list(SPECS))
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
    results, t0 = {}, time.perf_counter()
    try:
        for m in a.models: results[m] = check_model(m, work / 'audio', work, a.device, ndev, a.files * a.seconds)
    finally:
        if not a.workdir: shutil.rmtree(work, ignore_errors=True)
    broken = [f"{m}: {'GPU differs from CPU' if not r['ok_device'] else ''}{' and ' if not r['ok_device'] and not r['ok_two'] else ''}"
              f"{'1 vs 2 not bitwise' if not r['ok_two'] else ''}" for m, r in results.items() if not (r['ok_device'] and r['ok_two'])]
    print(f"{time.perf_counter() - t0:.0f} s; " + (f"BROKEN: {'; '.join(broken)}" if broken else "every promise holds"))
    if a.json: Path(a.json).write_text(json.dumps({'device': a.device, 'name': name, 'gpus': ndev, 'results': results}, indent=1))
    sys.exit(1 if broken else 0)


if __name__ == '__main__':
    main()
