"""The house issue's evidence, as a new user meets it: what lands on disk (sizes, permissions), errors instead of
tracebacks (downloads, options), `fad_embed list` for variants, the device of parameter-only models, a third-party
model found through a real pip-installed entry point, model files (TorchScript, torch.export) as model specs, and
custom weights refused by fad_score against the published model's embeddings.

Every program runs as a real subprocess. Each defect test failed on the code before the fix (checked by running it
against that commit)."""
import hashlib, http.server, json, os, socket, stat, subprocess, sys, threading, functools
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
from util import run
from fad_pytorch.embedder import Embedder
from fad_pytorch.fad_embed import embed_files, embed_provenance, settings_for, Choices, RunSettings
from fad_pytorch.embdir import source_signature


def write_audio(root:Path, n:int, seconds:float=1.0, sr:int=16000, seed:int=0) -> Path:
    "n mono noise files"
    g = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n): sf.write(root / f'a{i:02d}.wav', (g.standard_normal(int(seconds * sr)) * 0.1).astype(np.float32), sr)
    return root


def no_traceback(r):
    assert 'Traceback' not in r.stderr, r.stderr
    assert r.returncode == 2, (r.returncode, r.stderr)
    return r.stderr


# 1. Every .pt stored its whole batch ---------------------------------------------------------------------------------
def test_pt_files_hold_their_data_plus_a_small_constant(tmp_path):
    src = write_audio(tmp_path / 'real', 6, seconds=1.0)                 # 1 s at logmel's 1 s / 0.5 s framing: 2 windows
    run('fad_embed', 'logmel', src, '--batch-size', 64, '--num-workers', 0)
    out = tmp_path / 'real_emb_logmel'
    sizes = [p.stat().st_size for p in sorted(out.glob('*.pt'))]
    data = 2 * 128 * 4 + 2 * 8                                           # 2 windows × 128 float32, 2 float64 times
    assert len(sizes) == 6 and max(sizes) <= data + 2500, sizes          # before the fix: the 64-window batch, ≥ 32 KiB


# 2. Outputs were private (mode 0600 whatever the umask) --------------------------------------------------------------
@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o002, 0o664)])
def test_outputs_get_the_permissions_of_the_umask(tmp_path, umask, mode):
    src = write_audio(tmp_path / 'real', 2)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    bindir = Path(sys.executable).parent
    sh = lambda cmd: subprocess.run(['sh', '-c', f'umask {umask:03o} && exec {cmd}'], env=env, capture_output=True, text=True, check=True)
    sh(f"{bindir / 'fad_embed'} logmel {src} --num-workers 0")
    out = tmp_path / 'real_emb_logmel'
    sh(f"{bindir / 'fad_score'} {out} {out} --save-stats {tmp_path / 'st'}")
    files = sorted(out.rglob('*')) + sorted(tmp_path.glob('st_*.npz'))
    files = [p for p in files if p.is_file()]
    assert len(files) == 2 + 1 + 1 + 2                                   # 2 .pt, the manifest, the statistics cache, 2 statistics files
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: mode for p in files}


def test_fad_gen_outputs_get_the_permissions_of_the_umask(tmp_path):
    class Gain(torch.nn.Module):
        def forward(self, x): return x * 0.5
    torch.jit.save(torch.jit.script(Gain()), tmp_path / 'g.ts')
    src = write_audio(tmp_path / 'src', 3, seconds=0.2, sr=8000)
    bindir = Path(sys.executable).parent
    subprocess.run(['sh', '-c', f"umask 002 && exec {bindir / 'fad_gen'} {tmp_path / 'run'} {tmp_path / 'g.ts'} {src} --n 3 "
                    "--sample-rate 8000 --sample-size 800 --channels mono --num-workers 0"], check=True, capture_output=True)
    files = [p for d in ('run_reals', 'run_fakes') for p in (tmp_path / d).iterdir()]
    assert len(files) == 2 * (3 + 1)                                     # 3 pairs and a record per directory
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o664}


# 3. A failed download was a urllib traceback -------------------------------------------------------------------------
class Server(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

@pytest.fixture
def server(tmp_path):
    (tmp_path / 'srv').mkdir()
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Server, directory=str(tmp_path / 'srv')))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield tmp_path / 'srv', f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()

def test_download_without_network_is_one_clear_error(tmp_path):
    src = write_audio(tmp_path / 'real', 1)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]     # nobody listens there
    env = {'FAD_CACHE_DIR': str(tmp_path / 'cache'), 'FAD_WEIGHTS_MIRROR': f'http://127.0.0.1:{port}'}
    err = no_traceback(run('fad_embed', 'vggish', src, env=env, check=False))
    for s in ('fad_embed: error: cannot download vggish-10086976.pth', f'http://127.0.0.1:{port}/vggish-10086976.pth',
              'Connection refused', 'fad_download', '--weights DIR', '$FAD_WEIGHTS_DIR'):
        assert s in err, (s, err)
    assert not list((tmp_path / 'cache').rglob('*.pth')) and not list((tmp_path / 'cache').rglob('.*'))

