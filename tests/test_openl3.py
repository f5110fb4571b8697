"""OpenL3: ours against torchopenl3 1.0.1 (the same seeded weights, through its .pth.tar format and our loader) and
against the official openl3 0.4.2 run in TensorFlow (weights written by Keras itself, read by our .h5 loader);
openl3's framing; bitwise batch independence; loader errors; fad_embed end to end.

Tolerance: max abs difference 1e-4 on the embeddings (fp32, CPU). The embeddings are O(10) (max |e| 13-25 with these
weights), the measured differences 2e-5 .. 5e-5: float32 rounding of convolutions summing up to 4608 products, done in
another order (BatchNorm folded into the convolutions, other conv algorithms), through 8 layers.

The TF reference runs in its own venv, made by `bash .ci/setup-tfref` (FAD_TFREF_VENV, default .venv-tfref);
tests/tfref/make_tf_reference.py writes it into .cache/tfref-<hash of that script and .ci/setup-tfref> once (about a
minute). Without the venv these tests fail; FAD_SKIP_TFREF=1 skips them (quick local runs only: CI runs them).
"""
import hashlib, json, os, shutil, subprocess, warnings
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
import torchopenl3.core as TC, torchopenl3.models as TM, torchopenl3.utils as TU
import refs
from util import run
from fad_pytorch.audio import audio_to_windows
from fad_pytorch.embedder import get_embedder
from fad_pytorch.models import openl3 as O

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-4
REPRS, DIMS = ('mel128', 'mel256', 'linear'), (512, 6144)
torch.set_num_threads(2)
pytestmark = [pytest.mark.filterwarnings('ignore:Empty filters detected'),   # librosa, for the 128/256-band HTK matrices
              pytest.mark.filterwarnings("ignore:.*not kapre 0.1.4's area-normalised")]   # torchopenl3 files made here (librosa 0.10)


# ------------------------------------------------------------------ helpers

def signal(seconds:float=1.5, # duration
           seed:int=1, # noise seed
          ) -> np.ndarray: # float32 mono at 48 kHz
    "Noise, a 440 Hz tone and a chirp, with a nearly silent stretch across a window boundary"
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 48000)) / 48000
    x = 0.2 * rng.standard_normal(t.size) + 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (100 + 4000 * t) * t)
    x[int(0.9 * 48000):int(1.1 * 48000)] *= 0.01
    return x.astype(np.float32)


def tone(freq:float=1000.0) -> torch.Tensor: # (1, 1, 48000) float32
    "One window of a pure tone: the quietest of its 80 dB are float32 rounding noise in the reference"
    return (0.5 * torch.sin(2 * np.pi * freq * torch.arange(48000, dtype=torch.float64) / 48000)).float()[None, None]


def reference(repr_:str, dim:int, seed:int, d:Path, content:str='music') -> tuple:
    "torchopenl3's model with seeded weights, saved as its published .pth.tar; returns (model, file)"
    ref = refs.openl3_ref(f'{repr_}_{content}_{dim}', seed)
    return ref, refs.save_openl3_file(ref.state_dict(), d / f'torchopenl3_{repr_}_{content}_{dim}.pth.tar')


def windows(audio:np.ndarray, emb:O.OpenL3, hop:float|None=None) -> torch.Tensor:
    "The engine's windows of a mono signal, by the embedder's own framing rules"
    return audio_to_windows(torch.from_numpy(audio)[None], *emb.window_samples(hop=hop), emb.pad, emb.center, emb.short)


