"""fad_pytorch's SC09 classifier (sc09) against SaShiMi's own code: `CifarResNeXt` from models/resnext.py on the
front end of transforms_wav.py (librosa), as state-spaces/s4's test_speech_commands.py runs them.

The reference model gets seeded random weights (He-scaled convolutions; BatchNorm statistics measured on digit-like
mel images so activations stay O(1)) and is written as the training script writes resnext.pth: the whole
`DataParallel(CifarResNeXt)` object pickled, its classes named `models.resnext.*` (the reference folder is imported as
the package `models`), its storages tagged `cuda:0` as on the GPU it was trained on. Ours reads that file through
the allowlist unpickler (`get_embedder('sc09', weights=FILE, custom_weights=True)`).

Tolerances: features and logits within TOL = 1e-4 absolute (the project's fp32 CPU budget; features reach ~25 and
logits ~7 here). Our front end runs in float64 where librosa rounds to float32, so the mel images differ by up to
7.6e-6 dB (TOL_MEL = 2e-5 dB; for silence librosa returns -7.6e-6 dB everywhere instead of 0). Through the network
this moves features by up to 4.3e-5 (the silent clip; ~5e-6 for the others) and logits by up to 2.3e-5, measured
here. With the same mel image and any batch size our network equals the reference bit for bit.
"""
import json, os, pickle, subprocess, sys, zipfile
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
from fad_pytorch.classifier_metrics import dir_logits
from fad_pytorch.embedder import get_embedder
from fad_pytorch.models import sc09 as S
from fad_pytorch.weights import read_checkpoint

TOL = 1e-4
TOL_MEL = 2e-5       # dB: float32 rounding in librosa (float64 here), see the module docstring
pytestmark = pytest.mark.skipif(refs.sashimi_refenv() is None, reason="the SaShiMi reference code (shared/refenv/sashimi, "
                                "or $FAD_REFENV/sashimi) is not on this machine")
torch.set_num_threads(2)


@pytest.fixture(scope='module')
def ref():
    return refs.sc09_ref(seed=3)


@pytest.fixture(scope='module')
def ckpt(ref, tmp_path_factory):
    "The reference weights as resnext.pth: DataParallel(CifarResNeXt) pickled whole, storages tagged cuda:0 (138 MB)"
    p = refs.save_sc09_file(ref, tmp_path_factory.mktemp('sc09') / 'resnext.pth')
    yield p
    p.unlink()


@pytest.fixture(scope='module')
def ours(ckpt):
    return get_embedder('sc09', weights=ckpt, custom_weights=True)


def clips():
    "Digit-like clips of 1 s, a short one (zero-padded), a long one (truncated), silence"
    c = refs.digit_like(3, seed=5)
    return c + [refs.digit_like(1, seed=6, seconds=0.55)[0], refs.digit_like(1, seed=7, seconds=1.7)[0], np.zeros(16000, np.float32)]


def batch(cs):
    "Clips of any length as one (n, 1, samples) batch: fixed to 1 s first, as the engine's framing does"
    return torch.stack([S.fix_length(torch.from_numpy(c)) for c in cs])[:, None]


# ------------------------------------------------------------------ front end and network

@pytest.mark.parametrize('pad', ['constant', 'reflect'])
def test_mel_equals_librosa(pad, monkeypatch):
    "sc09_mel == transforms_wav's ToMelSpectrogram (librosa melspectrogram(n_mels=32), power_to_db(ref=np.max)); reflect = librosa < 0.9"
    if pad == 'reflect':        # librosa < 0.9's default, on today's librosa
        import librosa
        mel = librosa.feature.melspectrogram
        monkeypatch.setattr(librosa.feature, 'melspectrogram', lambda **kw: mel(pad_mode='reflect', **kw))
    cs = clips()
    want = torch.stack([refs.sc09_ref_mel(c) for c in cs])[:, None]
    got = S.sc09_mel(batch(cs)[:, 0], S.mel_filterbank(32, 2048, htk=False, sample_rate=16000), pad)
    assert got.shape == want.shape == (6, 1, 32, 32) and got.dtype == torch.float32
    assert want.min() == -80.0 and want[:5].amax((1, 2, 3)).abs().max() < 1e-5      # librosa's floor and 0-dB top
    assert (got - want).abs().max() <= TOL_MEL


