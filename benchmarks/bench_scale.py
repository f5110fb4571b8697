"""Benchmark fad_embed on large sets of short files: does the cost per file stay flat as sets grow?

For each size (default 1 000, 10 000 and 100 000 one-second 16 kHz mono WAV files, 1 000 per folder) and model
(`logmel`, weight-free; `vggish`, seeded random weights written in the published format, see tests/refs.py):

  run          `fad_embed` as a program (default decode workers): wall time, files/s, peak memory (max RSS of the
               program or of one of its workers, from GNU time), engine time (from the manifest), manifest and .pt sizes
  overhead     (logmel only) the engine with --num-workers 0 and one thread, minus the time to decode the same files
               and to run the model's forward on the same windows in the same micro-batches, per file: what the
               engine adds (batching, writing, journal, bookkeeping)
  resume       planning a rerun, in-process, timed: `FolderSet.list` + `previous_state` + `FolderSet.plan`
               - all done: a finished output directory
               - half done: the state `kill -9` leaves halfway (manifest all `pending`, the journal holding the first
                 half, the second half's .pt files gone), then (sets up to --complete-max files) the program
                 completing it; the completed files are compared with those of the first run, bit for bit
               - the program rerun when all is done (wall time, start-up included)
  fad_score    `fad_score OUT OUT --json` as a program: wall time, peak memory, and the value (0 up to rounding)

and, per model (`--startup-models`), fad_embed's start-up: import, loading the weights (first time: with the sha256
of the file; again: from the verification record), the checkpoint check alone (a full sha256, then the record),
decode workers (time to the first decoded file), and the program's wall time on one file minus its engine time.

`check_size` is the same code path with its results checked; tests/test_scale.py runs it on 2 000 files in CI
(no timing assertions). The 100 000-file run takes a long time on 2 cores (VGGish ~1 h): run it alone.

Usage: python benchmarks/bench_scale.py [--sizes 1000 10000 100000] [--models logmel vggish] [--startup-models logmel
       vggish pann clap] [--workdir DIR] [--json FILE]
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, soundfile as sf, torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'tests'))           # refs.py: reference builders (random weights in published formats)
from fad_pytorch.audio import AudioPolicy
from fad_pytorch.embdir import MANIFEST, config_id, emb_path, read_manifest
from fad_pytorch.fad_embed import (Choices, FolderSet, JOURNAL_PREFIX, JOURNAL_SUFFIX, embed_provenance, load_model,
                                   previous_state, settings_for, default_workers, AudioFiles, _worker_init)

SR = 16000


# ------------------------------------------------------------------ data

def write_clips(root:Path, n:int, seconds:float=1.0) -> Path:
    "n one-second mono 16 kHz PCM_16 WAV files of seeded noise (a different gain and slice each), 1 000 per folder"
    done = root / f'.complete_{n}'
    if done.exists(): return root
    base = (np.random.default_rng(0).standard_normal(int(SR * seconds) + 65536) * 0.1).astype(np.float32)
    m = int(SR * seconds)
    for i in range(n):
        d = root / f'{i // 1000:03d}'
        if i % 1000 == 0: d.mkdir(parents=True, exist_ok=True)
        o = (i * 7919) % 65536
        sf.write(d / f'{i:06d}.wav', base[o:o + m] * (0.5 + (i % 10) / 10), SR, subtype='PCM_16')
    done.touch()
    return root


def model_weights(spec:str, wdir:Path) -> Path|None:
    "A weights file of seeded random weights in the published format (None: the model has no weights)"
    import refs
    wdir.mkdir(parents=True, exist_ok=True)
    if spec == 'logmel': return None
    if spec == 'vggish':
        p = wdir / 'vggish-10086976.pth'
        if not p.exists(): refs.save_vggish_file(refs.vggish_fad(seed=0).state_dict(), p)
        return p
    if spec == 'pann:16k':
        p = wdir / 'Cnn14_16k_mAP=0.438.pth'
        if not p.exists(): refs.save_pann_file(refs.pann_ref('16k', seed=0).state_dict(), p)
        return p
    if spec == 'clap:music_audioset_epoch_15_esc_90.14':
        p = wdir / 'music_audioset_epoch_15_esc_90.14.pt'
        if not p.exists():
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                refs.clap_save_published(refs.clap_randomize(refs.clap_module('HTSAT-base', False, small_text=True), 0).model, p)
        return p
    if spec == 'openl3':
        p = wdir / 'torchopenl3_mel256_music_512.pth.tar'
        if not p.exists(): refs.save_openl3_file(refs.openl3_ref('mel256_music_512', seed=0).state_dict(), p)
        return p
    raise ValueError(f"no random-weights recipe for {spec}")


SPECS = {'logmel': 'logmel', 'vggish': 'vggish', 'pann': 'pann:16k', 'clap': 'clap:music_audioset_epoch_15_esc_90.14',
         'openl3': 'openl3'}


# ------------------------------------------------------------------ measuring programs

def program(prog:str, *args, env:dict|None=None, threads:int=2) -> dict:
    "Run a fad_pytorch program; wall time, peak RSS of it and its waited-for children (MiB, GNU time's %M), exit code, stderr"
    exe = Path(sys.executable).parent / prog
    e = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads), **(env or {})}
    with tempfile.TemporaryDirectory() as t:
        # through /usr/bin/time: a child forked from this (large) process would count this process's pages as its own peak
        timer = ['/usr/bin/time', '-f', '%M', '-o', f'{t}/rss'] if Path('/usr/bin/time').exists() else []
        t0 = time.perf_counter()
        p = subprocess.run([*timer, str(exe), *map(str, args)], capture_output=True, text=True, env=e)
        wall = time.perf_counter() - t0
        rss = int(Path(f'{t}/rss').read_text().split()[-1]) / 1024 if timer else float('nan')
    if p.returncode != 0: raise RuntimeError(f"{prog} {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return {'wall': wall, 'maxrss_mib': rss, 'rc': p.returncode, 'stderr': p.stderr, 'stdout': p.stdout}


def plan_once(audio:Path, out:Path, emb, choices:Choices=Choices()) -> dict:
    "Plan a rerun as the main process does, timed: list the folder, read what is there, split done from to do"
    prov = embed_provenance(emb, *settings_for(emb, choices))
    t0 = time.perf_counter()
    src = FolderSet(audio)
    src.list()
    prev = previous_state(out, prov)
    plan = src.plan(prev, out, prov)
    return {'seconds': time.perf_counter() - t0, 'todo': len(plan['jobs']), 'done': len(plan['done'])}


def kill_halfway(out:Path, cfg:str) -> list[str]:
    "Leave `out` as a run killed halfway leaves it: manifest all pending, a journal of the first half, no .pt for the second"
    man = json.loads((out / MANIFEST).read_text())
    rels = sorted(man['files'])
    half = len(rels) // 2
    with open(out / f'{JOURNAL_PREFIX}00000{JOURNAL_SUFFIX}', 'w') as j:
        for rel in rels[:half]: j.write(json.dumps({'cfg': cfg, 'rel': rel, 'rec': man['files'][rel]}) + '\n')
    for rel in rels[half:]: emb_path(out, rel).unlink()
    man['files'] = {rel: {'status': 'pending'} for rel in rels}
    man.pop('summary', None)
    (out / MANIFEST).write_text(json.dumps(man))
    return rels[half:]


def decode_and_forward(audio:Path, emb, n:int|None=None) -> dict:
    "Seconds to decode `n` files (one thread) and to run the model on their windows in the engine's micro-batches"
    files = FolderSet(audio); files.list()
    rels = files.files[:n] if n else files.files
    framing, policy = settings_for(emb, Choices())
    t0 = time.perf_counter()
    wavs = [policy.load(audio / r) for r in rels]
    t_dec = time.perf_counter() - t0
    wins = torch.cat([framing.cut(w, emb.sample_rate)[0] for w in wavs])
    bs = 4 * emb.micro_batch
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in wins.split(bs): emb.embed(x)
    return {'files': len(rels), 'decode': t_dec, 'forward': time.perf_counter() - t0}


def tree_bytes(d:Path) -> int:
    return sum(f.stat().st_size for f in d.rglob('*.pt'))


# ------------------------------------------------------------------ one size, one model

def check_size(work:Path, n:int, model:str='logmel', overhead:bool=True, log=print, complete_max:int=20000) -> dict:
    "Embed n one-second files, plan reruns (all done, half done), complete a half-done run, score: figures and checks"
    spec = SPECS[model]
    audio = write_clips(work / f'audio_{n}', n)
    weights = model_weights(spec, work / 'weights')
    wargs = ['--weights', weights] if weights else []
    out_parent = work / f'out_{n}_{model}'
    shutil.rmtree(out_parent, ignore_errors=True)
    out = out_parent / f'{audio.name}_emb_{spec.replace(":", "-")}'
    res = {'n': n, 'model': model}

    r = program('fad_embed', spec, audio, '--out', out_parent, *wargs)
    man = read_manifest(out)
    res['run'] = {'wall': r['wall'], 'engine': man['summary']['time'], 'files_per_s': n / r['wall'],
                  'engine_files_per_s': n / man['summary']['time'], 'maxrss_mib': r['maxrss_mib'],
                  'manifest_bytes': (out / MANIFEST).stat().st_size, 'pt_bytes': tree_bytes(out),
                  'embedded': man['summary']['done'], 'files_in_manifest': len(man['files']),
                  'all_done': all(f['status'] == 'done' for f in man['files'].values())}
    log(f"  run: {r['wall']:.1f} s ({n / r['wall']:.0f} files/s; engine {man['summary']['time']:.1f} s), peak {r['maxrss_mib']:.0f} MiB, "
        f"manifest {res['run']['manifest_bytes'] / 1e6:.2f} MB, .pt {res['run']['pt_bytes'] / 1e6:.1f} MB")

    emb = load_model(spec, str(weights) if weights else None)
    torch.set_num_threads(1)
    if overhead:
        o = out_parent / 'serial'
        r0 = program('fad_embed', spec, audio, '--out', o, '--num-workers', 0, *wargs, threads=1)
        eng = read_manifest(next(o.iterdir()))['summary']['time']
        df = decode_and_forward(audio, emb, min(n, 5000))
        per = (eng / n - (df['decode'] + df['forward']) / df['files'])
        res['overhead'] = {'engine_serial': eng, 'decode_per_file_ms': 1e3 * df['decode'] / df['files'],
                           'forward_per_file_ms': 1e3 * df['forward'] / df['files'], 'engine_per_file_ms': 1e3 * eng / n,
                           'overhead_per_file_ms': 1e3 * per}
        log(f"  overhead (1 thread, no workers): engine {1e3 * eng / n:.2f} ms/file = decode {res['overhead']['decode_per_file_ms']:.2f} "
            f"+ forward {res['overhead']['forward_per_file_ms']:.2f} + engine {1e3 * per:.2f} ms")
        shutil.rmtree(o)

    res['resume_all'] = plan_once(audio, out, emb)
    r = program('fad_embed', spec, audio, '--out', out_parent, *wargs)
    res['rerun_all_done_wall'] = r['wall']
    res['rerun_all_done_msg'] = [l for l in r['stderr'].splitlines() if 'already done' in l]
    log(f"  resume plan, all done: {res['resume_all']['seconds']:.2f} s ({res['resume_all']['todo']} to do); "
        f"program rerun {r['wall']:.1f} s")

    r = program('fad_score', out, out, '--json')
    res['fad_score'] = {'wall': r['wall'], 'maxrss_mib': r['maxrss_mib'], 'fad': json.loads(r['stdout'])['fad']}
    log(f"  fad_score (the set against itself): {r['wall']:.1f} s, peak {r['maxrss_mib']:.0f} MiB, FAD {res['fad_score']['fad']:.2e}")

    prov = embed_provenance(emb, *settings_for(emb, Choices()))
    keep = {rel: torch.load(emb_path(out, rel), weights_only=True)['embeddings'] for rel in sorted(man['files'])[n // 2:][:1000]}
    gone = kill_halfway(out, config_id(prov))
    res['resume_half'] = plan_once(audio, out, emb)
    log(f"  resume plan, half done (after kill -9): {res['resume_half']['seconds']:.2f} s ({res['resume_half']['todo']} to do)")
    if n > complete_max: return res
    r = program('fad_embed', spec, audio, '--out', out_parent, *wargs)
    man2 = read_manifest(out)
    res['resume_half_run'] = {'wall': r['wall'], 'embedded': man2['summary']['done'], 'skipped': man2['summary']['skipped'],
                              'same_bits': all(torch.equal(torch.load(emb_path(out, rel), weights_only=True)['embeddings'], e)
                                               for rel, e in keep.items()),
                              'journals_left': len(list(out.glob(f'{JOURNAL_PREFIX}*'))), 'compared': len(keep),
                              'all_done': all(f['status'] == 'done' for f in man2['files'].values()) and len(man2['files']) == n,
                              'redone': len(gone)}
    log(f"  completed by the program in {r['wall']:.1f} s, {len(keep)} files compared: "
        f"{'same bits' if res['resume_half_run']['same_bits'] else 'DIFFERENT'}")
    return res


# ------------------------------------------------------------------ start-up

def startup(model:str, work:Path, log=print) -> dict:
    "fad_embed's start-up for one model: import, weights (first time, and again with the verification record), workers, program"
    spec = SPECS[model]
    weights = model_weights(spec, work / 'weights')
    py = sys.executable
    t = lambda code, env=None: float(subprocess.run([py, '-c', code], capture_output=True, text=True, check=True,
                                                    env={**os.environ, 'OMP_NUM_THREADS': '2', **(env or {})}).stdout.split()[-1])
    imp = min(t("import time; t = time.perf_counter(); import fad_pytorch.fad_embed; print(time.perf_counter() - t)") for _ in range(2))
    cache = work / f'cache_{model}'
    shutil.rmtree(cache, ignore_errors=True)
    load = ("import time; from fad_pytorch.fad_embed import load_model; t = time.perf_counter(); "
            f"load_model({spec!r}, {str(weights) if weights else None!r}); print(time.perf_counter() - t)")
    cold, warm = t(load, {'FAD_CACHE_DIR': str(cache)}), t(load, {'FAD_CACHE_DIR': str(cache)})
    hashing = {}
    if weights:                                       # the checkpoint check alone: a full sha256, then the record
        code = ("import time; from fad_pytorch.weights import verified_sha256; t = time.perf_counter(); "
                f"verified_sha256({str(weights)!r}); print(time.perf_counter() - t)")
        shutil.rmtree(cache, ignore_errors=True)
        hashing = {'sha256': t(code, {'FAD_CACHE_DIR': str(cache)}), 'record': t(code, {'FAD_CACHE_DIR': str(cache)})}
    one = work / 'one'; write_clips(one, 1)
    policy = AudioPolicy(SR)
    w = default_workers()
    t0 = time.perf_counter()
    dl = torch.utils.data.DataLoader(AudioFiles(one, ['000/000000.wav'], policy), batch_size=None, num_workers=w, worker_init_fn=_worker_init)
    next(iter(dl))
    workers = time.perf_counter() - t0
    o = work / f'startup_out_{model}'
    shutil.rmtree(o, ignore_errors=True)
    r = program('fad_embed', spec, one, '--out', o, *(['--weights', weights] if weights else []), env={'FAD_CACHE_DIR': str(cache)})
    eng = read_manifest(next(o.iterdir()))['summary']['time']
    res = {'import': imp, 'weights_first': cold, 'weights_again': warm, 'workers': workers, 'num_workers': w,
           'program_wall': r['wall'], 'program_minus_engine': r['wall'] - eng,
           'weights_mb': weights.stat().st_size / 1e6 if weights else 0, 'verify': hashing}
    log(f"  {model}: import {imp:.2f} s, weights {cold:.2f} s first / {warm:.2f} s again ({res['weights_mb']:.0f} MB), "
        f"{w} worker(s) to first file {workers:.2f} s; program on one file {r['wall']:.2f} s, of which start-up {r['wall'] - eng:.2f} s"
        + (f"; checkpoint check: sha256 {hashing['sha256']:.2f} s, from the record {1e3 * hashing['record']:.1f} ms" if hashing else ''))
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[1000, 10000, 100000])
    p.add_argument('--models', nargs='+', default=['logmel', 'vggish'], choices=list(SPECS))
    p.add_argument('--startup-models', nargs='*', default=['logmel', 'vggish', 'pann', 'clap'], choices=list(SPECS))
    p.add_argument('--complete-max', type=int, default=20000, help='complete the half-done run only for sets up to this size')
    p.add_argument('--workdir', help='keeps the audio (generated once per size), weights and outputs (default: a temporary one)')
    p.add_argument('--json', help='also write the results here')
    a = p.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix='bench_scale_'))
    work.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average "
          f"{os.getloadavg()[0]:.1f}; work in {work}", flush=True)
    results = {'sizes': {}, 'startup': {}}
    try:
        if a.startup_models: print("start-up:", flush=True)
        for m in a.startup_models: results['startup'][m] = startup(m, work, lambda *s: print(*s, flush=True))
        for n in a.sizes:
            for m in a.models:
                print(f"\n== {n} files, {m} (load average {os.getloadavg()[0]:.1f})", flush=True)
                results['sizes'][f'{n}_{m}'] = check_size(work, n, m, overhead=m == 'logmel', log=lambda *s: print(*s, flush=True),
                                                           complete_max=a.complete_max)
                if a.json: Path(a.json).write_text(json.dumps(results, indent=1))
    finally:
        if not a.workdir: shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if a.json: Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
