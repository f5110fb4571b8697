"""fad_gen as users run it: real programs and real processes (torchrun, gloo), TorchScript and torch.export models
made here, local folders, local tar shards, pipe: and http:// shards, and S3 through a real S3-compatible server
(moto's server mode) on 127.0.0.1; resuming after deletions, after a smaller run and after kill -9; the errors."""
import http.server, io, json, os, signal, socket, subprocess, sys, tarfile, threading, time
from functools import partial
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
from util import run, free_port, s3_server
from fad_pytorch.audio import find_audio, load_audio
from fad_pytorch.cli import build_parser
pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')     # TorchScript still works in torch 2.13

from fad_pytorch.fad_gen import (GenConfig, ModelError, SourceError, TooFewItems, RECORD, crop_offset, fad_gen, main,
                                 noise_batch)

SR, SIZE = 8000, 800                                   # clips of 0.1 s at 8 kHz: tiny and fast
CFG = GenConfig(sample_rate=SR, sample_size=SIZE)
ARGS = ['--sample-rate', SR, '--sample-size', SIZE, '--batch-size', 2]


class Gen(torch.nn.Module):
    "A tiny generator: a stereo convolution, squashed; its gain is 0 until setup() is called"
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 2, 5, padding=2)
        self.gain = 0.0
    @torch.jit.export
    def setup(self): self.gain = 1.0
    def forward(self, x): return torch.tanh(self.conv(x)) * self.gain + 0.25 * x

class Slow(torch.nn.Module):
    "About 0.1 s per call, to be killed in the middle of a run"
    def forward(self, x):
        y = x
        for _ in range(8000): y = y * 0.9999 + 0.0001 * x
        return y

class NanWhenLoud(torch.nn.Module):
    "NaN output for the items whose peak is above 0.8"
    def forward(self, x): return torch.where(x.abs().amax(dim=(1, 2), keepdim=True) > 0.8, x * float('nan'), x)

class Half(torch.nn.Module):
    "Any number of channels"
    def forward(self, x): return 0.5 * x

class Shorter(torch.nn.Module):
    "One sample short"
    def forward(self, x): return x[..., :-1]


def write_clip(path:Path, seconds:float, sr:int, channels:int, seed:int, peak=0.5):
    x = np.random.default_rng(seed).uniform(-peak, peak, (int(seconds * sr), channels)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype='FLOAT' if path.suffix == '.wav' else 'PCM_24')

def make_tar(path:Path, members:dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, 'w') as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))

def clip_bytes(seconds, sr, channels, seed, ext):
    f = io.BytesIO()
    x = np.random.default_rng(seed).uniform(-.5, .5, (int(seconds * sr), channels)).astype(np.float32)
    sf.write(f, x, sr, format=ext.upper(), subtype='FLOAT' if ext == 'wav' else 'PCM_24')
    return f.getvalue()

def audio_files(d:Path) -> dict:
    "name -> bytes of the audio files of an output directory"
    return {p: (Path(d) / p).read_bytes() for p in find_audio(d)}

def same_pairs(a:str, b:str):
    "Two runs wrote the same files, byte for byte"
    for side in ('reals', 'fakes'):
        x, y = audio_files(f'{a}_{side}'), audio_files(f'{b}_{side}')
        assert x and x.keys() == y.keys(), (side, sorted(x), sorted(y))
        assert all(x[k] == y[k] for k in x), side

