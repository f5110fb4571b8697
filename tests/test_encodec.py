"""fad_pytorch's EnCodec encoder against encodec 0.1.1's `model.encoder` (24 and 48 kHz), fadtk 1.1.0's
`EncodecEmbModel` (whole file at 24 kHz, 1 s segments at 48 kHz) and frechet-audio-distance 0.3.4's `encodec` path.

The reference codecs are built as `encodec_model_*khz(pretrained=False)` builds them and get seeded random parameters
(tests/refs.py); their whole state dict is written as the published `encodec_*khz-*.th` file and loaded by ours with
`custom_weights=True` (the files are not the published ones, whose checksums are pinned).

Tolerance: TOL = 1e-4 absolute (the project's fp32 CPU budget; the frames here reach ~1–5). The same torch ops run in
the same order, so with the reference's batch the result is the reference's bit for bit (checked as equality); other
batch compositions (fadtk's one-segment calls vs our batched segments) move results by float rounding only.
"""
import json
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
import fad_pytorch.models.encodec as E
from fad_pytorch.embedder import get_embedder

TOL = 1e-4
FILE = {v: s.checkpoint.file for v, s in E.ENCODEC_VARIANTS.items()}
torch.set_num_threads(2)
torch.set_grad_enabled(False)


@pytest.fixture(scope='module')
def ref24():
    return refs.encodec_ref('24k', seed=1)


@pytest.fixture(scope='module')
def ref48():
    return refs.encodec_ref('48k', seed=2)


@pytest.fixture(scope='module')
def ckpt(ref24, ref48, tmp_path_factory):
    "Both references written as their published files, in one directory"
    d = tmp_path_factory.mktemp('encodec')
    refs.save_encodec_file(ref24, d / FILE['24k']); refs.save_encodec_file(ref48, d / FILE['48k'])
    return d


@pytest.fixture(scope='module')
def ours24(ckpt):
    return get_embedder('encodec', weights=ckpt / FILE['24k'], custom_weights=True)


@pytest.fixture(scope='module')
def ours48(ckpt):
    return get_embedder('encodec:48k', weights=ckpt / FILE['48k'], custom_weights=True)


def signals(sr, seconds, seed=0, stereo=False):
    "The named test signals of one length as (n, channels, samples); stereo: each paired with a different one"
    s = np.stack(list(refs.make_signals(sr, seconds, seed).values()))
    x = np.stack([s, np.roll(s, 1, 0) * 0.7], 1) if stereo else s[:, None]
    return torch.from_numpy(x)


# ------------------------------------------------------------------ model

