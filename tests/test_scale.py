"""fad_embed at cluster scale, as users run it: WebDataset shards (local tar files; S3 through a real S3-compatible
server, moto's server mode, on 127.0.0.1), 2 processes = 1, two torchrun launchers joined as two nodes (fad_embed
and fad_gen), kill -9 in the middle of a shard then a resume, members that are not audio named with their shard,
the output lock (a second run refused while the first lives, taken over after kill -9), concurrent fad_score runs
on one statistics cache, and the code path of benchmarks/bench_scale.py on 2 000 files."""
import io, json, os, signal, socket, subprocess, sys, threading, time
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
from util import run, run_nodes, make_tar, free_port, s3_server
from fad_pytorch.fad_score import calc_score
from fad_pytorch.fad_embed import assign_shards
from fad_pytorch.sources import SourceError
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")     # TorchScript still works in torch 2.13

SR = 16000
SHARDS = [5, 4, 3]                                     # audio members per shard


def clip(seconds:float, seed:int, fmt:str='WAV') -> bytes:
    "A noise clip at 16 kHz, mono, as file bytes"
    x = np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32) * (0.05 + 0.01 * (seed % 5))
    b = io.BytesIO(); sf.write(b, x, SR, format=fmt, subtype='PCM_16'); return b.getvalue()

def pts(d:Path): return sorted(p.relative_to(d).as_posix() for p in d.rglob('*.pt'))
def emb(d:Path, rel): return torch.load(d / rel, weights_only=True)['embeddings']
def manifest(d:Path): return json.loads((d / 'manifest.json').read_text())

def same_outputs(a:Path, b:Path):
    "The same .pt files with the same embeddings, bit for bit"
    assert pts(a) == pts(b) and pts(a), (pts(a), pts(b))
    for rel in pts(a): assert torch.equal(emb(a, rel), emb(b, rel)), rel

def no_traceback(r):
    assert 'Traceback' not in r.stderr, r.stderr
    assert r.returncode == 2, (r.returncode, r.stderr)
    return r.stderr


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Three shards of audio members (WAV and FLAC, one in a subfolder, a .json beside each), and the same files in a folder"
    root = tmp_path_factory.mktemp('scale')
    k = 0
    for s, n in enumerate(SHARDS):
        members = {}
        for _ in range(n):
            ext = 'flac' if k % 2 else 'wav'
            name = f"{'sub/' if k % 4 == 3 else ''}k{k:03d}.{ext}"
            data = clip(0.4 + 0.35 * (k % 5), k, ext.upper())
            members[name[:-len(ext)] + 'json'] = b'{"caption": "noise"}'
            members[name] = data
            (root / 'fold' / f's-{s:04d}' / name).parent.mkdir(parents=True, exist_ok=True)
            (root / 'fold' / f's-{s:04d}' / name).write_bytes(data)
            k += 1
        make_tar(root / f'wds/real/s-{s:04d}.tar', members)
    return root


@pytest.fixture(scope='module')
def one(data):
    "fad_embed logmel on the local shards, one process"
    out = data / 'one'
    r = run('fad_embed', 'logmel', data / 'wds/real/s-{0000..0002}.tar', '--out', out, '--batch-size', 4)
    return out / 'real_emb_logmel', r


def test_local_shards_equal_the_same_files_in_a_folder(data, one):
    sh, r = one
    assert r.stdout.strip() == str(sh) and f'{sum(SHARDS)} embedded, 0 already done' in r.stderr
    run('fad_embed', 'logmel', data / 'fold', '--out', data / 'fo')
    fo = data / 'fo/fold_emb_logmel'
    same_outputs(fo, sh)                                                   # <shard>/<member>.pt, same bits as the files
    m = manifest(sh)
    assert 's-0000/sub/k003.flac' in m['files'] and 's-0000/k000.json' not in m['files']
    src = m['files']['s-0001/k005.flac']['source']
    tar = data / 'wds/real/s-0001.tar'
    assert src == {'shard': 's-0001', 'member': 'k005.flac', 'size': len(clip(0.4 + 0.35 * 0, 5, 'FLAC')),
                   'shard_size': tar.stat().st_size, 'shard_mtime_ns': tar.stat().st_mtime_ns}
    assert m['shards']['s-0002']['members'] == ['s-0002/k009.flac', 's-0002/k010.wav', 's-0002/sub/k011.flac']
    assert m['input'] == str(data / 'wds/real/s-{0000..0002}.tar')
    assert calc_score(fo, sh) < 1e-9
    r = run('fad_embed', 'logmel', data / 'wds/real/s-{0000..0002}.tar', '--out', data / 'one')
    assert f'0 embedded, {sum(SHARDS)} already done' in r.stderr