def test_logits_and_features_equal_reference(ref, ours):
    "Our features (classifier input, 1024-d) and 10 logits == the reference model on the reference front end"
    cs = clips()
    f_ref, l_ref = refs.sc09_ref_outputs(ref, cs)
    with torch.inference_mode():
        f, l = ours.embed(batch(cs), logits=True)
        f1, l1 = ours.forward_logits(batch(cs))
    assert f.shape == f_ref.shape == (6, 1024) and l.shape == l_ref.shape == (6, 10)
    assert f_ref.abs().max() > 0.5 and l_ref.std() > 0.3                     # lively values, not a comparison of zeros
    assert (f - f_ref).abs().max() <= TOL and (l - l_ref).abs().max() <= TOL
    assert (f1 - f_ref).abs().max() <= TOL and (l1 - l_ref).abs().max() <= TOL
    with torch.inference_mode():                                             # the forward pass fixes lengths itself too
        direct = torch.cat([ours(torch.from_numpy(c)[None, None]) for c in cs[3:5]])
    assert (direct - f_ref[3:5]).abs().max() <= TOL


def test_batch_independence_is_bitwise(ours):
    x = batch(refs.digit_like(9, seed=8))                                    # passes of 8 and 1 (+ 7 zero windows)
    with torch.inference_mode():
        many = ours.embed(x, logits=True)
        for i in (8,):
            one = ours.embed(x[i:i + 1], logits=True)
            assert torch.equal(one[0], many[0][i:i + 1]) and torch.equal(one[1], many[1][i:i + 1])


# ------------------------------------------------------------------ the published pickle

def test_file_is_tagged_cuda_and_loads_on_cpu(ckpt, ref):
    "Storages say cuda:0 (plain torch.load without a GPU fails on it); ours reads it on the CPU, with stand-ins, not the reference classes"
    with zipfile.ZipFile(ckpt) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith('data.pkl')))
    assert b'cuda:0' in pkl and b'models.resnext' in pkl and b'CifarResNeXt' in pkl
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA'):
            torch.load(ckpt, weights_only=False)          # trusted here: our own file, with the reference classes importable
    ck = read_checkpoint(ckpt, allowed=S.PICKLE_ALLOWED)
    assert type(ck) is S.STAND_INS['torch.nn.parallel.data_parallel.DataParallel']
    assert str(ck.attrs['src_device_obj']) == 'cuda:0' and ck.attrs['device_ids'] == [0]
    sd = S.sc09_state_dict(ck, ckpt)
    assert list(sd) == list(ref.state_dict()) and all(v.device.type == 'cpu' for v in sd.values())
    assert all(torch.equal(sd[k], v) for k, v in ref.state_dict().items())


def test_refuses_other_globals(tmp_path):
    "A pickle naming any global outside the allowlist is refused before anything runs, with an error naming it"
    marker = tmp_path / 'pwned'
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    net.payload = Evil()
    refs.save_sc09_file(net, tmp_path / 'evil.pth')
    with pytest.raises(ValueError, match=r"evil.pth: cannot read checkpoint \(refused: global 'posix.system' is not allowed"):
        get_embedder('sc09', weights=tmp_path / 'evil.pth', custom_weights=True)
    assert not marker.exists()
    refs.save_sc09_file(torch.nn.Sequential(torch.nn.ReLU()), tmp_path / 'relu.pth')          # an ordinary torch class, not in the file
    with pytest.raises(ValueError, match=r"relu.pth: cannot read checkpoint \(refused: global 'torch.nn.modules.activation.ReLU' is not allowed"):
        get_embedder('sc09', weights=tmp_path / 'relu.pth', custom_weights=True)
    (tmp_path / 'proto4.pth').write_bytes(pickle.dumps(Evil(), protocol=4))                  # a bare pickle, legacy-format path
    with pytest.raises(ValueError, match=r"global 'posix.system' is not allowed"):
        get_embedder('sc09', weights=tmp_path / 'proto4.pth', custom_weights=True)
    assert not marker.exists()