def test_download_http_error_and_full_disk(tmp_path, server):
    srv, url = server
    src = write_audio(tmp_path / 'real', 1)
    env = {'FAD_CACHE_DIR': str(tmp_path / 'cache'), 'FAD_WEIGHTS_MIRROR': url}
    err = no_traceback(run('fad_embed', 'vggish', src, env=env, check=False))           # the mirror has no such file
    assert 'HTTP 404' in err and f'{url}/vggish-10086976.pth' in err, err
    (srv / 'vggish-10086976.pth').write_bytes(os.urandom(3_000_000))
    # a file-size limit of 1 MB stands in for a full disk: the write fails with the OS's reason, nothing is kept
    bindir = Path(sys.executable).parent
    r = subprocess.run(['sh', '-c', f"ulimit -f 1000 && exec {bindir / 'fad_embed'} vggish {src}"], capture_output=True, text=True,
                       env={**os.environ, **env, 'OMP_NUM_THREADS': '1'})
    err = no_traceback(r)
    assert 'cannot write vggish-10086976.pth into' in err and 'File too large' in err and 'nothing was kept' in err, err
    assert not [p for p in (tmp_path / 'cache').rglob('*') if p.is_file()]


# 4. --opts was unchecked ---------------------------------------------------------------------------------------------
def test_unknown_or_mistyped_options_are_clear_errors(tmp_path):
    src = write_audio(tmp_path / 'real', 1)
    err = no_traceback(run('fad_embed', 'logmel', src, '--opts', 'foo=1', check=False))
    assert "logmel: unknown option 'foo'. Options of logmel:" in err, err
    err = no_traceback(run('fad_embed', 'vggish', src, '--opts', 'pca=1,relu=true', check=False))
    assert "vggish: option pca must be bool, got 1" in err and "rounding: str = 'round'" in err, err
    assert not (tmp_path / 'real_emb_vggish').exists()


# 5. fad_embed list was wrong for variants ----------------------------------------------------------------------------
def test_list_shows_each_variants_rate_dim_and_framing():
    out = run('fad_embed', 'list').stdout
    assert 'pann:32k  32000 Hz, dim 2048, 527 class logits, 10 s windows every 10 s (pad end, short whole)' in out
    assert 'pann:8k  8000 Hz, dim 2048' in out
    assert 'openl3:mel128_env_6144  48000 Hz, dim 6144, 1 s windows every 0.1 s (pad zero, short zero, centred)' in out
    assert 'openl3:mel256_music_512  48000 Hz, dim 512' in out
    assert 'vggish:default  16000 Hz, dim 128, 0.975 s windows every 0.96 s (pad drop, short zero)' in out
    assert 'options (--opts key=value,...): relu: bool = False' in out


# 6. Wrong device for parameter-only models ---------------------------------------------------------------------------
class ParamsOnly(Embedder):
    "Only parameters, no buffers; on the meta device (standing in for a GPU) it records where its input was"
    name, sample_rate, dim, window, hop = 'params-only', 16000, 4, 1.0, 1.0
    def __init__(self, variant:str|None=None):
        super().__init__(variant); self.lin = torch.nn.Linear(1, 4); self.seen = set()
    def forward(self, x):
        self.seen.add(x.device.type)
        return torch.zeros(len(x), 4)

def test_input_goes_to_the_device_of_a_parameter_only_model(tmp_path):
    src = write_audio(tmp_path / 'real', 2)
    emb = ParamsOnly().to('meta')
    fr, pol = settings_for(emb, Choices())
    jobs = {f'a{i:02d}.wav': source_signature(src / f'a{i:02d}.wav') for i in range(2)}
    res = embed_files(emb, src, jobs, tmp_path / 'out', embed_provenance(emb, fr, pol), fr, pol, RunSettings(num_workers=0, progress=False))
    assert emb.seen == {'meta'} and len(res['done']) == 2                  # before the fix: the input stayed on the CPU


# A model of another package, found through a real entry point ---------------------------------------------------------
PLUGIN = '''
import torch
from fad_pytorch.embedder import Embedder
from fad_pytorch.weights import Checkpoint, read_checkpoint

class Spectral(Embedder):
    "Band energies of a window, weighted by a (published) matrix"
    name, sample_rate, dim, window, hop, description = 'spectral', 8000, 6, 0.5, 0.25, 'a plugin model with weights'
    def __init__(self, variant:str|None=None,
                 gain:float=1.0): # input gain
        super().__init__(variant); self.gain = gain; self.w = torch.nn.Parameter(torch.zeros(16, 6))
    def weights_needed(self): return [Checkpoint('spectral.pth', 'https://example.invalid/spectral.pth', SHA)]
    def load_weights(self, paths): self.w.data = read_checkpoint(paths[0])['w']
    def options(self): return {'gain': self.gain}
    def forward(self, x):
        p = torch.fft.rfft(x[:, 0] * self.gain).abs()[:, :2000].reshape(len(x), 16, -1).mean(-1)
        return torch.log1p(p) @ self.w
'''

