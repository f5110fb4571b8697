"""fad_pytorch's DAC 44.1 kHz encoder and fadtk's `dac-44kHz` pipeline against descript-audio-codec 1.0.0,
descript-audiotools 0.7.2 (BS.1770 loudness, normalize, ensure_max_of_audio), fadtk 1.1.0's `DACModel` and pyloudnorm.

The reference DAC gets seeded random parameters (tests/refs.py) and is saved by audiotools' own
`BaseModel.save(package=False)`, the layout of the published `weights.pth`; ours loads it with `custom_weights=True`.

Tolerances:
- embeddings: TOL = 1e-4 absolute (the project's fp32 CPU budget; frames here reach ~1–10). The encoder runs the
  same ops in the same order: with the reference's batch, bit for bit.
- loudness: LU_AT = 1e-4 LU against audiotools, which runs the K-weighting IIR in float32 (measured: 2e-6 to 4e-5
  LU); LU_PYLN = 1e-8 LU against pyloudnorm (both float64; measured ~1e-13). Ours runs in float64.
- normalised audio: a loudness difference of LU_AT moves the gain by LU_AT·ln(10)/20 = 1.2e-5 relative (GAIN_TOL),
  so audio normalised by audiotools and by us agree within GAIN_TOL × its peak, and so do (to first order) frames
  computed from it: pipeline comparisons against audiotools-normalised audio allow TOL + GAIN_TOL × the largest
  value.
A DAC encoder call on fadtk's 5 s windows costs ~20 s of CPU here, so fadtk's whole pipeline is checked with a cheap
stand-in encoder (the same one in both: what is compared is normalisation, padding and windows), and the real
encoder on short windows.
"""
import json
import numpy as np, pytest, soundfile as sf, torch
import torch.nn.functional as F
import refs
from util import run
import fad_pytorch.models.dac as D
from fad_pytorch.embedder import get_embedder
from fad_pytorch.fad_embed import embed_dir, settings_for, Choices, RunSettings

TOL, LU_AT, LU_PYLN = 1e-4, 1e-4, 1e-8
GAIN_TOL = LU_AT * np.log(10) / 20
SR = 44100
torch.set_num_threads(2)
torch.set_grad_enabled(False)


@pytest.fixture(scope='module')
def ref():
    return refs.dac_ref(seed=3)


@pytest.fixture(scope='module')
def ckpt(ref, tmp_path_factory):
    return refs.save_dac_file(ref, tmp_path_factory.mktemp('dac') / D.DAC_CHECKPOINT.file)


@pytest.fixture(scope='module')
def ours(ckpt):
    return get_embedder('dac', weights=ckpt, custom_weights=True)


def music(seconds, seed=0, gain=1.0):
    return torch.from_numpy(refs.make_signals(SR, seconds, seed)['music'] * gain)


# ------------------------------------------------------------------ loudness