def maxdiff(a, b) -> float: return (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()


# ------------------------------------------------------------------ torchopenl3 1.0.1

@pytest.mark.parametrize('dim', DIMS)
@pytest.mark.parametrize('repr_', REPRS)
def test_torchopenl3_fidelity(tmp_path, repr_, dim):
    "Same weights through torchopenl3's file: equal framing, bit-equal spectrogram, embeddings within 1e-4 (tone included)"
    ref, path = reference(repr_, dim, REPRS.index(repr_), tmp_path)
    ours = get_embedder(f'openl3:{repr_}_music_{dim}', weights=path)
    assert (ours.dim, ours.options()['frontend'], ours.options()['weights_format']) == (dim, 'kapre014', 'torchopenl3')
    audio = signal()
    x = windows(audio, ours, hop=0.5)
    assert torch.equal(x, TU.preprocess_audio_batch(torch.from_numpy(audio)[None].double(), 48000, True, 0.5).float())
    x = torch.cat([x, tone(), 1e-4 * x[:1]])           # broadband, a pure tone, a very quiet window
    with torch.inference_mode():
        r, e = ref(x), ours.embed(x)
        assert torch.equal(ours.spectrogram(x[:, 0]), ref.speclayer(x).squeeze(-1))
    assert e.shape == (5, dim)
    assert maxdiff(e, r) <= TOL, maxdiff(e, r)


def test_dft32_needed_on_tones(tmp_path):
    "On a pure tone, torchopenl3's float32 DFT noise in the quiet bins matters: a float64 FFT is off by more than 1e-4"
    ref, path = reference('mel128', 512, 0, tmp_path)
    exact, fft64 = (get_embedder('openl3:mel128_music_512', weights=path, opts={'dft32': v}) for v in (None, False))
    with torch.inference_mode():
        r = ref(tone())
        assert maxdiff(exact.embed(tone()), r) <= TOL
        assert maxdiff(fft64.embed(tone()), r) > TOL      # documents why dft32 is the default for kapre014


def test_fast_winograd(tmp_path):
    "fast=True (Winograd F(4x4, 3x3)) stays within 1e-4 of torchopenl3 on the same weights"
    ref, path = reference('mel256', 512, 5, tmp_path)
    ours = get_embedder('openl3:mel256_music_512', weights=path, opts={'fast': True})
    x = torch.cat([windows(signal(), ours, hop=0.5), tone()])
    with torch.inference_mode(): assert maxdiff(ours.embed(x), ref(x)) <= TOL


def test_frontend_tensors_and_mel_warning(tmp_path):
    "kapre 0.1.4's DFT kernels = torchopenl3's; a file whose mel matrix is not kapre 0.1.4's is used, with a warning"
    re_, im = O.dft_kernels(2048)
    spec = TM.PytorchOpenl3('music', 'mel128', 512).speclayer
    assert torch.equal(re_, spec.dft_real_kernels) and torch.equal(im, spec.dft_imag_kernels)
    ref, path = reference('mel128', 512, 0, tmp_path)          # librosa 0.10: an L1-normalised mel matrix
    with pytest.warns(UserWarning, match="not kapre 0.1.4's area-normalised one"):
        m = get_embedder('openl3:mel128_music_512', weights=path)
    assert torch.equal(m.speclayer.mel_basis, ref.speclayer.mel_basis)
    sd = ref.state_dict(); sd['speclayer.mel_basis'] = O.default_mel_basis('mel128', 'kapre014')
    (tmp_path / 'area').mkdir(); torch.save(sd, tmp_path / 'area' / path.name)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        get_embedder('openl3:mel128_music_512', weights=tmp_path / 'area')


# ------------------------------------------------------------------ librosa front ends

@pytest.mark.parametrize('repr_', REPRS)
@pytest.mark.parametrize('pad_mode', ('constant', 'reflect'))
def test_librosa_frontend(repr_, pad_mode):
    "openl3 0.4's librosa front end (its formula with the installed librosa), and librosa < 0.9's reflect padding"
    import librosa
    if repr_ == 'linear' and pad_mode == 'reflect': pytest.skip('linear uses center=False: no padding')
    x = windows(signal(), O.OpenL3(), hop=0.5)[:, 0]
    want = []
    for w in x.numpy():
        if repr_ == 'linear': S = np.abs(librosa.stft(y=w, n_fft=512, hop_length=242, center=False))
        else: S = librosa.feature.melspectrogram(y=w, sr=48000, n_mels=O.N_MELS[repr_], n_fft=2048, hop_length=242,
                                                 center=True, power=1.0, pad_mode=pad_mode)
        S = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0)
        want.append(S - S.max())
    fe = 'librosa' if pad_mode == 'constant' else 'librosa_reflect'
    assert maxdiff(O.spectrogram(x, repr_, fe, O.default_mel_basis(repr_, fe)), np.stack(want)) <= 1e-3


@pytest.mark.parametrize('n_mels', (128, 256))
def test_mel_filterbanks(n_mels):
    "Slaney and HTK area-normalised matrices equal librosa.filters.mel"
    import librosa
    for htk in (False, True):
        ref = torch.from_numpy(librosa.filters.mel(sr=48000, n_fft=2048, n_mels=n_mels, htk=htk, norm='slaney'))
        assert maxdiff(O.mel_filterbank(n_mels, 2048, htk), ref) <= 1e-9 * ref.abs().max().item() + 1e-12


# ------------------------------------------------------------------ framing, batches