def record(name) -> dict: return json.loads((Path(f'{name}_fakes') / RECORD).read_text())

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "The same thread count as the programs run by `run` (OMP_NUM_THREADS=1), so in-process runs give the same bits"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "A folder of clips (various rates, channels, formats), three WebDataset shards, and the models"
    root = tmp_path_factory.mktemp('data')
    specs = [(.3, 8000, 2, 'wav'), (.25, 16000, 1, 'flac'), (.4, 8000, 1, 'wav'), (.2, 11025, 2, 'flac'),
             (.35, 8000, 2, 'flac'), (.3, 22050, 2, 'wav'), (.15, 8000, 2, 'wav'), (.3, 16000, 2, 'wav')]
    for i, (s, sr, c, ext) in enumerate(specs):
        write_clip(root / 'fold' / ('sub' if i % 3 == 0 else '') / f'f{i}.{ext}', s, sr, c, i)
    k = 0
    for s, n in enumerate([4, 4, 2]):
        members = {}
        for _ in range(n):
            ext = 'flac' if k % 2 else 'wav'
            members[f'k{k:03d}.json'] = b'{"caption": "noise"}'
            members[f'k{k:03d}.{ext}'] = clip_bytes(0.2 + 0.05 * (k % 3), [8000, 16000][k % 2], 2 - k % 2, 100 + k, ext)
            k += 1
        make_tar(root / f'shards/s-{s:04d}.tar', members)
    torch.manual_seed(0)
    gen = Gen()
    torch.jit.script(gen).save(root / 'gen.ts')
    gen.setup()                                                      # the reference: gain on
    torch.export.save(torch.export.export(gen, (torch.zeros(2, 2, SIZE),)), root / 'gen.pt2')   # batch size 2, fixed
    for m, f in [(Slow(), 'slow.ts'), (NanWhenLoud(), 'nan.ts'), (Half(), 'half.ts'), (Shorter(), 'short.ts')]: torch.jit.script(m).save(root / f)
    return {'root': root, 'fold': str(root / 'fold'), 'shards': str(root / 'shards/s-{0000..0002}.tar'), 'gen': gen,
            'ts': str(root / 'gen.ts'), 'pt2': str(root / 'gen.pt2')}


@pytest.fixture(scope='module')
def one_proc(data):
    "One process, from the command line: a folder and shards, 15 pairs (8 + 7) in batches of 2"
    name = str(data['root'] / 'one')
    r = run('fad_gen', name, data['ts'], data['fold'], data['shards'], '--n', 15, *ARGS)
    return name, r


def test_cli_pairs_crops_and_model(data, one_proc):
    name, r = one_proc
    assert r.stdout.split() == [f'{name}_reals', f'{name}_fakes']
    assert 'fad_gen: 15 pairs in' in r.stderr and '15 written, 0 already there' in r.stderr
    want = [f'{i:06d}.wav' for i in range(15)]
    assert find_audio(f'{name}_reals') == want and find_audio(f'{name}_fakes') == want     # the record is hidden
    fold = data['fold']
    items = record(name)['items']
    assert items[:8] == [os.path.join(fold, p) for p in find_audio(fold)]                  # folder first, sorted
    assert items[8:] == [f"{data['root']}/shards/s-{s:04d}.tar#k{k:03d}.{'flac' if k % 2 else 'wav'}"
                         for s, k in [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (1, 6)]]   # then shards, tar order
    for j in range(15):
        real, sr = load_audio(f'{name}_reals/{j:06d}.wav', channels='stereo')
        fake, _ = load_audio(f'{name}_fakes/{j:06d}.wav', channels='stereo')
        assert sr == SR and real.shape == fake.shape == (2, SIZE)
        assert sf.info(f'{name}_fakes/{j:06d}.wav').subtype == 'FLOAT'
        with torch.no_grad(): ref = data['gen'](real[None])[0]
        assert (fake - ref).abs().max() < 1e-6, j                           # fake = model(real), setup() was called
        if j < 8 and sf.info(items[j]).samplerate == SR:                     # no resampling: an exact, seeded crop
            src, _ = load_audio(items[j], channels='stereo')
            o = crop_offset(src.shape[1], CFG, j)
            assert torch.equal(real, src[:, o:o + SIZE]), j


def test_two_processes_equal_one(data, one_proc):
    name1, _ = one_proc
    name2 = str(data['root'] / 'two')
    r = run('fad_gen', name2, data['ts'], data['fold'], data['shards'], '--n', 15, *ARGS, nproc=2)
    same_pairs(name1, name2)
    # batches of 2: rank 0 owns batches 0, 2, 4, 6 (8 pairs), rank 1 owns 1, 3, 5, 7 (7 pairs)
    assert 'fad_gen [rank 0/2]: 8 pairs written, 0 kept, 4 batches' in r.stderr, r.stderr
    assert 'fad_gen [rank 1/2]: 7 pairs written, 0 kept, 4 batches' in r.stderr, r.stderr
    assert r.stderr.count('pairs in') == 1 and '15 written, 0 already there; 1.5 s of audio per side; 2 process(es)' in r.stderr
    assert record(name2)['run']['processes'] == 2