def test_two_processes_equal_one(data, one):
    r = run('fad_embed', 'logmel', data / 'wds/real/s-{0000..0002}.tar', '--out', data / 'two', '--batch-size', 7, nproc=2)
    two = data / 'two/real_emb_logmel'
    same_outputs(one[0], two)
    s = manifest(two)['summary']
    sizes = [(data / f'wds/real/s-{i:04d}.tar').stat().st_size for i in range(3)]
    want = sorted(sum(SHARDS[int(st[-1])] for st in share) for share in assign_shards(['s-0000', 's-0001', 's-0002'], sizes, 2))
    assert s['processes'] == 2 and sorted(s['per_process_files']) == want and 0 not in want   # whole shards per process
    assert r.stderr.count('embedded') == 1


def test_two_nodes_equal_one_process(data, one, tmp_path):
    "Two torchrun launchers, one process each, joined by a c10d rendezvous on 127.0.0.1: a 2-node launch on one machine"
    rs = run_nodes('fad_embed', 'logmel', data / 'wds/real/s-{0000..0002}.tar', '--out', tmp_path / 'n')
    n = tmp_path / 'n/real_emb_logmel'
    same_outputs(one[0], n)
    s = manifest(n)['summary']
    assert (s['processes'], s['nodes']) == (2, 2) and min(s['per_process_files']) > 0        # two nodes, both embedded
    assert sum(r.stderr.count('embedded') for r in rs) == 1
    assert [r.stderr.count('on 2 process(es), 2 node(s)') for r in rs].count(1) == 1          # the summary says so too


class Gen(torch.nn.Module):
    def __init__(self):
        super().__init__(); self.conv = torch.nn.Conv1d(2, 2, 5, padding=2)
    def forward(self, x): return torch.tanh(self.conv(x)) + 0.25 * x

def test_fad_gen_two_nodes_equal_one_process(data, tmp_path):
    torch.manual_seed(0); torch.jit.script(Gen()).save(tmp_path / 'gen.ts')
    args = [tmp_path / 'gen.ts', data / 'wds/real/s-{0000..0002}.tar', '--n', 9, '--sample-rate', 8000, '--sample-size', 800,
            '--batch-size', 2]
    run('fad_gen', tmp_path / 'one', *args)
    rs = run_nodes('fad_gen', tmp_path / 'two', *args)
    for side in ('reals', 'fakes'):
        a, b = sorted((tmp_path / f'one_{side}').glob('*.wav')), sorted((tmp_path / f'two_{side}').glob('*.wav'))
        assert [p.name for p in a] == [p.name for p in b] and len(a) == 9
        assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b)), side
    lines = [[l for l in r.stderr.splitlines() if l.startswith('fad_gen [rank')] for r in rs]
    assert [len(ls) for ls in lines] == [1, 1], lines                        # each launcher ran one process ...
    assert sorted(ls[0].split('[rank ')[1][:3] for ls in lines) == ['0/2', '1/2']            # ... of one world of 2
    nodes = {ls[0].split('(node ')[1].rstrip(')') for ls in lines}
    assert len(nodes) == 2 and {n.split('/')[-1] for n in nodes} == {'0', '1'}             # on two nodes (group ranks 0, 1)
    assert sum('2 process(es) on 2 node(s)' in r.stderr for r in rs) == 1                 # the main process's summary
    assert [l for r in rs for l in r.stderr.splitlines() if 'fad_gen [rank 1/2]: 4 pairs written' in l]   # batches 1, 3


# ---------------------------------------------------------------- S3, through a real S3-compatible server

