"""fad_embed as users run it: real programs, real audio files, real multi-process launches (torchrun, gloo),
a real kill -9 in the middle of a run, changed and bad files, and fad_score on the outputs."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
from util import run
from fad_pytorch.fad_score import calc_score, score


def write_set(root:Path, n:int, seed:int, seconds=(0.6, 3.0), sr=44100, channels=2, fmt='flac'):
    "n audio files of varied lengths (some in a subdirectory), noise shaped differently per seed"
    g = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = g.standard_normal((int(g.uniform(*seconds) * sr), channels)).astype(np.float32) * (0.05 + 0.02 * seed)
        x = np.cumsum(x, 0) * 0.05 if seed % 2 else x          # a different spectrum for odd seeds
        p = root / ('sub' if i % 3 == 0 else '') / f'f{i:03d}.{fmt}'
        p.parent.mkdir(exist_ok=True)
        sf.write(p, np.clip(x, -1, 1), sr)
    return root


def pts(d:Path): return sorted(p.relative_to(d).as_posix() for p in d.rglob('*.pt'))
def emb(d:Path, rel): return torch.load(d / rel, weights_only=True)['embeddings']
def manifest(d:Path): return json.loads((d / 'manifest.json').read_text())


def assert_same_outputs(a:Path, b:Path, tol=1e-6):
    assert pts(a) == pts(b) and pts(a)
    for rel in pts(a):
        x, y = emb(a, rel), emb(b, rel)
        assert x.shape == y.shape and (x - y).abs().max() <= tol, rel


@pytest.mark.parametrize('nfiles', [7, 1])
def test_two_processes_equal_one(tmp_path, nfiles):
    # 7 files over 2 processes is uneven; 1 file leaves one process with nothing to do
    src = write_set(tmp_path / 'real', nfiles, 0)
    run('fad_embed', 'logmel', src, '--out', tmp_path / 'one', '--batch-size', 3)
    r = run('fad_embed', 'logmel', src, '--out', tmp_path / 'two', '--batch-size', 5, nproc=2)
    one, two = tmp_path / 'one/real_emb_logmel', tmp_path / 'two/real_emb_logmel'
    assert_same_outputs(one, two, tol=0)                                     # bit for bit
    s = manifest(two)['summary']
    assert s['processes'] == 2 and sum(s['per_process_files']) == nfiles      # two real processes shared the files
    assert sorted(s['per_process_files']) == ([0, 1] if nfiles == 1 else [3, 4])
    assert r.stderr.count('embedded') == 1                                    # only the main process reports
    assert r.stdout.strip().endswith('real_emb_logmel')
    assert calc_score(one, two) < 1e-9


def test_batch_size_and_workers_do_not_change_results(tmp_path):
    src = write_set(tmp_path / 'real', 6, 1)
    run('fad_embed', 'logmel', src, '--out', tmp_path / 'a', '--batch-size', 1, '--num-workers', 0)
    run('fad_embed', 'logmel', src, '--out', tmp_path / 'b', '--batch-size', 64, '--num-workers', 2)
    assert_same_outputs(tmp_path / 'a/real_emb_logmel', tmp_path / 'b/real_emb_logmel', tol=0)     # bit for bit


def test_kill_9_then_resume(tmp_path):
    src = write_set(tmp_path / 'real', 60, 2, seconds=(20, 30), sr=16000, channels=1, fmt='wav')
    ref = tmp_path / 'ref'
    run('fad_embed', 'logmel', src, '--out', ref, '--num-workers', 0)
    out = tmp_path / 'killed'
    exe = Path(sys.executable).parent / 'fad_embed'
    p = subprocess.Popen([str(exe), 'logmel', str(src), '--out', str(out), '--batch-size', '1', '--num-workers', '0'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = out / 'real_emb_logmel'
    t0 = time.time()
    while len(pts(d) if d.exists() else []) < 5 and time.time() - t0 < 120: time.sleep(0.01)
    p.send_signal(signal.SIGKILL); p.wait()
    n_before = len(pts(d))
    assert 5 <= n_before < 60, n_before                                # really killed in the middle
    m = manifest(d)
    assert sum(f['status'] == 'pending' for f in m['files'].values()) > 0
    with pytest.raises(ValueError, match='incomplete'): calc_score(ref / 'real_emb_logmel', d)
    r = run('fad_embed', 'logmel', src, '--out', out)
    assert f"{60 - n_before} embedded, {n_before} already done" in r.stderr
    assert not list(d.rglob('.*.tmp'))                                  # no half-written leftovers
    assert_same_outputs(ref / 'real_emb_logmel', d, tol=0)
    assert calc_score(ref / 'real_emb_logmel', d) < 1e-9


def test_changed_and_added_files_are_embedded_again(tmp_path):
    src = write_set(tmp_path / 'real', 4, 3)
    run('fad_embed', 'logmel', src, '--out', tmp_path)
    d = tmp_path / 'real_emb_logmel'
    before = {rel: emb(d, rel) for rel in pts(d)}
    sf.write(src / 'f001.flac', np.random.default_rng(9).standard_normal((30000, 2)).astype(np.float32) * 0.3, 44100)
    sf.write(src / 'new.flac', np.random.default_rng(8).standard_normal((30000, 2)).astype(np.float32) * 0.1, 44100)
    r = run('fad_embed', 'logmel', src, '--out', tmp_path)
    assert '2 embedded, 3 already done' in r.stderr
    assert not torch.equal(emb(d, 'f001.flac.pt'), before['f001.flac.pt'])
    assert torch.equal(emb(d, 'f002.flac.pt'), before['f002.flac.pt'])
    assert 'new.flac' in manifest(d)['files']


def test_content_hash_ignores_touch_and_catches_same_size_edits(tmp_path):
    src = write_set(tmp_path / 'real', 3, 4, fmt='wav')
    run('fad_embed', 'logmel', src, '--out', tmp_path, '--hash')
    os.utime(src / 'f001.wav', (1e9, 1e9))                               # touched, content unchanged
    assert '0 embedded, 3 already done' in run('fad_embed', 'logmel', src, '--out', tmp_path, '--hash').stderr
    x, sr = sf.read(src / 'f002.wav'); st = os.stat(src / 'f002.wav')
    sf.write(src / 'f002.wav', -x, sr, subtype='PCM_16'); os.utime(src / 'f002.wav', ns=(st.st_atime_ns, st.st_mtime_ns))
    assert '1 embedded, 2 already done' in run('fad_embed', 'logmel', src, '--out', tmp_path, '--hash').stderr


def test_bad_files(tmp_path):
    src = write_set(tmp_path / 'real', 3, 5)
    (src / 'broken.wav').write_bytes(b'RIFF\x00\x00\x00\x00WAVEjunk')
    sf.write(src / 'empty.wav', np.zeros((0, 2), np.float32), 44100)
    r = run('fad_embed', 'logmel', src, '--out', tmp_path, check=False)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert 'broken.wav: cannot decode audio' in r.stderr and '--on-error skip' in r.stderr
    r = run('fad_embed', 'logmel', src, '--out', tmp_path, '--on-error', 'skip')
    d = tmp_path / 'real_emb_logmel'
    assert '3 embedded' in r.stderr and '2 failed' in r.stderr and 'empty.wav: zero-length audio' in r.stderr
    files = manifest(d)['files']
    assert files['broken.wav']['status'] == 'failed' and 'cannot decode' in files['broken.wav']['error']
    assert files['empty.wav']['status'] == 'failed' and 'zero-length' in files['empty.wav']['error']
    with pytest.warns(UserWarning, match='2 file\\(s\\) failed to embed'):
        assert score(d, d)['real']['files'] == 3


def test_nan_audio_is_named_and_short_files_kept(tmp_path):
    src = tmp_path / 'real'; src.mkdir()
    sf.write(src / 'ok.wav', np.random.default_rng(0).standard_normal(20000).astype(np.float32) * 0.1, 16000)
    sf.write(src / 'nan.wav', np.full(20000, np.nan, np.float32), 16000, subtype='FLOAT')
    r = run('fad_embed', 'logmel', src, '--out', tmp_path, check=False)
    assert r.returncode == 2 and 'nan.wav: contains NaN' in r.stderr
    (src / 'nan.wav').unlink()
    sf.write(src / 'short.wav', np.full(1000, 0.1, np.float32), 16000)
    run('fad_embed', 'logmel', src, '--out', tmp_path / 'drop', '--pad', 'drop')
    assert emb(tmp_path / 'drop/real_emb_logmel', 'short.wav.pt').shape == (1, 128)      # one zero-padded window, not dropped


def test_refuses_other_settings_and_empty_input(tmp_path):
    src = write_set(tmp_path / 'real', 2, 6)
    run('fad_embed', 'logmel', src, '--out', tmp_path)
    r = run('fad_embed', 'logmel', src, '--out', tmp_path, '--hop', 0.25, check=False)
    assert r.returncode == 2 and 'hop: 0.5 vs 0.25' in r.stderr and '--overwrite' in r.stderr
    run('fad_embed', 'logmel', src, '--out', tmp_path, '--hop', 0.25, '--overwrite')
    assert manifest(tmp_path / 'real_emb_logmel')['provenance']['hop'] == 0.25
    (tmp_path / 'empty').mkdir()
    r = run('fad_embed', 'logmel', tmp_path / 'empty', check=False)
    assert r.returncode == 2 and 'no audio files found' in r.stderr
    r = run('fad_embed', 'nosuchmodel', src, check=False)
    assert r.returncode == 2 and "unknown embedder 'nosuchmodel'" in r.stderr and 'logmel' in r.stderr


def test_real_vs_fake_end_to_end(tmp_path):
    # the same sound family scores lower than a different one; provenance is recorded and checked
    real, fake_close, fake_far = write_set(tmp_path / 'real', 12, 0), write_set(tmp_path / 'close', 12, 2), write_set(tmp_path / 'far', 12, 1)
    run('fad_embed', 'logmel', real, fake_close, fake_far, '--out', tmp_path / 'e')
    e = tmp_path / 'e'
    near, far = calc_score(e / 'real_emb_logmel', e / 'close_emb_logmel'), calc_score(e / 'real_emb_logmel', e / 'far_emb_logmel')
    assert 0 < near < far
    prov = manifest(e / 'real_emb_logmel')['provenance']
    assert prov['model'] == 'logmel' and prov['resampler'] == 'soxr_vhq' and prov['channels'] == 'mono' and prov['sample_rate'] == 16000
    r = run('fad_score', e / 'real_emb_logmel', e / 'far_emb_logmel', '--json')
    assert abs(json.loads(r.stdout)['fad'] - far) <= 1e-9 * far


def test_stereo_policy_doubles_the_embedding(tmp_path):
    src = write_set(tmp_path / 'real', 2, 7)
    run('fad_embed', 'logmel', src, '--out', tmp_path, '--channels', 'stereo')
    d = tmp_path / 'real_emb_logmel'
    e = emb(d, 'f001.flac.pt')
    assert e.shape[1] == 256 and not torch.equal(e[:, :128], e[:, 128:])
    assert manifest(d)['provenance']['channels'] == 'stereo'