@pytest.mark.parametrize('hop', (0.1, 0.25, 0.5, 1.0))
@pytest.mark.parametrize('center', (True, False))
def test_framing_equals_torchopenl3(hop, center):
    "The engine's windows with OpenL3's rules (pad zero, short zero) = torchopenl3/openl3 framing, several lengths"
    emb = O.OpenL3()
    assert (emb.pad, emb.short, emb.center, emb.window, emb.hop) == ('zero', 'zero', True, 1.0, 0.1)
    for n in (1, 1000, 23999, 24000, 24001, 47999, 48000, 48001, 50000, 72000, 100001):
        a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        ref = TU.preprocess_audio_batch(torch.from_numpy(a)[None].double(), 48000, center, hop).float()
        ours = audio_to_windows(torch.from_numpy(a)[None], *emb.window_samples(hop=hop), emb.pad, center, emb.short)
        assert torch.equal(ours, ref), (n, hop, center)


@pytest.mark.parametrize('variant', ('mel256_music_512', 'mel128_env_6144'))
def test_batch_independence(variant):
    "Embedder.embed: a window's embedding is bit-identical alone, in any batch, at any place in a micro-batch"
    emb = refs.openl3_seeded_(O.OpenL3(variant), 2)
    x = torch.cat([windows(signal(0.6), emb, hop=0.5), tone()])      # 3 windows
    with torch.inference_mode():
        y = emb.embed(x)
        assert torch.equal(torch.cat([emb.embed(x[i:i + 1]) for i in range(len(x))]), y)
        assert torch.equal(emb.embed(x[1:]), y[1:])


# ------------------------------------------------------------------ loaders

def test_loader_errors(tmp_path, monkeypatch):
    "Truncated file, a file of another representation, another size by name, missing file offline: clear errors"
    ref, path = reference('mel128', 512, 0, tmp_path)
    with pytest.raises(ValueError, match='does not fit|not the variant|variant is mel256'):
        get_embedder('openl3:mel256_music_512', weights=path)
    other = tmp_path / 'other'; other.mkdir()
    (other / 'torchopenl3_mel256_music_512.pth.tar').write_bytes(path.read_bytes())    # a mel128 file under a mel256 name
    with pytest.raises(ValueError, match=r'torchopenl3_mel256_music_512\.pth\.tar: holds an OpenL3 mel128 model'):
        get_embedder('openl3:mel256_music_512', weights=other)
    with pytest.raises(ValueError, match='the file name says mel128_music_512, but the variant is mel128_music_6144'):
        get_embedder('openl3:mel128_music_6144', weights=path)
    trunc = tmp_path / 'trunc'; trunc.mkdir()
    (trunc / path.name).write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r'torchopenl3_mel128_music_512\.pth\.tar: cannot read checkpoint'):
        get_embedder('openl3:mel128_music_512', weights=trunc)
    sd = ref.state_dict(); sd['speclayer.dft_real_kernels'] = sd['speclayer.dft_real_kernels'] * 1.01
    (tmp_path / 'bad').mkdir(); torch.save(sd, tmp_path / 'bad' / path.name)
    with pytest.raises(ValueError, match="speclayer.dft_real_kernels differs from kapre 0.1.4's"):
        get_embedder('openl3:mel128_music_512', weights=tmp_path / 'bad')
    monkeypatch.setenv('FAD_CACHE_DIR', str(tmp_path / 'cache')); monkeypatch.setenv('FAD_OFFLINE', '1')
    monkeypatch.delenv('FAD_WEIGHTS_DIR', raising=False)
    with pytest.raises(FileNotFoundError, match='torchopenl3_mel256_env_6144.pth.tar not found.*torchopenl3-models/raw/master'):
        get_embedder('openl3:mel256_env_6144')


# ------------------------------------------------------------------ fad_embed end to end