@pytest.mark.parametrize('seconds,channels,spike', [(0.3, 1, False), (1.0, 1, True), (1.37, 1, False), (0.8, 2, True)])
def test_loudness_and_normalize_equal_audiotools_and_pyloudnorm(seconds, channels, spike):
    """integrated_loudness = audiotools' AudioSignal.loudness (0.5 s minimum, zero-completed blocks) and pyloudnorm;
    normalize_loudness = AudioSignal.normalize(-16).ensure_max_of_audio() (a spike: the peak limit acts at -16 LUFS)"""
    at = refs.audiotools()
    import pyloudnorm
    x = torch.stack([music(seconds, s, 0.1) for s in range(channels)])
    if spike: x[0, len(x[0]) // 2] = 1.0
    sig = at.AudioSignal(x[None].clone(), SR)
    want = sig.loudness().item()
    got = D.integrated_loudness(x, SR)
    assert abs(got - want) <= LU_AT, (got, want)
    if seconds >= 0.5: assert abs(got - pyloudnorm.Meter(SR).integrated_loudness(x.T.double().numpy())) <= LU_PYLN
    sig.normalize(-16.0).ensure_max_of_audio()
    y = D.normalize_loudness(x, SR)
    assert (y - sig.audio_data[0]).abs().max() <= GAIN_TOL * y.abs().max()
    assert (y[0].abs().max() == 1.0) == spike                            # only a spiky channel was peak-limited


def test_silence():
    at = refs.audiotools()
    z = torch.zeros(1, 30000)
    assert D.integrated_loudness(z, SR) == at.AudioSignal(z[None].clone(), SR).loudness().item() == -70.0
    assert torch.equal(D.normalize_loudness(z, SR), z)


# ------------------------------------------------------------------ encoder

@pytest.mark.parametrize('n', [1100, 4410])
def test_encoder_equals_dac(ref, ours, n):
    "Ours = dac's model.encoder: (windows, n // 512, 1024)"
    x = torch.stack([music(n / SR, s) for s in range(3)])[:, None]
    want = ref.encoder(x).transpose(1, 2)
    assert want.shape == (3, n // 512, 1024) and want.abs().max() > 0.1
    assert torch.equal(ours(x), want)                                    # the reference's batch: bit for bit
    assert (ours.embed(x) - want).abs().max() <= TOL                     # micro-batches of 2


def test_batch_independence_is_bitwise(ours):
    x = torch.stack([music(2000 / SR, s) for s in range(3)])[:, None]
    many = ours.embed(x)
    for i in range(3): assert torch.equal(ours.embed(x[i:i + 1]), many[i:i + 1]), i


# ------------------------------------------------------------------ fadtk's pipeline

class StandIn(torch.nn.Module):
    "A cheap deterministic 'encoder' with DAC's shapes: each 512-sample frame's mean, times 1..1024"
    def forward(self, x): return F.avg_pool1d(x, 512) * torch.arange(1, 1025.)[None, :, None]


@pytest.mark.parametrize('seconds', [5.2])
def test_fadtk_pipeline(tmp_path, seconds):
    """fad_embed's default framing and `prepare` = fadtk's DACModel: -16 LUFS and peak limit, padding to a multiple of
    5 s, collect_windows(5 s, 2.5 s), encoder per window; the same stand-in encoder on both sides"""
    src = tmp_path / 'a'
    src.mkdir()
    sf.write(src / 'x.wav', music(seconds, 4, 0.5).numpy(), SR, subtype='PCM_16')        # fadtk's cache: 16-bit mono
    ml = refs.fadtk_dac(StandIn())
    want = ml._get_embedding(ml.load_wav(src / 'x.wav'))
    ours = D.DAC().eval()
    ours.encoder = StandIn()
    embed_dir(ours, src, tmp_path / 'o', *settings_for(ours, Choices()), RunSettings(num_workers=0, progress=False))
    d = torch.load(tmp_path / 'o/x.wav.pt', weights_only=True)
    windows = 2 * int(np.ceil(seconds / 5)) + 1                          # 5 for 5.2 s: padded to 10 s, +2.5 s both sides
    assert d['embeddings'].shape == want.shape == (windows * 430, 1024)
    assert (d['embeddings'] - want).abs().max() <= GAIN_TOL * want.abs().max()
    assert d['times'][[0, 430, 860]].tolist() == [-2.5, 0.0, 2.5] and d['times'][1].item() == pytest.approx(-2.5 + 512 / SR)


# ------------------------------------------------------------------ loading

def test_published_layout(ref, ckpt):
    "The file holds {'state_dict', 'metadata': {'kwargs'}} (audiotools' layout), which dac itself loads back"
    import dac
    ck = torch.load(ckpt, weights_only=True)
    assert set(ck) == {'state_dict', 'metadata'} and ck['metadata']['kwargs']['encoder_rates'] == [2, 4, 8, 8]
    assert torch.equal(dac.DAC.load(str(ckpt)).encoder.block[0].weight_v, ref.encoder.block[0].weight_v)
    with torch.device('meta'): m = D.DAC()
    assert [k for k in ck['state_dict'] if k.startswith('encoder.')] == list(m.state_dict())


def test_wrong_model(tmp_path):
    p = tmp_path / 'weights_24khz.pth'
    torch.save({'state_dict': {}, 'metadata': {'kwargs': {'sample_rate': 24000, 'encoder_dim': 64, 'encoder_rates': [2, 4, 5, 8]}}}, p)
    with pytest.raises(ValueError, match=r"weights_24khz.pth: this DAC model is \{'sample_rate': 24000, .*not the 44.1 kHz model"):
        get_embedder('dac', weights=p, custom_weights=True)
    torch.save({'encoder.block.0.bias': torch.zeros(64)}, tmp_path / 'sd.pth')
    with pytest.raises(ValueError, match=r"sd.pth: not a DAC weights file"):
        get_embedder('dac', weights=tmp_path / 'sd.pth', custom_weights=True)


def test_truncated_and_unpublished(ckpt, tmp_path):
    p = tmp_path / D.DAC_CHECKPOINT.file
    with open(ckpt, 'rb') as f: p.write_bytes(f.read(1 << 20))
    with pytest.raises(ValueError, match=f'{p}: cannot read checkpoint'):
        get_embedder('dac', weights=p, custom_weights=True)
    with pytest.raises(ValueError, match=r'but weights_44khz_8kbps_0.0.1.pth is 306717287 bytes'):
        get_embedder('dac', weights=ckpt)


def test_missing_file_offline(offline):
    with pytest.raises(FileNotFoundError, match=r'weights weights_44khz_8kbps_0.0.1.pth not found .*github.com/descriptinc/descript-audio-codec/releases/download/0.0.1/weights.pth'):
        get_embedder('dac')


# ------------------------------------------------------------------ end to end

def test_fad_embed_cli_equals_reference(ref, ckpt, tmp_path):
    """fad_embed dac DIR as a real program (short centred windows, fadtk_pad off, to keep it fast): audiotools'
    normalisation, then dac's encoder on each window, equal to the .pt rows"""
    src = tmp_path / 'audio'
    src.mkdir()
    x = music(0.35, 5, 0.3)
    sf.write(src / 'a.wav', x.numpy(), SR, subtype='FLOAT')
    run('fad_embed', 'dac', src, '--weights', ckpt, '--custom-weights', '--out', tmp_path / 'o', '--window', '0.1',
        '--hop', '0.1', '--opts', 'fadtk_pad=false')
    out = tmp_path / 'o/audio_emb_dac'
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert (prov['model'], prov['opt_loudness'], prov['opt_fadtk_pad'], prov['center'], prov['window']) == ('dac', True, False, True, 0.1)
    sig = refs.audiotools().AudioSignal(x[None, None].clone(), SR).normalize(-16.0).ensure_max_of_audio()
    y = F.pad(sig.audio_data[0, 0], (2205, 4 * 4410 - 2205 - len(x)))   # centred 0.1 s windows: 4 of them
    want = torch.cat([ref.encoder(w[None, None])[0].T for w in y.split(4410)])
    d = torch.load(out / 'a.wav.pt', weights_only=True)
    assert d['embeddings'].shape == want.shape == (32, 1024)
    assert (d['embeddings'] - want).abs().max() <= TOL + GAIN_TOL * want.abs().max()
    assert d['times'][8].item() == pytest.approx(0.05)
