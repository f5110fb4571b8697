"""fad_pytorch's PANN Cnn14 against panns_inference's Cnn14 (16 and 32 kHz configurations; embeddings and the 527 AudioSet logits,
the reference's fc_audioset output read with a forward hook) and frechet-audio-distance's
Cnn14_16k / Cnn14_8k.

The reference models get seeded random weights (He-scaled convolutions, random BatchNorm affine and running statistics;
bn0 gets dB-scale statistics so activations stay O(1)); their own STFT kernels and mel matrix are kept. The weights
are written in the published layout `{'iteration', 'model', 'sampler'}` (the sampler state holds int64 numpy arrays,
as in the real files) and loaded through our own loader, `get_embedder('pann:<variant>', weights=FILE)`.

Tolerance: embeddings within TOL = 1e-4 absolute (the project's fp32 CPU budget; the embeddings here reach ~30, so this
is ~3e-6 of the largest value). We run the same torch ops in the same order: with the reference's batch the result is
bit-exact here (checked within TOL_SAME = 1e-6). Through `Embedder.embed` (forward passes of exactly 8 windows) the
fp32 kernels block differently than for the reference's batch, which moves results by up to ~2e-5 here, as much as
the reference itself moves between batch sizes.
"""
import dataclasses, json
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
import fad_pytorch.models.pann as P
from fad_pytorch.audio import audio_to_windows
from fad_pytorch.embedder import get_embedder
from fad_pytorch.weights import read_checkpoint
from fad_pytorch.fad_embed import embed_dir, settings_for, Choices, RunSettings

TOL = 1e-4
TOL_SAME = 1e-6     # same computation, same batch: bit-exact on one machine
FILE = {v: s.checkpoint.file for v, s in P.PANN_VARIANTS.items()}
torch.set_num_threads(2)


@pytest.fixture(scope='module')
def ref16():
    return refs.pann_ref('16k', seed=1)


@pytest.fixture(scope='module')
def ckpt16(ref16, tmp_path_factory):
    "The reference weights as Cnn14_16k_mAP=0.438.pth (327 MB, written once per module)"
    p = refs.save_pann_file(ref16.state_dict(), tmp_path_factory.mktemp('pann16') / FILE['16k'])
    yield p
    p.unlink()


@pytest.fixture(scope='module')
def ours16(ckpt16):
    return get_embedder('pann', weights=ckpt16)


@pytest.fixture(scope='module')
def ckpt32(tmp_path_factory):
    "A 32 kHz reference (panns_inference's configuration) and its checkpoint Cnn14_mAP=0.431.pth"
    ref = refs.pann_ref('32k', seed=2)
    p = refs.save_pann_file(ref.state_dict(), tmp_path_factory.mktemp('pann32') / FILE['32k'])
    yield ref, p
    p.unlink()


def signals(sr, seconds, seed=0):
    "All named test signals of one length: names and a (6, samples) tensor"
    s = refs.make_signals(sr, seconds, seed)
    return list(s), torch.from_numpy(np.stack(list(s.values())))


def compare(ref, ours, x):
    "Max abs difference per clip between ours (Embedder.embed) and the reference's whole-clip embedding"
    with torch.inference_mode():
        want, got, same_batch = ref(x)['embedding'], ours.embed(x[:, None]), ours(x[:, None])
    assert got.shape == want.shape == (len(x), 2048)
    assert (same_batch - want).abs().max() <= TOL_SAME             # the same batch as the reference: the same numbers
    assert want.abs().max() > 1                                   # not a comparison of near-zero numbers
    return (got - want).abs().amax(1)


# ------------------------------------------------------------------ front end and embeddings