@pytest.fixture(scope='module')
def s3(data):
    "moto's S3 server on 127.0.0.1: bucket 'fadtest' with the shards under wds/real/, bad shards under bad/"
    with s3_server('fadtest') as (url, c):
        for s in range(3): c.upload_file(str(data / f'wds/real/s-{s:04d}.tar'), 'fadtest', f'wds/real/s-{s:04d}.tar')
        junk = make_tar(data / 'junk-0000.tar', {'a.wav': clip(0.5, 1), 'notes.wav': b'these are notes, not audio'})
        c.upload_file(str(junk), 'fadtest', 'bad/junk-0000.tar')
        c.put_object(Bucket='fadtest', Key='bad/empty-0000.tar', Body=b'')
        yield url

@pytest.fixture
def aws_env(s3, tmp_path, monkeypatch):
    "Credentials and endpoint from the environment only (no AWS files of this machine)"
    for k in list(os.environ):
        if k.startswith('AWS_'): monkeypatch.delenv(k)
    env = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1',
           'AWS_CONFIG_FILE': str(tmp_path / 'none'), 'AWS_SHARED_CREDENTIALS_FILE': str(tmp_path / 'none'),
           'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_MAX_ATTEMPTS': '1'}
    for k, v in env.items(): monkeypatch.setenv(k, v)
    return env

def test_s3_shards_equal_local(one, s3, aws_env, tmp_path):
    r = run('fad_embed', 'logmel', 's3://fadtest/wds/real/s-{0000..0002}.tar', '--out', tmp_path / 'a', '--endpoint-url', s3)
    a = tmp_path / 'a/real_emb_logmel'
    same_outputs(one[0], a)
    src = manifest(a)['files']['s-0002/k010.wav']['source']
    assert set(src) == {'shard', 'member', 'size', 'shard_size', 'shard_etag'} and src['shard_etag'].startswith('"')
    assert manifest(a)['shards']['s-0000']['url'] == 's3://fadtest/wds/real/s-0000.tar'
    r = run('fad_embed', 'logmel', 's3://fadtest/wds/real/s-{0000..0002}.tar', '--out', tmp_path / 'a', '--endpoint-url', s3)
    assert f'0 embedded, {sum(SHARDS)} already done' in r.stderr               # versions from HEAD: no shard is read
    run('fad_embed', 'logmel', 's3://fadtest/wds/real/', '--out', tmp_path / 'p', env={'AWS_ENDPOINT_URL': s3}, nproc=2)
    same_outputs(one[0], tmp_path / 'p/real_emb_logmel')                       # a prefix, listed; 2 processes

def test_s3_profile_and_errors(s3, aws_env, tmp_path, monkeypatch):
    creds = tmp_path / 'credentials'
    creds.write_text('[fadprof]\naws_access_key_id = pk\naws_secret_access_key = ps\n')
    env = {'AWS_SHARED_CREDENTIALS_FILE': str(creds), 'AWS_ACCESS_KEY_ID': '', 'AWS_SECRET_ACCESS_KEY': ''}
    r = run('fad_embed', 'logmel', 's3://fadtest/wds/real/s-0002.tar', '--out', tmp_path / 'q', '--endpoint-url', s3,
            '--profiles', 's3://fadtest=fadprof', env=env)
    assert '3 embedded' in r.stderr
    err = no_traceback(run('fad_embed', 'logmel', 's3://fadtest/wds/real/s-0002.tar', '--out', tmp_path / 'r', '--endpoint-url', s3,
                           env={**env, 'AWS_SHARED_CREDENTIALS_FILE': str(tmp_path / 'none')}, check=False))
    assert 'fad_embed: error: s3://fadtest/wds/real/s-0002.tar: no AWS credentials found' in err
    assert not (tmp_path / 'r').exists() or not any((tmp_path / 'r').rglob('*'))   # nothing written
    from fad_pytorch.fad_embed import fad_embed, RunSettings, EmbedError
    go = lambda src, **kw: fad_embed('logmel', [src], tmp_path / 'e', run=RunSettings(num_workers=0, progress=False, **kw))
    with pytest.raises(SourceError, match=f"cannot reach S3 at http://127.0.0.1:{(p := free_port())}"):
        go('s3://fadtest/wds/real/s-0000.tar', endpoint_url=f'http://127.0.0.1:{p}')
    monkeypatch.setenv('AWS_ENDPOINT_URL', s3)
    with pytest.raises(SourceError, match="s3://fadtest/wds/real/s-0003.tar: S3 refused: NoSuchKey"): go("s3://fadtest/wds/real/s-{0000..0003}.tar")
    with pytest.raises(SourceError, match="s3://fadtest/nothing/: no WebDataset shards"): go('s3://fadtest/nothing/')
    with pytest.raises(EmbedError, match=r"s3://fadtest/bad/empty-0000.tar: cannot read the shard as a tar archive \(empty file"):
        go('s3://fadtest/bad/empty-0000.tar')
    with pytest.raises(EmbedError, match="s3://fadtest/bad/junk-0000.tar#notes.wav: cannot decode audio"): go('s3://fadtest/bad/junk-0000.tar')
    monkeypatch.delenv('AWS_ACCESS_KEY_ID'); monkeypatch.delenv('AWS_SECRET_ACCESS_KEY')
    with pytest.raises(SourceError, match="no AWS credentials found: set AWS_ACCESS_KEY_ID"): go('s3://fadtest/wds/real/s-0000.tar')