@pytest.fixture(scope='module')
def plugin(tmp_path_factory):
    "A package declaring a `fad_pytorch.embedders` entry point, pip-installed into a directory put on PYTHONPATH"
    root = tmp_path_factory.mktemp('plugin')
    torch.save({'w': torch.linspace(-1, 1, 96).reshape(16, 6)}, root / 'spectral.pth')
    torch.save({'w': torch.linspace(-1, 1, 96).reshape(16, 6) * 2}, root / 'finetuned.pth')
    sha = hashlib.sha256((root / 'spectral.pth').read_bytes()).hexdigest()
    pkg = root / 'src'; (pkg / 'spectralplug').mkdir(parents=True)
    (pkg / 'spectralplug/__init__.py').write_text(PLUGIN.replace('SHA', repr(sha)))
    (pkg / 'pyproject.toml').write_text('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "spectralplug"\nversion = "0.1"\n[tool.setuptools]\npackages = ["spectralplug"]\n'
        '[project.entry-points."fad_pytorch.embedders"]\nspectral = "spectralplug:Spectral"\n')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation', '--target', str(root / 'site'),
                    str(pkg)], check=True, capture_output=True)
    assert (root / 'site/spectralplug-0.1.dist-info/entry_points.txt').exists()
    return root, {'PYTHONPATH': str(root / 'site')}

def test_plugin_model_runs_through_fad_embed_and_fad_score(tmp_path, plugin):
    root, env = plugin
    assert 'spectral:default  8000 Hz, dim 6' in run('fad_embed', 'list', env=env).stdout
    assert 'spectral' not in run('fad_embed', 'list').stdout                 # not installed: not there
    a, b = write_audio(tmp_path / 'a', 4, sr=8000, seed=1), write_audio(tmp_path / 'b', 4, sr=8000, seed=2)
    run('fad_embed', 'spectral', a, b, '--weights', root / 'spectral.pth', '--num-workers', 0, env=env)
    man = json.loads((tmp_path / 'a_emb_spectral/manifest.json').read_text())
    assert man['provenance']['model'] == 'spectral' and man['provenance']['checkpoint'] == 'spectral.pth'
    e = torch.load(tmp_path / 'a_emb_spectral/a00.wav.pt', weights_only=True)['embeddings']
    assert e.shape == (3, 6) and e.abs().max() > 0                           # 1 s, 0.5 s windows every 0.25 s
    res = json.loads(run('fad_score', tmp_path / 'a_emb_spectral', tmp_path / 'b_emb_spectral', '--json', env=env).stdout)
    assert res['dim'] == 6 and res['fad'] > 0

def test_custom_weights_are_recorded_and_refused_against_the_published(tmp_path, plugin):
    root, env = plugin
    a = write_audio(tmp_path / 'a', 3, sr=8000, seed=1)
    err = no_traceback(run('fad_embed', 'spectral', a, '--weights', root / 'finetuned.pth', env=env, check=False))
    assert 'finetuned.pth: checksum mismatch' in err and '--custom-weights' in err, err
    run('fad_embed', 'spectral', a, '--weights', root / 'spectral.pth', '--out', tmp_path / 'pub', '--num-workers', 0, env=env)
    run('fad_embed', 'spectral', a, '--weights', root / 'finetuned.pth', '--custom-weights', '--out', tmp_path / 'ft',
        '--num-workers', 0, env=env)
    prov = json.loads((tmp_path / 'ft/a_emb_spectral/manifest.json').read_text())['provenance']
    assert prov['custom_weights'] is True and prov['checkpoint'] == 'finetuned.pth'
    assert prov['checkpoint_sha256'] == hashlib.sha256((root / 'finetuned.pth').read_bytes()).hexdigest()
    r = run('fad_score', tmp_path / 'pub/a_emb_spectral', tmp_path / 'ft/a_emb_spectral', env=env, check=False)
    err = no_traceback(r)
    assert 'embedded differently' in err and "custom_weights: '<absent>' vs True" in err, err


# Model files as model specs -------------------------------------------------------------------------------------------
class Bands(torch.nn.Module):
    "(batch, 1, samples) -> (batch, 8): log energies of 8 blocks of the window"
    def forward(self, x): return torch.log1p((x[:, 0] ** 2).reshape(x.shape[0], 8, -1).mean(-1) * 100)