def test_fad_embed_equals_torchopenl3_get_audio_embedding(tmp_path):
    "`fad_embed openl3:<variant> DIR --weights FILE` .pt files = torchopenl3.get_audio_embedding (center, hop 0.1)"
    ref, path = reference('mel128', 512, 9, tmp_path, content='env')
    d = tmp_path / 'audio'; d.mkdir()
    clips = {'long.wav': signal(1.3, seed=3), 'short.wav': 0.5 * signal(0.4, seed=4)}
    for name, a in clips.items(): sf.write(d / name, a, 48000, subtype='FLOAT')
    run('fad_embed', 'openl3:mel128_env_512', d, '--weights', path, '--out', tmp_path / 'emb', '--device', 'cpu')
    out = tmp_path / 'emb' / 'audio_emb_openl3-mel128_env_512'
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert {k: prov[k] for k in ('model', 'variant', 'opt_frontend', 'opt_dft32', 'opt_weights_format', 'hop', 'center', 'pad', 'short')} == \
        {'model': 'openl3', 'variant': 'mel128_env_512', 'opt_frontend': 'kapre014', 'opt_dft32': True,
         'opt_weights_format': 'torchopenl3', 'hop': 0.1, 'center': True, 'pad': 'zero', 'short': 'zero'}
    for name, a in clips.items():
        e = torch.load(out / f'{name}.pt', weights_only=True)['embeddings']
        r, _ = TC.get_audio_embedding(sf.read(d / name, dtype='float32')[0], 48000, model=ref, center=True, hop_size=0.1,
                                      verbose=False)
        assert e.shape == r[0].shape == (1 + int(np.ceil((len(a) + 24000 - 48000) / 4800)) if len(a) > 24000 else 1, 512)
        assert maxdiff(e, r[0]) <= TOL, (name, maxdiff(e, r[0]))


# ------------------------------------------------------------------ official openl3 0.4.2 (TensorFlow / Keras)

@pytest.fixture(scope='session')
def tfref() -> Path:
    "Keras-written .h5 weights and openl3 0.4.2 outputs, made once by tests/tfref/make_tf_reference.py and cached"
    if os.environ.get('FAD_SKIP_TFREF') == '1': pytest.skip('FAD_SKIP_TFREF=1: official openl3 (TensorFlow) reference tests skipped')
    venv = ROOT / os.environ.get('FAD_TFREF_VENV', '.venv-tfref')          # relative to the repository, as .ci/setup-tfref
    py, src = venv / 'bin' / 'python', venv / 'src' / 'openl3-0.4.2'
    if not (py.exists() and src.is_dir()):
        pytest.fail(f"the TF reference venv {venv} is missing or incomplete: run `bash .ci/setup-tfref` (or set "
                    "FAD_SKIP_TFREF=1 to skip the official-openl3 tests locally)", pytrace=False)
    script = ROOT / 'tests' / 'tfref' / 'make_tf_reference.py'
    key = hashlib.sha256(script.read_bytes() + (ROOT / '.ci' / 'setup-tfref').read_bytes()).hexdigest()[:16]
    out = ROOT / os.environ.get('FAD_TFREF_CACHE', '.cache') / f'tfref-{key}'
    if not (out / 'versions.json').exists():
        tmp = out.with_name(f'{out.name}.tmp{os.getpid()}')
        env = {**os.environ, 'PYTHONPATH': str(src), 'TF_CPP_MIN_LOG_LEVEL': '2', 'CUDA_VISIBLE_DEVICES': ''}
        r = subprocess.run([str(py), str(script), str(tmp)], capture_output=True, text=True, env=env, timeout=1200)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.fail(f"{script.name} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}", pytrace=False)
        if out.exists(): shutil.rmtree(tmp)                # another session made it meanwhile
        else: os.replace(tmp, out)
    return out


@pytest.mark.parametrize('frontend', ('kapre', 'librosa'))
@pytest.mark.parametrize('repr_', REPRS)
def test_official_openl3_04(tfref, repr_, frontend):
    "openl3 0.4.2 in TensorFlow, the same Keras-written .h5 through our loader: frames, spectrogram, embeddings"
    z = np.load(tfref / f'ref_{repr_}.npz')
    for dim in DIMS:
        m = get_embedder(f'openl3:{repr_}_music_{dim}', weights=tfref / f'openl3_audio_{repr_}_music.h5', opts={'frontend': frontend})
        assert m.options()['weights_format'] == 'keras_h5' and m.config()['checkpoint'] == f'openl3_audio_{repr_}_music.h5'
        x = windows(z['audio'], m, hop=float(z['hop']))
        assert torch.equal(x, torch.from_numpy(z['frames']))
        with torch.inference_mode():
            s, e, t = m.spectrogram(x[:, 0]), m.embed(x), m.embed(torch.from_numpy(z['tone_frames']))
        assert maxdiff(s, z[f'spec_{frontend}']) <= 2e-2      # dB; TF's float32 FFT is the larger error (linear: 9e-3)
        assert maxdiff(e, z[f'audio_emb_{frontend}_{dim}']) <= TOL, maxdiff(e, z[f'audio_emb_{frontend}_{dim}'])
        dt = maxdiff(t, z[f'tone_emb_{frontend}_{dim}'])
        if frontend == 'librosa': assert dt <= TOL, dt
        # kapre (TF float32 STFT): on a pure tone the bins 60-80 dB down are TF's rounding noise, which no other FFT
        # reproduces; measured 0.03-0.44 on embeddings of max 25 (see the notebook). Natural audio: within 1e-4 above.
        else: assert dt <= 0.6, dt