def test_members_that_are_not_audio_are_named_with_their_shard(tmp_path):
    d = tmp_path / 'mixed'
    make_tar(d / 'ok-0000.tar', {'a.wav': clip(0.5, 1), 'b.wav': clip(0.7, 2)})
    make_tar(d / 'bad-0000.tar', {'c.wav': clip(0.5, 3), 'notes.wav': b'plain text, not audio', '../evil.wav': clip(0.5, 4)})
    err = no_traceback(run('fad_embed', 'logmel', d / '{ok,bad}-0000.tar', '--out', tmp_path / 'o', '--num-workers', 0, check=False))
    assert f'fad_embed: error: {d}/bad-0000.tar#notes.wav: cannot decode audio' in err and '--on-error skip' in err
    r = run('fad_embed', 'logmel', d / '{ok,bad}-0000.tar', '--out', tmp_path / 'o', '--on-error', 'skip')
    files = manifest(tmp_path / 'o/mixed_emb_logmel')['files']
    assert {k: v['status'] for k, v in files.items()} == {'ok-0000/a.wav': 'done', 'ok-0000/b.wav': 'done', 'bad-0000/c.wav': 'done',
                                                          'bad-0000/notes.wav': 'failed', 'bad-0000/../evil.wav': 'failed'}
    assert 'leads out of its shard folder' in files['bad-0000/../evil.wav']['error'] and not (tmp_path / 'o/evil.wav.pt').exists()
    assert '2 failed' in r.stderr
    make_tar(d / 'meta-0000.tar', {'a.json': b'{}'})
    err = no_traceback(run('fad_embed', 'logmel', d / 'meta-0000.tar', '--out', tmp_path / 'o', check=False))
    assert f'{d}/meta-0000.tar: empty shard: no audio members' in err and 'extensions .json' in err


# ---------------------------------------------------------------- kill -9, resume, and the lock
# The runs to kill read their last shard through `pipe:cat` from a FIFO that the test feeds: half of the shard, then
# nothing, so the run is blocked in the middle of that shard for as long as the test wants, whatever the load of the
# machine. Reruns get the whole shard through the same FIFO.

def start(prog, *args, env=None):
    exe = Path(sys.executable).parent / prog
    return subprocess.Popen([str(exe), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}, start_new_session=True)

def kill_9(p):
    "kill -9 the run and what it started (its pipe: command, which would otherwise read on from the FIFO)"
    os.killpg(p.pid, signal.SIGKILL); p.wait()

def wait_for(cond, p, what, timeout=300):
    t0 = time.time()
    while not cond():
        if p.poll() is not None: raise AssertionError(f"the run ended before {what}: {p.stderr.read()[-3000:]}")
        if time.time() - t0 > timeout: raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)

def feed(fifo:Path, data:bytes, upto:int|None=None) -> threading.Event:
    "Write `data[:upto]` into a FIFO as soon as a reader opens it; keep it open until the returned event is set"
    ev = threading.Event()
    def go():
        with open(fifo, 'wb') as f:
            try: f.write(data[:upto]); f.flush()
            except BrokenPipeError: return
            if upto is not None: ev.wait(600)
    threading.Thread(target=go, daemon=True).start()
    return ev