@pytest.mark.parametrize('n', [1, 500, 8000])
def test_24k_equals_encodec(ref24, ours24, n):
    "Ours = encodec's model.encoder on whole windows, (T, 128) per window, T = ceil(n / 320); one sample is enough"
    x = signals(24000, n / 24000, seed=n) if n >= 480 else torch.randn(6, 1, n, generator=torch.Generator().manual_seed(n)) * 0.3
    want = ref24.encoder(x).transpose(1, 2)
    assert want.shape == (6, -(-n // 320), 128) and want.abs().max() > 0.1
    assert torch.equal(ours24(x), want)                                   # the reference's batch: bit for bit
    assert (ours24.embed(x) - want).abs().max() <= TOL                   # the engine's micro-batches of 4


def test_48k_equals_encodec_and_fadtk(ref48, ours48):
    "Default 48k = fadtk's encodec-emb-48k: 1 s segments without overlap, the last one shorter, no RMS normalisation"
    x = signals(48000, 1.3, seed=3, stereo=True)[[2, 5]]               # noise, music
    ml = refs.fadtk_encodec(ref48, '48k')
    for i in range(len(x)):
        want = ml._get_embedding(x[i:i + 1])                              # fadtk's own segmenting loop
        got = ours48.embed(x[i:i + 1])[0]
        assert want.shape == got.shape == (195, 128)                      # 150 + 45 frames
        assert (got - want).abs().max() <= TOL, i
    assert ours48.options() == {'segment': 1.0, 'max_seconds': None}


def test_48k_whole_window_equals_frechet_audio_distance(ref48, ckpt):
    "segment=0: one encoder call per file, frames (T, 128), mono files duplicated = frechet-audio-distance's numbers"
    ours = get_embedder('encodec:48k', weights=ckpt / FILE['48k'], custom_weights=True, opts={'segment': 0})
    f = refs.fad_encodec(ref48)
    x = signals(48000, 0.6, seed=4, stereo=True)
    want_st = f.get_embeddings([x[0].T.numpy()], 48000)                   # soundfile layout (samples, 2)
    want_mono = f.get_embeddings([x[1, 0].numpy()], 48000)                # mono: duplicated to two channels
    assert want_st.shape == want_mono.shape == (90, 128)
    assert np.abs(ours.embed(x[:1])[0].numpy() - want_st).max() <= TOL
    assert np.abs(ours.embed(x[1:2, :1])[0].numpy() - want_mono).max() <= TOL


def test_24k_equals_frechet_audio_distance(ref24, ours24):
    f = refs.fad_encodec(ref24)
    x = signals(24000, 0.9, seed=5)
    want = f.get_embeddings([x[5, 0].numpy()], 24000)
    assert want.shape == (68, 128) and np.abs(ours24.embed(x[5:])[0].numpy() - want).max() <= TOL


def test_batch_independence_is_bitwise(ours24, ours48):
    "A window's frames are the same bit for bit alone or among others (fixed micro-batches, zero-padded)"
    x = signals(24000, 0.5, seed=6)
    x = torch.cat([x, x[:3] * 0.5])                                      # 9 windows: passes of 4, 4, 1 (+3 zeros)
    many = ours24.embed(x)
    for i in (2, 8): assert torch.equal(ours24.embed(x[i:i + 1]), many[i:i + 1]), i
    y = signals(48000, 0.3, seed=7, stereo=True)[:3]
    many = ours48.embed(y)
    for i in (0, 2): assert torch.equal(ours48.embed(y[i:i + 1]), many[i:i + 1]), i


# ------------------------------------------------------------------ loading

def test_published_layout(ref24, ckpt):
    "The file is the whole codec's flat state dict; ours reads its encoder keys, in the reference's order"
    sd = torch.load(ckpt / FILE['24k'], weights_only=True)
    assert {k.split('.')[0] for k in sd} == {'encoder', 'decoder', 'quantizer'}
    with torch.device('meta'): ours = E.Encodec()
    assert [k for k in sd if k.startswith('encoder.')] == list(ours.state_dict())


def test_wrong_variant_and_file(ckpt, tmp_path):
    with pytest.raises(ValueError, match=r'this is the 24k EnCodec \(encodec_24khz-d7cc33bc.th\), but encodec:48k was asked for: use encodec:24k'):
        get_embedder('encodec:48k', weights=ckpt / FILE['24k'], custom_weights=True)
    torch.save({'features.0.weight': torch.zeros(2)}, tmp_path / 'vggish.pth')
    with pytest.raises(ValueError, match=r"vggish.pth: not an EnCodec checkpoint \(no 'encoder.model.\*' keys\)"):
        get_embedder('encodec', weights=tmp_path / 'vggish.pth', custom_weights=True)


def test_truncated_file(ckpt, tmp_path):
    p = tmp_path / FILE['48k']
    with open(ckpt / FILE['48k'], 'rb') as f: p.write_bytes(f.read(1 << 20))
    with pytest.raises(ValueError, match=f'{p}: cannot read checkpoint'):
        get_embedder('encodec:48k', weights=p, custom_weights=True)


def test_published_checksums(ckpt):
    "Not the published files: the 24k file fails the pinned size, the 48k file the published sha256 prefix"
    with pytest.raises(ValueError, match=r'but encodec_24khz-d7cc33bc.th is 93171529 bytes'):
        get_embedder('encodec', weights=ckpt)
    with pytest.raises(ValueError, match=r'checksum mismatch \(sha256 [0-9a-f]{64}, expected 7e698e3e\)'):
        get_embedder('encodec:48k', weights=ckpt)


def test_missing_file_offline(offline):
    with pytest.raises(FileNotFoundError, match=r'weights encodec_48khz-7e698e3e.th not found .* fetch https://dl.fbaipublicfiles.com/encodec/v0/encodec_48khz-7e698e3e.th'):
        get_embedder('encodec:48k')


# ------------------------------------------------------------------ end to end

def test_fad_embed_cli_equals_references(ref24, ref48, ckpt, tmp_path):
    """fad_embed encodec / encodec:48k DIR as real programs: one row per 320-sample frame with its time, equal to the
    references on the same audio (24k: the whole file; 48k: fadtk's 1 s segments of the mono mix, --channels mono)"""
    src = tmp_path / 'audio'
    src.mkdir()
    sf.write(src / 'a.wav', refs.make_signals(24000, 0.4, seed=1)['music'], 24000, subtype='FLOAT')
    st = signals(48000, 1.3, seed=2, stereo=True)[5].T.numpy()
    sf.write(src / 'b.wav', st, 48000, subtype='FLOAT')
    run('fad_embed', 'encodec', src, '--weights', ckpt / FILE['24k'], '--custom-weights', '--out', tmp_path / 'o24',
        '--resampler', 'soxr_vhq')
    run('fad_embed', 'encodec:48k', src, '--weights', ckpt / FILE['48k'], '--custom-weights', '--out', tmp_path / 'o48',
        '--channels', 'mono', '--opts', 'max_seconds=1.2')
    out24, out48 = tmp_path / 'o24/audio_emb_encodec', tmp_path / 'o48/audio_emb_encodec-48k'
    prov = json.loads((out48 / 'manifest.json').read_text())['provenance']
    assert (prov['variant'], prov['window'], prov['channels'], prov['opt_segment'], prov['opt_max_seconds'], prov['custom_weights']) == \
           ('48k', None, 'mono', 1.0, 1.2, True)
    d = torch.load(out24 / 'a.wav.pt', weights_only=True)
    x = torch.from_numpy(sf.read(src / 'a.wav', dtype='float32')[0])
    want = ref24.encoder(x[None, None])[0].T
    assert d['embeddings'].shape == want.shape == (30, 128) and (d['embeddings'] - want).abs().max() <= TOL
    assert torch.allclose(d['times'], torch.arange(30, dtype=torch.float64) / 75)
    d = torch.load(out48 / 'b.wav.pt', weights_only=True)
    mono = torch.from_numpy(st.mean(1, dtype=np.float32))[:57600]        # --channels mono; max_seconds=1.2 (fadtk: 180)
    want = refs.fadtk_encodec(ref48, '48k')._get_embedding(mono.expand(1, 2, -1))
    assert d['embeddings'].shape == want.shape == (180, 128) and (d['embeddings'] - want).abs().max() <= TOL
    assert d['times'][-1].item() == pytest.approx(179 / 150) and d['seconds'] == pytest.approx(1.3)