def test_pt2_and_every_shard_transport_give_the_same_files(data, tmp_path):
    root, shards = data['root'], [str(data['root'] / f'shards/s-{s:04d}.tar') for s in range(3)]
    kw = dict(n=9, cfg=CFG, batch_size=2, num_workers=2)
    ref = fad_gen(tmp_path / 'tar', data['pt2'], data['shards'], **kw)       # static batch 2: the last batch is filled
    assert (ref['written'], ref['batches']) == (9, 5)
    fad_gen(tmp_path / 'pipe', data['pt2'], [f"pipe:cat '{s}'" for s in shards], **kw)
    same_pairs(tmp_path / 'tar', tmp_path / 'pipe')
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), partial(QuietHandler, directory=str(root / 'shards')))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try: fad_gen(tmp_path / 'http', data['pt2'], f'http://127.0.0.1:{srv.server_port}/s-{{0000..0002}}.tar', **kw)
    finally: srv.shutdown()
    same_pairs(tmp_path / 'tar', tmp_path / 'http')
    fad_gen(tmp_path / 'ts', data['ts'], data['shards'], **{**kw, 'num_workers': 0})
    assert audio_files(tmp_path / 'ts_reals') == audio_files(tmp_path / 'tar_reals')
    for p in find_audio(tmp_path / 'ts_fakes'):                         # TorchScript and torch.export agree
        a, b = sf.read(tmp_path / 'ts_fakes' / p)[0], sf.read(tmp_path / 'tar_fakes' / p)[0]
        assert np.abs(a - b).max() < 1e-6


# ---------------------------------------------------------------- S3, through a real S3-compatible server

@pytest.fixture(scope='module')
def s3(data):
    "moto's S3 server on 127.0.0.1, bucket 'fadtest' with the shards under wds/, an empty shard under bad/"
    with s3_server('fadtest') as (url, c):
        for s in range(3): c.upload_file(str(data['root'] / f'shards/s-{s:04d}.tar'), 'fadtest', f'wds/s-{s:04d}.tar')
        c.put_object(Bucket='fadtest', Key='bad/empty.tar', Body=b'')
        yield url

@pytest.fixture
def aws_env(s3, tmp_path, monkeypatch):
    "Credentials and endpoint from the environment only (no AWS files of this machine)"
    for k in list(os.environ):
        if k.startswith('AWS_'): monkeypatch.delenv(k)
    env = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1',
           'AWS_ENDPOINT_URL': s3, 'AWS_CONFIG_FILE': str(tmp_path / 'none'), 'AWS_SHARED_CREDENTIALS_FILE': str(tmp_path / 'none'),
           'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_MAX_ATTEMPTS': '1'}
    for k, v in env.items(): monkeypatch.setenv(k, v)
    return env

def test_s3_shards_and_prefix_equal_local(data, aws_env, tmp_path):
    kw = dict(n=10, cfg=CFG, batch_size=2, num_workers=2)
    fad_gen(tmp_path / 'local', data['ts'], data['shards'], **kw)
    r = fad_gen(tmp_path / 's3', data['ts'], 's3://fadtest/wds/s-{0000..0002}.tar', **kw)
    assert r['written'] == 10
    same_pairs(tmp_path / 'local', tmp_path / 's3')
    assert record(tmp_path / 's3')['items'][4] == 's3://fadtest/wds/s-0001.tar#k004.wav'
    fad_gen(tmp_path / 'prefix', data['ts'], 's3://fadtest/wds/', **kw)     # every shard under a prefix, by key
    same_pairs(tmp_path / 'local', tmp_path / 'prefix')

def test_s3_profile_and_endpoint_from_the_command_line(data, aws_env, tmp_path, monkeypatch):
    creds = tmp_path / 'credentials'
    creds.write_text('[fadprof]\naws_access_key_id = pk\naws_secret_access_key = ps\n')
    env = {**aws_env, 'AWS_SHARED_CREDENTIALS_FILE': str(creds)}
    for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL'): env.pop(k); monkeypatch.delenv(k)
    r = run('fad_gen', tmp_path / 'p', data['ts'], 's3://fadtest/wds/s-{0000..0001}.tar', '--n', 4, *ARGS,
            '--profiles', 's3://fadtest=fadprof', '--endpoint-url', aws_env['AWS_ENDPOINT_URL'], env=env)
    assert '4 written' in r.stderr
    fad_gen(tmp_path / 'local', data['ts'], data['shards'], n=4, cfg=CFG, batch_size=2)
    same_pairs(tmp_path / 'local', tmp_path / 'p')
    # the same without the profile: no credentials anywhere, a one-line error
    r = run('fad_gen', tmp_path / 'q', data['ts'], 's3://fadtest/wds/s-0000.tar', '--n', 4, *ARGS,
            '--endpoint-url', aws_env['AWS_ENDPOINT_URL'], env=env, check=False)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert 'fad_gen: error: s3://fadtest/wds/s-0000.tar: no AWS credentials found' in r.stderr