def test_log_mel_equals_reference(ref16, ours16):
    "Our log-mel with the checkpoint's tensors vs torchlibrosa's Spectrogram + LogmelFilterBank (dB, down to -100)"
    _, x = signals(16000, 1.7)
    with torch.inference_mode():
        r, o = ref16.logmel_extractor(ref16.spectrogram_extractor(x)), ours16.log_mel(x)
    assert o.shape == r.shape == (6, 1, 1.7 * 16000 // 160 + 1, 64)
    assert (o - r).abs().max() <= TOL


@pytest.mark.parametrize('n', [4960, 16000, 52800])       # the minimum (0.31 s), 1 s, 3.3 s
def test_16k_equals_panns_inference(ref16, ours16, n):
    names, x = signals(16000, n / 16000, seed=n)
    d = compare(ref16, ours16, x)
    assert (d <= TOL).all(), dict(zip(names, d.tolist()))
    assert type(ours16) is P.Cnn14 and ours16.variant == '16k' and ours16.sample_rate == 16000


def test_32k_equals_panns_inference(ckpt32):
    ref, path = ckpt32
    ours = get_embedder('pann:32k', weights=path)
    assert (ours.sample_rate, ours.n_fft, ours.hop_length, ours.window_samples()) == (32000, 1024, 320, (320000, 320000))
    for n in (P.min_samples('32k'), 48000):
        names, x = signals(32000, n / 32000, seed=n)
        d = compare(ref, ours, x)
        assert (d <= TOL).all(), (n, dict(zip(names, d.tolist())))


def test_8k_equals_frechet_audio_distance(tmp_path):
    "frechet-audio-distance's own Cnn14_8k class (the third published checkpoint)"
    ref = refs.pann_ref('8k', seed=3, tool='frechet_audio_distance')
    path = refs.save_pann_file(ref.state_dict(), tmp_path / FILE['8k'])
    ours = get_embedder('pann:8k', weights=path)
    path.unlink()
    for n in (P.min_samples('8k'), 9600):
        names, x = signals(8000, n / 8000, seed=n)
        d = compare(ref, ours, x)
        assert (d <= TOL).all(), (n, dict(zip(names, d.tolist())))


def test_16k_equals_frechet_audio_distance(ref16, ours16):
    "frechet-audio-distance's Cnn14_16k class holding the same checkpoint"
    ref = refs.fad_pann_models().Cnn14_16k(*refs.PANN_CONFIGS['16k'])
    ref.load_state_dict(ref16.state_dict())
    names, x = signals(16000, 1.2, seed=12)
    d = compare(ref.eval(), ours16, x)
    assert (d <= TOL).all(), dict(zip(names, d.tolist()))


def test_minimum_length(ref16, ours16):
    "31 hops (4960 samples at 16 kHz, 32 frames) is the shortest input; one sample less fails in both, ours with a clear error"
    x = torch.from_numpy(refs.make_signals(16000, 1.0)['music'][:4959])[None]
    with torch.inference_mode():
        with pytest.raises(RuntimeError): ref16(x)
        with pytest.raises(ValueError, match=r'pann:16k needs at least 4960 samples \(0.31 s\) at 16000 Hz, got 4959'):
            ours16.embed(x[:, None])


def test_batch_independence_is_bitwise(ours16):
    "A window's embedding is the same bit for bit alone or among 9 others (fixed micro-batches of 8, zero-padded)"
    _, x = signals(16000, 1.0, seed=4)
    x = torch.cat([x, x[:4] * 0.5])[:, None]                  # 10 windows: passes of 8 and 2 (+ 6 zeros)
    with torch.inference_mode():
        many = ours16.embed(x)
        for i in (3, 9):
            assert torch.equal(ours16.embed(x[i:i + 1]), many[i:i + 1]), i


# ------------------------------------------------------------------ AudioSet logits

def ref_logits(ref, x):
    "The reference's `fc_audioset` output (the logits before clipwise_output's sigmoid), read with a forward hook"
    out = {}
    def keep(m, i, o): out['logits'] = o.detach().clone()             # returns None: the output stays as it is
    h = ref.fc_audioset.register_forward_hook(keep)
    try:
        with torch.inference_mode(): d = ref(x)
    finally: h.remove()
    return d, out['logits']


def test_logits_equal_panns_inference(ref16, ours16):
    "forward_logits / embed(logits=True) == panns_inference's fc_audioset output (and its clipwise_output is their sigmoid)"
    names, x = signals(16000, 1.3, seed=21)
    d, want = ref_logits(ref16, x)
    with torch.inference_mode():
        e, got = ours16.embed(x[:, None], logits=True)
        _, same_batch = ours16.forward_logits(x[:, None])
    assert got.shape == want.shape == (6, 527) and e.shape == (6, 2048)
    assert want.abs().max() > 1 and want.std() > 0.1                   # lively logits, not a comparison of zeros
    assert (same_batch - want).abs().max() <= TOL_SAME
    assert (got - want).abs().max() <= TOL, dict(zip(names, (got - want).abs().amax(1).tolist()))
    assert torch.allclose(torch.sigmoid(want), d['clipwise_output'], atol=1e-7)      # the hook read the pre-sigmoid values
    assert ours16.n_classes == 527 and len(ours16.class_names()) == 527 and ours16.class_names()[0] == 'Speech'


def test_fad_embed_logits_cli_equals_reference(ref16, ckpt16, tmp_path):
    "fad_embed pann DIR --logits: each .pt holds logits (frames, 527) == the reference's fc_audioset per window; provenance logits: true"
    src = tmp_path / 'audio'
    src.mkdir()
    files = {'a.wav': ('music', 0.6), 'sub/b.wav': ('chirp', 12.0)}
    for rel, (kind, seconds) in files.items():
        (src / rel).parent.mkdir(exist_ok=True)
        sf.write(src / rel, refs.make_signals(16000, seconds, seed=7)[kind], 16000, subtype='FLOAT')
    run('fad_embed', 'pann', src, '--weights', ckpt16, '--out', tmp_path / 'out', '--logits')
    out = tmp_path / 'out' / 'audio_emb_pann'
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert prov['logits'] is True and prov['model'] == 'pann'
    for rel, (kind, seconds) in files.items():
        x = torch.from_numpy(sf.read(src / rel, dtype='float32')[0])
        slices = [x] if len(x) <= 160000 else [x[:160000], x[-160000:]]
        want = torch.cat([ref_logits(ref16, s[None])[1] for s in slices])
        d = torch.load(out / f'{rel}.pt', weights_only=True)
        assert d['logits'].shape == (len(slices), 527) and d['logits'].dtype == torch.float32, rel
        assert d['embeddings'].shape == (len(slices), 2048), rel
        assert (d['logits'] - want).abs().max() <= TOL, rel


# ------------------------------------------------------------------ loading

def test_published_format_needs_numpy(ref16, ckpt16):
    "The real files hold the training sampler's numpy arrays: plain weights_only=True refuses them, read_checkpoint(numpy_ok) reads them"
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(ckpt16, weights_only=True)
    ck = read_checkpoint(ckpt16, numpy_ok=True)
    assert ck['iteration'] == 540000 and ck['sampler']['indexes_per_class'][0].dtype == np.int64
    with torch.device('meta'): ours = P.Cnn14()
    assert list(ck['model']) == list(ref16.state_dict()) == list(ours.state_dict())     # the published keys, in order


def test_legacy_torch_format(tmp_path):
    "The 2020 files may predate torch's zip format: the legacy format with numpy arrays reads too"
    p = refs.save_pann_file({'fc1.bias': torch.arange(3.)}, tmp_path / 'legacy.pth', zipfile=False)
    ck = read_checkpoint(p, numpy_ok=True)
    assert torch.equal(ck['model']['fc1.bias'], torch.arange(3.)) and ck['sampler']['indexes_per_class'][1].dtype == np.int64


def test_wrong_checksum(ckpt16, monkeypatch):
    spec = P.PANN_VARIANTS['16k']
    bad = dataclasses.replace(spec, checkpoint=dataclasses.replace(spec.checkpoint, sha256='f' * 64))
    monkeypatch.setitem(P.PANN_VARIANTS, '16k', bad)
    with pytest.raises(ValueError, match=rf'{ckpt16.name}: checksum mismatch \(sha256 [0-9a-f]{{64}}, expected ffff'):
        get_embedder('pann', weights=ckpt16.parent)


def test_truncated_file(ckpt16, tmp_path):
    p = tmp_path / FILE['16k']
    with open(ckpt16, 'rb') as f: p.write_bytes(f.read(1 << 20))
    with pytest.raises(ValueError, match='cannot read checkpoint'):
        get_embedder('pann', weights=tmp_path)
    with pytest.raises(ValueError, match=f'{p}: cannot read checkpoint'):
        get_embedder('pann', weights=p)


def test_wrong_architecture(tmp_path):
    cnn10 = refs.fad_pann_models().Cnn10(*refs.PANN_CONFIGS['16k'])
    p = refs.save_pann_file(cnn10.state_dict(), tmp_path / 'Cnn10_mAP=0.380.pth')
    with pytest.raises(ValueError, match=r'Cnn10_mAP=0.380.pth: not a PANN Cnn14 checkpoint \(it looks like Cnn10\)'):
        get_embedder('pann', weights=p)
    refs.save_vggish_file({'features.0.weight': torch.zeros(64, 1, 3, 3), 'embeddings.0.weight': torch.zeros(1)}, tmp_path / 'vggish.pth')
    with pytest.raises(ValueError, match=r"vggish.pth: not a PANN checkpoint: .*it looks like a VGGish state dict"):
        get_embedder('pann', weights=tmp_path / 'vggish.pth')


def test_checkpoint_of_another_rate(ckpt32, ckpt16):
    _, p32 = ckpt32
    with pytest.raises(ValueError, match=rf'{p32}: this is the 32k Cnn14 \(n_fft 1024\), but pann:16k .* was asked for: use pann:32k'):
        get_embedder('pann', weights=p32)
    with pytest.raises(ValueError, match=rf'{ckpt16}: this is the 16k Cnn14 \(n_fft 512\), but pann:8k'):
        get_embedder('pann:8k', weights=ckpt16)


def test_missing_file_offline(offline, tmp_path):
    url = P.PANN_VARIANTS['32k'].checkpoint.url
    with pytest.raises(FileNotFoundError, match=f'weights Cnn14_mAP=0.431.pth not found .* fetch {url}'):
        get_embedder('pann:32k')
    (tmp_path / 'w').mkdir()
    with pytest.raises(FileNotFoundError, match=f'weights Cnn14_16k_mAP=0.438.pth not found \\(looked in: {tmp_path}/w, '):
        get_embedder('pann', weights=tmp_path / 'w')


# ------------------------------------------------------------------ end to end

def test_fad_embed_cli_equals_reference(ref16, ckpt16, tmp_path):
    "fad_embed pann DIR --weights FILE, a real program: its .pt embeddings == the reference on the same audio"
    src = tmp_path / 'audio'
    src.mkdir()
    files = {'a.wav': ('music', 0.5), 'b.wav': ('chirp', 3.0), 'c.wav': ('noise', 10.5)}
    for rel, (kind, seconds) in files.items():
        sf.write(src / rel, refs.make_signals(16000, seconds, seed=len(rel))[kind], 16000, subtype='PCM_16')
    r = run('fad_embed', 'pann', src, '--weights', ckpt16, '--out', tmp_path / 'out')
    out = tmp_path / 'out' / 'audio_emb_pann'
    assert r.stdout.strip().endswith('audio_emb_pann')
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert (prov['model'], prov['variant'], prov['checkpoint'], prov['window'], prov['hop'], prov['pad'], prov['short']) == \
           ('pann', '16k', FILE['16k'], 10.0, 10.0, 'end', 'whole')
    for rel, (kind, seconds) in files.items():
        x = torch.from_numpy(sf.read(src / rel, dtype='float32')[0])
        slices = [x] if len(x) <= 160000 else [x[:160000], x[-160000:]]       # whole file, or the two 10 s windows
        with torch.inference_mode(): want = torch.cat([ref16(s[None])['embedding'] for s in slices])
        d = torch.load(out / f'{rel}.pt', weights_only=True)
        assert d['embeddings'].shape == want.shape, rel
        assert (d['embeddings'] - want).abs().max() <= TOL, rel
        assert 'logits' not in d, rel                                     # logits only with --logits
    assert 'logits' not in prov
    assert d['times'].tolist() == [0.0, 0.5]                              # c.wav: the last window ends at the file end


def test_window_0_embeds_whole_files_like_frechet_audio_distance(ref16, ours16, tmp_path):
    "window=0 (--window 0): one vector per whole file, == the reference's forward on the whole file (frechet-audio-distance's per-file vectors)"
    src = tmp_path / 'audio'
    src.mkdir()
    for i, seconds in enumerate((0.4, 12.3)):
        sf.write(src / f'{i}.wav', refs.make_signals(16000, seconds, seed=i)['music'], 16000, subtype='FLOAT')
    embed_dir(ours16, src, tmp_path / 'out', *settings_for(ours16, Choices(window=0)), RunSettings(num_workers=0, progress=False))
    for i in range(2):
        x = torch.from_numpy(sf.read(src / f'{i}.wav', dtype='float32')[0])
        with torch.inference_mode(): want = ref16(x[None])['embedding']
        got = torch.load(tmp_path / f'out/{i}.wav.pt', weights_only=True)['embeddings']
        assert got.shape == (1, 2048) and (got - want).abs().max() <= TOL


def test_fad_embed_cli_too_short_file(ckpt16, tmp_path):
    "A file shorter than Cnn14's minimum stops the run with an error naming it; --on-error skip records it and goes on"
    src = tmp_path / 'audio'
    src.mkdir()
    sf.write(src / 'short.wav', np.zeros(3000, np.float32), 16000)
    r = run('fad_embed', 'pann', src, '--weights', ckpt16, '--out', tmp_path / 'out', check=False)
    assert r.returncode != 0 and 'short.wav: pann:16k needs at least 4960 samples (0.31 s)' in r.stderr
    assert 'Traceback' not in r.stderr
    r = run('fad_embed', 'pann', src, '--weights', ckpt16, '--out', tmp_path / 'out', '--on-error', 'skip')
    assert '0 embedded, 0 already done, 1 failed' in r.stderr
    m = json.loads((tmp_path / 'out/audio_emb_pann/manifest.json').read_text())
    assert m['files']['short.wav']['status'] == 'failed' and 'needs at least 4960 samples' in m['files']['short.wav']['error']