@pytest.mark.parametrize('kind', ['ts', 'pt2'])
def test_model_files_embed_and_score(tmp_path, kind):
    a, b = write_audio(tmp_path / 'a', 3, seed=1), write_audio(tmp_path / 'b', 3, seed=2)
    path = tmp_path / f'bands.{kind}'
    if kind == 'ts': torch.jit.save(torch.jit.script(Bands()), path)
    else:
        meta = json.dumps({'sample_rate': 16000, 'window': 0.5, 'hop': 0.25})
        torch.export.save(torch.export.export(Bands(), (torch.zeros(4, 1, 8000),)), path, extra_files={'fad_pytorch.json': meta})
    flags = ['--sample-rate', 16000, '--window', 0.5, '--hop', 0.25] if kind == 'ts' else []     # .pt2: from its metadata
    run('fad_embed', path, a, b, *flags, '--num-workers', 0)
    out = tmp_path / 'a_emb_bands'
    e = torch.load(out / 'a00.wav.pt', weights_only=True)['embeddings']
    x, _ = sf.read(a / 'a00.wav', dtype='float32')
    want = Bands()(torch.from_numpy(x[:8000])[None, None])                   # the first window, straight through the module
    assert e.shape == (3, 8) and torch.allclose(e[0], want[0], atol=1e-6)
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert prov['model'] == 'modelfile' and prov['checkpoint_sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov['window'] == 0.5 and prov['hop'] == 0.25 and prov['sample_rate'] == 16000
    assert json.loads(run('fad_score', out, tmp_path / 'b_emb_bands', '--json').stdout)['dim'] == 8

def test_model_file_errors(tmp_path):
    a = write_audio(tmp_path / 'a', 1)
    torch.save(Bands().state_dict(), tmp_path / 'sd.pt')
    err = no_traceback(run('fad_embed', tmp_path / 'sd.pt', a, '--sample-rate', 16000, '--window', 0.5, check=False))
    assert 'sd.pt: cannot load the model' in err and 'needs a whole program, not a state dict' in err, err
    class Rank3(torch.nn.Module):
        def forward(self, x): return x
    torch.jit.save(torch.jit.script(Rank3()), tmp_path / 'r3.ts')
    err = no_traceback(run('fad_embed', tmp_path / 'r3.ts', a, '--sample-rate', 16000, '--window', 0.5, check=False))
    assert 'fad_embed needs embeddings (batch, dim)' in err, err
    class NaNs(torch.nn.Module):
        def forward(self, x): return x.mean(-1) / 0 * 0
    torch.jit.save(torch.jit.script(NaNs()), tmp_path / 'nan.ts')
    err = no_traceback(run('fad_embed', tmp_path / 'nan.ts', a, '--sample-rate', 16000, '--window', 0.5, check=False))
    assert 'returned NaN or infinite values' in err, err
    torch.jit.save(torch.jit.script(Bands()), tmp_path / 'b.ts')
    err = no_traceback(run('fad_embed', tmp_path / 'b.ts', a, check=False))
    assert 'give --sample-rate' in err, err


class Classifier(torch.nn.Module):
    "(batch, 1, samples) -> (8 block energies, 3 class logits)"
    def forward(self, x):
        e = torch.log1p((x[:, 0] ** 2).reshape(x.shape[0], 8, -1).mean(-1) * 100)
        return e, torch.stack([e[:, :4].sum(1), e[:, 4:].sum(1), e[:, 0] - e[:, 7]], 1)

def test_classifier_model_file_gives_logits_to_the_classifier_metrics(tmp_path):
    "A program returning (embeddings, logits) is a classifier: --logits stores them, fad_score's classifier metrics read them"
    a = write_audio(tmp_path / 'a', 6, seed=1)
    torch.jit.save(torch.jit.script(Classifier()), tmp_path / 'cls.ts')
    run('fad_embed', tmp_path / 'cls.ts', a, '--sample-rate', 16000, '--window', 0.5, '--hop', 0.5, '--logits', '--num-workers', 0)
    d = torch.load(tmp_path / 'a_emb_cls/a00.wav.pt', weights_only=True)
    x, _ = sf.read(a / 'a00.wav', dtype='float32')
    e, l = Classifier()(torch.from_numpy(x).reshape(2, 1, 8000))
    assert torch.allclose(d['embeddings'], e, atol=1e-6) and torch.allclose(d['logits'], l, atol=1e-6)
    r = json.loads(run('fad_score', tmp_path / 'a_emb_cls', tmp_path / 'a_emb_cls', '--metrics', 'is,kl_ref_gen', '--is-splits', 2,
                       '--json').stdout)
    assert r['kl_ref_gen'] == 0 and r['kl_ref_gen_pairs'] == 6 and r['is_mean'] >= 1