def test_h5_and_pth_routes_same_network(tfref, tmp_path):
    "The weights as Keras holds them, written as a torchopenl3 .pth.tar, and Keras's own .h5: the same network"
    z = np.load(tfref / 'ref_mel256.npz')
    kw = sorted(k for k in z.files if k.startswith('kw_'))
    layers = {}
    for k in kw:
        _, i, cls, w = k.split('_', 3)
        layers.setdefault(int(i), (cls, {}))[1][w] = torch.from_numpy(z[k])
    assert [c for _, (c, _) in sorted(layers.items())] == ['BatchNormalization', 'Conv2D'] * 8
    ref = TM.PytorchOpenl3('music', 'mel256', 512).eval()
    sd = ref.state_dict()
    sd['speclayer.mel_basis'] = O.default_mel_basis('mel256', 'kapre014')   # kapre 0.1.4's (torchopenl3 + librosa 0.10: L1)
    for j in range(8):
        bn, cv = layers[2 * j][1], layers[2 * j + 1][1]
        p, c = f'batch_normalization_{j + 1}', f'conv2d_{j + 1}' if j < 7 else 'audio_embedding_layer'
        sd.update({f'{p}.weight': bn['gamma'], f'{p}.bias': bn['beta'], f'{p}.running_mean': bn['moving_mean'],
                   f'{p}.running_var': bn['moving_variance'], f'{c}.weight': cv['kernel'].permute(3, 2, 0, 1).contiguous(),
                   f'{c}.bias': cv['bias']})
    ref.load_state_dict(sd)
    torch.save(ref.state_dict(), tmp_path / 'torchopenl3_mel256_music_512.pth.tar')
    a = get_embedder('openl3:mel256_music_512', weights=tmp_path / 'torchopenl3_mel256_music_512.pth.tar')
    b = get_embedder('openl3:mel256_music_512', weights=tfref / 'openl3_audio_mel256_music.h5')
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.cat([torch.from_numpy(z['frames']), torch.from_numpy(z['tone_frames'])])
    with torch.inference_mode():
        ea = a.embed(x)
        assert torch.equal(ea, b.embed(x))                                   # bit for bit
        assert maxdiff(ea, ref(x)) <= TOL                                    # and torchopenl3 itself on these weights


def test_keras_file_layout_and_layer_count(tfref, tmp_path):
    "What Keras 2 save_weights wrote reads as 8 x (BatchNormalization, Conv2D); a file with a layer less is refused"
    import h5py
    h5 = tfref / 'openl3_audio_mel128_music.h5'
    layers = O.read_keras_h5(h5)
    assert [sorted(w) for _, w in layers] == [['beta', 'gamma', 'moving_mean', 'moving_variance'], ['bias', 'kernel']] * 8
    assert layers[1][1]['kernel'].shape == (3, 3, 1, 64) and layers[-1][1]['kernel'].shape == (3, 3, 512, 512)
    bad = tmp_path / 'openl3_audio_mel128_music.h5'
    bad.write_bytes(h5.read_bytes())
    with h5py.File(bad, 'r+') as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs['layer_names']]
        f.attrs['layer_names'] = np.array([n.encode() for n in names if n != layers[5][0]])   # drop one Conv2D
    with pytest.raises(ValueError, match=r'openl3_audio_mel128_music\.h5: not OpenL3 audio weights: expected 8 × '
                                         r'\(BatchNormalization, Conv2D\) layers with weights, found 15'):
        get_embedder('openl3:mel128_music_512', weights=bad)


def test_framing_equals_official_openl3(tfref):
    "openl3 0.4.2's own _preprocess_audio_batch (sha256 of its frames) = the engine's windows, several lengths and hops"
    digests = json.loads((tfref / 'framing.json').read_text())
    emb = O.OpenL3()
    assert len(digests) == 88
    for key, (count, sha) in digests.items():
        n, hop, center = int(key.split('_')[0]), float(key.split('_')[1]), key.split('_')[2] == 'True'
        a = torch.from_numpy(np.random.default_rng(n).standard_normal(n).astype(np.float32))[None]
        w = audio_to_windows(a, *emb.window_samples(hop=hop), emb.pad, center, emb.short)
        assert (len(w), hashlib.sha256(w.contiguous().numpy().tobytes()).hexdigest()) == (count, sha), key