def shards_with_fifo(d:Path, ref:Path, seconds:float=8.0) -> tuple[str, Path, bytes]:
    "Two shards of 16 members: l-0000.tar a file, l-0001.tar a FIFO in `d`; both as files in `ref`; the pipe: source"
    for s in range(2): make_tar(ref / f'l-{s:04d}.tar', {f'm{i:02d}.wav': clip(seconds, 100 * s + i) for i in range(16)})
    d.mkdir(parents=True)
    (d / 'l-0000.tar').write_bytes((ref / 'l-0000.tar').read_bytes())
    os.mkfifo(d / 'l-0001.tar')
    return f"pipe:cat {d}/l-{{0000..0001}}.tar", d / 'l-0001.tar', (ref / 'l-0001.tar').read_bytes()

def test_kill_9_mid_shard_then_resume_and_the_lock(tmp_path):
    src, fifo, last = shards_with_fifo(tmp_path / 'long', tmp_path / 'files')
    run('fad_embed', 'logmel', 'long=' + str(tmp_path / 'files/l-{0000..0001}.tar'), '--out', tmp_path / 'ref')
    out = tmp_path / 'killed/long_emb_logmel'
    stop = feed(fifo, last, len(last) // 2)
    p = start('fad_embed', 'logmel', src, '--out', tmp_path / 'killed', '--batch-size', 1, '--num-workers', 0)
    wait_for(lambda: len(pts(out) if out.exists() else []) >= 18, p, 'members of the second shard were embedded')
    time.sleep(0.5)
    # a second run into the same output, while the first lives: refused, naming the holder
    err = no_traceback(run('fad_embed', 'logmel', src, '--out', tmp_path / 'killed', check=False))
    assert f'long_emb_logmel: in use by fad_embed (pid {p.pid} on host {socket.gethostname()}' in err, err
    kill_9(p); stop.set()
    done = pts(out)
    assert sum(r.startswith('l-0000/') for r in done) == 16 and 2 <= sum(r.startswith('l-0001/') for r in done) < 16  # mid-shard
    assert (out / '.fad_pytorch.lock').exists()                                 # the dead holder's lock file is left
    with pytest.raises(ValueError, match='incomplete'): calc_score(tmp_path / 'ref/long_emb_logmel', out)
    feed(fifo, last)
    r = run('fad_embed', 'logmel', src, '--out', tmp_path / 'killed')
    assert f'took over the lock of fad_embed (pid {p.pid} on host {socket.gethostname()})' in r.stderr
    assert f'{32 - len(done)} embedded, {len(done)} already done' in r.stderr
    same_outputs(tmp_path / 'ref/long_emb_logmel', out)
    assert not [q.name for q in out.rglob('.*')]                                # no lock, journal or temporary left
    m = manifest(out)
    assert all(v['status'] == 'done' for v in m['files'].values()) and len(m['files']) == 32
    assert calc_score(tmp_path / 'ref/long_emb_logmel', out) < 1e-9


def test_fad_gen_lock(tmp_path):
    torch.manual_seed(0); torch.jit.script(Gen()).save(tmp_path / 'gen.ts')
    src, fifo, last = shards_with_fifo(tmp_path / 'g', tmp_path / 'files', seconds=0.5)
    args = [tmp_path / 'gen.ts', src, '--n', 32, '--sample-rate', 8000, '--sample-size', 800, '--batch-size', 1, '--num-workers', 0]
    stop = feed(fifo, last, len(last) // 2)
    p = start('fad_gen', tmp_path / 'run', *args)
    wait_for(lambda: len(list((tmp_path / 'run_fakes').glob('0*.wav'))) >= 18, p, 'pairs of the second shard were written')
    err = no_traceback(run('fad_gen', tmp_path / 'run', *args, check=False))
    assert f'run_reals: in use by fad_gen (pid {p.pid} on host {socket.gethostname()}' in err, err
    kill_9(p); stop.set()
    n = len(set(q.name for q in (tmp_path / 'run_fakes').glob('0*.wav')) & set(q.name for q in (tmp_path / 'run_reals').glob('0*.wav')))
    feed(fifo, last)
    r = run('fad_gen', tmp_path / 'run', *args)
    assert f'took over the lock of fad_gen (pid {p.pid}' in r.stderr and f'{32 - n} written, {n} already there' in r.stderr
    assert sorted(q.name for q in (tmp_path / 'run_fakes').iterdir()) == ['.fad_gen.json'] + [f'{j:06d}.wav' for j in range(32)]


WRITER = """
import sys, torch
from fad_pytorch.embdir import write_stats_cache
from fad_pytorch.stats import Stats
torch.manual_seed(0); s = Stats(512).add(torch.randn(600, 512))
for _ in range(int(sys.argv[3])): write_stats_cache(sys.argv[1], sys.argv[2], s)
"""

def test_concurrent_fad_score_runs_never_corrupt_the_statistics_cache(data, one, tmp_path):
    "Two fad_score runs writing the same directory's statistics cache (each writes a temporary, renamed into place)"
    import warnings
    from fad_pytorch.embdir import STATS_CACHE, read_stats_cache, embedding_files, stats_cache_key
    from fad_pytorch.stats import Stats
    # the mechanism, under pressure: two processes rewrite a 2 MB cache 60 times each while this one reads it
    d = tmp_path / 'c'; d.mkdir()
    ps = [subprocess.Popen([sys.executable, '-c', WRITER, str(d), 'k', '60']) for _ in range(2)]
    torch.manual_seed(0); want = Stats(512).add(torch.randn(600, 512))
    reads = 0
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                         # an unreadable cache warns: fail on it
        while any(p.poll() is None for p in ps):
            if (st := read_stats_cache(d, 'k')) is not None:
                assert st.n == want.n and torch.equal(st.s1, want.s1) and torch.equal(st.s2, want.s2); reads += 1
    assert [p.returncode for p in ps] == [0, 0] and reads > 0
    assert [q.name for q in d.iterdir()] == [STATS_CACHE]                      # no temporary left behind
    # the programs: two fad_score runs at once on the same directories agree, and leave valid caches
    a, b = one[0], data / 'fo/fold_emb_logmel'
    if not b.exists(): run('fad_embed', 'logmel', data / 'fold', '--out', data / 'fo')
    for x in (a, b): (x / STATS_CACHE).unlink(missing_ok=True)
    exe = Path(sys.executable).parent / 'fad_score'
    ps = [subprocess.Popen([str(exe), str(a), str(b), '--json'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in ps]
    assert [p.returncode for p in ps] == [0, 0], outs
    assert json.loads(outs[0][0]) == json.loads(outs[1][0])
    for x in (a, b):
        files, man = embedding_files(x)
        st = read_stats_cache(x, stats_cache_key(files, man['provenance'], 8192))
        assert st is not None and st.n == sum(torch.load(p, weights_only=True)['embeddings'].shape[0] for p in files.values())


# ---------------------------------------------------------------- many files: bench_scale's code path

def test_scale_code_path_on_2000_files(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    import bench_scale
    r = bench_scale.check_size(tmp_path, 2000, 'logmel', overhead=False, log=lambda *a: None)
    assert (r['run']['embedded'], r['run']['files_in_manifest'], r['run']['all_done']) == (2000, 2000, True)
    assert r['run']['manifest_bytes'] < 2000 * 700                               # a few hundred bytes per file (~250 of them its audio facts)
    assert (r['resume_all']['todo'], r['resume_all']['done']) == (0, 2000)
    assert r['rerun_all_done_msg'] and '0 embedded, 2000 already done' in r['rerun_all_done_msg'][0]
    assert (r['resume_half']['todo'], r['resume_half']['done']) == (1000, 1000)  # from the journal, not the .pt files
    h = r['resume_half_run']
    assert (h['embedded'], h['skipped'], h['redone'], h['journals_left'], h['all_done'], h['same_bits']) == (1000, 1000, 1000, 0, True, True)
    assert h['compared'] == 1000 and abs(r['fad_score']['fad']) < 1e-9
    # planning after a kill -9 reads the journal: it opens no .pt file (torch.load counted)
    from unittest import mock
    import fad_pytorch.fad_embed as fe
    from fad_pytorch.embdir import config_id
    from fad_pytorch.embedder import get_embedder
    out = tmp_path / 'out_2000_logmel/audio_2000_emb_logmel'
    bench_scale.kill_halfway(out, config_id(manifest(out)['provenance']))
    loads, load = [], torch.load
    with mock.patch.object(fe.torch, 'load', lambda *a, **k: loads.append(a) or load(*a, **k)):
        p = bench_scale.plan_once(tmp_path / 'audio_2000', out, get_embedder('logmel'))
    assert (p['todo'], p['done'], len(loads)) == (1000, 1000, 0)