def test_other_formats_and_wrong_models(ref, ours, tmp_path):
    "The training checkpoint ({'state_dict': DataParallel keys 'module.…'}) loads the same; another network or size is a clear error"
    sd = {'module.' + k: v for k, v in ref.state_dict().items()}
    torch.save({'epoch': 70, 'step': 1, 'state_dict': sd, 'loss': 0.1, 'accuracy': 0.98}, tmp_path / 'ckpt.pth')
    other = get_embedder('sc09', weights=tmp_path / 'ckpt.pth', custom_weights=True)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), ours.state_dict().values()))
    (tmp_path / 'ckpt.pth').unlink()
    R, _, _ = refs.sashimi_modules()
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*kaiming_normal')
        small = R.CifarResNeXt(nlabels=12, in_channels=1, cardinality=2, base_width=4, widen_factor=1)
    refs.save_sc09_file(small, tmp_path / 'c2.pth')
    with pytest.raises(ValueError, match=r"c2.pth: a CifarResNeXt with cardinality=2, base_width=4, widen_factor=1, nlabels=12; the SC09 classifier has cardinality=8"):
        get_embedder('sc09', weights=tmp_path / 'c2.pth', custom_weights=True)
    torch.save({k: v for k, v in list(ref.state_dict().items())[:-2]}, tmp_path / 'partial.pth')     # no classifier
    with pytest.raises(ValueError, match=r"partial.pth: checkpoint does not fit ResNeXt29 \(missing keys: classifier.bias, classifier.weight"):
        get_embedder('sc09', weights=tmp_path / 'partial.pth', custom_weights=True)


def test_missing_file_offline(offline):
    with pytest.raises(FileNotFoundError, match=r'weights resnext.pth not found .*krandiash/sashimi-release/resolve/main/sc09_classifier/resnext.pth'):
        get_embedder('sc09')


# ------------------------------------------------------------------ end to end

def test_fad_embed_cli_equals_reference(ref, ckpt, tmp_path):
    "fad_embed sc09 DIR --logits, a real program: one row per file == SaShiMi's LoadAudio + FixAudioLength + mel + model"
    src = tmp_path / 'audio'
    for rel, seconds, seed in (('zero/0.wav', 1.0, 11), ('zero/1.wav', 0.62, 12), ('nine/10.flac', 1.9, 13)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(src / rel, refs.digit_like(1, seed=seed, seconds=seconds)[0], 16000, subtype='PCM_16')
    r = run('fad_embed', 'sc09', src, '--weights', ckpt, '--custom-weights', '--logits', '--out', tmp_path / 'out')
    out = tmp_path / 'out' / 'audio_emb_sc09'
    assert r.stdout.strip().endswith('audio_emb_sc09')
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert (prov['model'], prov['window'], prov['hop'], prov['pad'], prov['short'], prov['logits'], prov['opt_stft_pad']) == \
           ('sc09', 1.0, S.ONE_WINDOW_HOP, 'drop', 'zero', True, 'constant')
    _, T, _ = refs.sashimi_modules()
    for rel in ('zero/0.wav', 'zero/1.wav', 'nine/10.flac'):
        y = T.LoadAudio()({'path': str(src / rel)})['samples']                 # librosa.load(path, sr=16000)
        f_ref, l_ref = refs.sc09_ref_outputs(ref, [y])
        d = torch.load(out / f'{rel}.pt', weights_only=True)
        assert d['embeddings'].shape == (1, 1024) and d['logits'].shape == (1, 10) and d['times'].tolist() == [0.0], rel
        assert (d['embeddings'] - f_ref).abs().max() <= TOL and (d['logits'] - l_ref).abs().max() <= TOL, rel
    names, rows = dir_logits(out)                                 # what the classifier metrics read: one row per file
    assert names == ['nine/10.flac', 'zero/0.wav', 'zero/1.wav'] and rows.shape == (3, 10) and rows.dtype == torch.float64
    assert torch.equal(rows[1], torch.load(out / 'zero/0.wav.pt', weights_only=True)['logits'][0].double())