def test_s3_errors(data, aws_env, tmp_path, monkeypatch):
    gen = lambda src, **kw: fad_gen(tmp_path / 'x', data['ts'], src, n=2, cfg=CFG, **kw)
    with pytest.raises(SourceError, match="s3://fadtest/wds/s-0009.tar: S3 refused: NoSuchKey"): gen('s3://fadtest/wds/s-0009.tar')
    with pytest.raises(SourceError, match="s3://nobucket/s.tar: S3 refused: NoSuchBucket"): gen('s3://nobucket/s.tar')
    with pytest.raises(SourceError, match="s3://fadtest/nothing/: no WebDataset shards"): gen('s3://fadtest/nothing/')
    with pytest.raises(SourceError, match=r"s3://fadtest/bad/empty.tar: cannot read the shard as a tar archive \(empty file"):
        gen('s3://fadtest/bad/empty.tar')
    with pytest.raises(SourceError, match="AWS profile 'nope' is not in the AWS config"): gen('s3://fadtest/wds/s-0000.tar', profiles='nope')
    with pytest.raises(SourceError, match=f"cannot reach S3 at http://127.0.0.1:{(p := free_port())}"):
        gen('s3://fadtest/wds/s-0000.tar', endpoint_url=f'http://127.0.0.1:{p}')
    monkeypatch.delenv('AWS_ACCESS_KEY_ID'); monkeypatch.delenv('AWS_SECRET_ACCESS_KEY')
    with pytest.raises(SourceError, match="no AWS credentials found: set AWS_ACCESS_KEY_ID"): gen('s3://fadtest/wds/s-0000.tar')
    monkeypatch.setitem(sys.modules, 'boto3', None)                           # as if boto3 were not installed
    with pytest.raises(SourceError, match=r"need boto3: pip install 'fad_pytorch\[s3\]'"): gen('s3://fadtest/wds/s-0000.tar')


# ---------------------------------------------------------------- resuming

def test_resume_after_deletions_rewrites_only_what_is_missing(data, tmp_path):
    name, kw = tmp_path / 'r', dict(n=8, cfg=CFG, batch_size=2, num_workers=2)
    fad_gen(name, data['ts'], data['fold'], **kw)
    before = {s: audio_files(f'{name}_{s}') for s in ('reals', 'fakes')}
    mtime = lambda side, j: os.stat(f'{name}_{side}/{j:06d}.wav').st_mtime_ns
    kept = {(s, j): mtime(s, j) for s in ('reals', 'fakes') for j in (0, 5, 7)}
    for side, j in [('fakes', 1), ('reals', 4), ('reals', 6), ('fakes', 6)]: os.unlink(f'{name}_{side}/{j:06d}.wav')
    time.sleep(0.01)
    r = fad_gen(name, data['ts'], data['fold'], **{**kw, 'num_workers': 0})
    assert (r['written'], r['skipped'], r['batches']) == (3, 5, 3)        # pairs 1, 4, 6; batches 0, 2, 3 recomputed
    assert {s: audio_files(f'{name}_{s}') for s in ('reals', 'fakes')} == before
    assert {k: mtime(*k) for k in kept} == kept                             # complete pairs are not rewritten (7 shares a batch with 6)

def test_extend_a_smaller_run_and_run_out_of_items(data, tmp_path):
    kw = dict(cfg=CFG, batch_size=2, num_workers=2)
    fad_gen(tmp_path / 'full', data['ts'], data['shards'], n=10, **kw)
    fad_gen(tmp_path / 'grow', data['ts'], data['shards'], n=3, **kw)
    r = fad_gen(tmp_path / 'grow', data['ts'], data['shards'], n=10, **kw)
    assert (r['written'], r['skipped']) == (7, 3)
    same_pairs(tmp_path / 'full', tmp_path / 'grow')
    with pytest.raises(TooFewItems, match='only 10 usable clips, but --n is 12'):
        fad_gen(tmp_path / 'few', data['ts'], data['shards'], n=12, **kw)
    assert len(find_audio(tmp_path / 'few_fakes')) == 10 and len(record(tmp_path / 'few')['items']) == 10   # what exists is written
    same_pairs(tmp_path / 'full', tmp_path / 'few')
    with pytest.warns(UserWarning, match=r'holds 4 pair\(s\) beyond --n 6'):
        r = fad_gen(tmp_path / 'few', data['ts'], data['shards'], n=6, **kw)
    assert (r['written'], r['skipped']) == (0, 6)

def test_kill_9_then_resume(data, tmp_path):
    args = [str(data['root'] / 'slow.ts'), data['fold'], data['shards'], '--n', '12', '--sample-rate', str(SR), '--sample-size', str(SIZE),
            '--batch-size', '1', '--num-workers', '0']
    name = tmp_path / 'killed'
    p = subprocess.Popen([sys.executable, '-c', 'from fad_pytorch.fad_gen import main; main()', str(name), *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    fakes, t0 = Path(f'{name}_fakes'), time.time()
    while len(find_audio(fakes) if fakes.is_dir() else []) < 2 and time.time() - t0 < 120 and p.poll() is None: time.sleep(0.005)
    p.send_signal(signal.SIGKILL); p.wait()
    done = len(set(find_audio(fakes)) & set(find_audio(f'{name}_reals')))
    assert 2 <= done < 12, done                                              # really killed in the middle
    cfg = GenConfig(sample_rate=SR, sample_size=SIZE)
    r = fad_gen(name, args[0], args[1:3], n=12, cfg=cfg, batch_size=1, num_workers=0)
    assert (r['written'], r['skipped']) == (12 - done, done)
    assert not list(fakes.glob('.*.tmp')) and not list(Path(f'{name}_reals').glob('.*.tmp'))
    fad_gen(tmp_path / 'ref', args[0], args[1:3], n=12, cfg=cfg, batch_size=1, num_workers=0)
    same_pairs(tmp_path / 'ref', name)


# ---------------------------------------------------------------- modes, rules and formats

def test_unconditional_flac(data, tmp_path):
    cfg = GenConfig(sample_rate=SR, sample_size=SIZE, unconditional=True, audio_format='flac')
    with pytest.warns(UserWarning, match=r'5 fake file\(s\) had samples beyond ±1, clipped in FLAC'):   # 0.25 * N(0, 1) noise
        fad_gen(tmp_path / 'u', data['ts'], data['fold'], n=5, cfg=cfg, batch_size=2)
    fad_gen(tmp_path / 'c', data['ts'], data['fold'], n=5, cfg=CFG, batch_size=2)
    assert find_audio(tmp_path / 'u_fakes') == [f'{j:06d}.flac' for j in range(5)]
    for j in range(5):
        assert sf.info(tmp_path / f'u_fakes/{j:06d}.flac').subtype == 'PCM_24'
        fake = torch.from_numpy(sf.read(tmp_path / f'u_fakes/{j:06d}.flac', dtype='float32')[0].T)
        with torch.no_grad(): ref = data['gen'](noise_batch([j], cfg))[0].clamp(-1, 1)
        assert (fake - ref).abs().max() < 2e-7 * 4, j                        # model(seeded noise), 24-bit
        real = sf.read(tmp_path / f'u_reals/{j:06d}.flac', dtype='float32')[0]
        assert np.abs(real - sf.read(tmp_path / f'c_reals/{j:06d}.wav', dtype='float32')[0]).max() < 2e-7   # same real clips

def test_pad_rules_and_crops(data, tmp_path):
    short, half = tmp_path / 'short', str(data['root'] / 'half.ts')
    write_clip(short / 'a.wav', 0.05, SR, 1, 1)                              # 400 samples: shorter than a clip
    write_clip(short / 'b.wav', 0.3, SR, 1, 2)
    write_clip(short / 'c.wav', 0.2, SR, 1, 3)
    a, b = sf.read(short / 'a.wav', dtype='float32')[0], sf.read(short / 'b.wav', dtype='float32')[0]
    for pad, want in [('zero', np.concatenate([a, np.zeros(400, np.float32)])), ('repeat', np.concatenate([a, a]))]:
        fad_gen(tmp_path / pad, half, str(short), n=3, cfg=GenConfig(sample_rate=SR, sample_size=SIZE, channels='mono', pad=pad))
        assert np.array_equal(sf.read(tmp_path / f'{pad}_reals/000000.wav', dtype='float32')[0], want), pad
    cfg = GenConfig(sample_rate=SR, sample_size=SIZE, channels='mono', pad='skip', crop='center')
    fad_gen(tmp_path / 'skip', half, str(short), n=2, cfg=cfg)
    assert record(tmp_path / 'skip')['items'] == [str(short / 'b.wav'), str(short / 'c.wav')]
    assert np.array_equal(sf.read(tmp_path / 'skip_reals/000000.wav', dtype='float32')[0], b[800:1600])   # centre of 2400
    with pytest.raises(TooFewItems, match=r'only 2 usable clips \(1 shorter than --sample-size were skipped'):
        fad_gen(tmp_path / 'skip3', half, str(short), n=3, cfg=cfg)


# ---------------------------------------------------------------- errors

def test_nan_output_names_the_item_and_writes_nothing(data, tmp_path):
    src = tmp_path / 'loud'
    for i in range(6): write_clip(src / f'x{i}.wav', 0.2, SR, 2, i, peak=0.95 if i == 4 else 0.5)
    msg = f'returned NaN or infinite values for 1 item(s): pair 000004 ({src}/x4.wav); nothing of this batch was written'
    with pytest.raises(ModelError, match=msg.replace('(', r'\(').replace(')', r'\)')):
        fad_gen(tmp_path / 'n', data['root'] / 'nan.ts', str(src), n=6, cfg=CFG, batch_size=2, num_workers=0)
    assert find_audio(tmp_path / 'n_fakes') == ['000000.wav', '000001.wav', '000002.wav', '000003.wav']  # batches 0, 1 only

def test_model_and_source_errors(data, tmp_path):
    root = data['root']
    gen = lambda src, model=data['ts'], name='e', **kw: fad_gen(tmp_path / name, model, src, n=2, cfg=CFG, batch_size=2, **kw)
    with pytest.raises(ModelError, match=r'returned shape \(2, 2, 799\) for input \(2, 2, 800\)'): gen(data['fold'], str(root / 'short.ts'))
    with pytest.raises(ModelError, match=r'failed on a batch of shape \(3, 2, 800\).*exported for'):
        fad_gen(tmp_path / 'e3', data['pt2'], data['fold'], n=3, cfg=CFG, batch_size=3)
    make_tar(tmp_path / 'meta.tar', {'a.json': b'{}', 'a.txt': b'hi'})
    with pytest.raises(SourceError, match='meta.tar: empty shard: no audio members .*extensions .json, .txt'): gen(str(tmp_path / 'meta.tar'))
    (tmp_path / 'zero.tar').write_bytes(b'')
    with pytest.raises(SourceError, match=r'zero.tar: cannot read the shard as a tar archive \(empty file'): gen(str(tmp_path / 'zero.tar'))
    make_tar(tmp_path / 'bad.tar', {'ok.wav': clip_bytes(.2, SR, 2, 0, 'wav'), 'bad.wav': b'RIFF....WAVEjunk'})
    with pytest.raises(ValueError, match='bad.tar#bad.wav: cannot decode audio'): gen(str(tmp_path / 'bad.tar'))
    with pytest.raises(SourceError, match='nowhere: no such file or folder'): gen([data['fold'], str(tmp_path / 'nowhere')])
    with pytest.raises(SourceError, match=f'http://127.0.0.1:{(p := free_port())}/s.tar: cannot reach'): gen(f'http://127.0.0.1:{p}/s.tar')
    with pytest.raises(SourceError, match="the command exited with status 1: cat: .*nope.tar"): gen(f"pipe:cat '{tmp_path}/nope.tar'")
    gen(data['fold'], name='s')
    with pytest.raises(ValueError, match="generated with other settings:\n  crop: 'random' vs 'center'"):
        fad_gen(tmp_path / 's', data['ts'], data['fold'], n=2, cfg=GenConfig(sample_rate=SR, sample_size=SIZE, crop='center'))
    with pytest.raises(ValueError, match="model_sha256"): gen(data['fold'], data['pt2'], name='s')
    write_clip(tmp_path / 'mine_fakes/x.wav', .1, SR, 1, 0)
    with pytest.raises(ValueError, match='mine_fakes holds audio files that fad_gen did not make'): gen(data['fold'], name='mine')

def test_help_explains():
    h = ' '.join(build_parser(main.__wrapped__, 'fad_gen').format_help().split())
    for s in ['NAME_reals/ and NAME_fakes/', 'data_sources', 's3://bucket/prefix/shard-{0000..0099}.tar', 'pipe:COMMAND',
              '--n N', '--batch-size', '--sample-rate', '--sample-size', '--unconditional', 'seeded standard normal noise',
              '--profiles', '--endpoint-url', '--format', '--num-workers', '--device', '--seed', 'torchrun (put -- before fad_gen)']:
        assert s in h, s
