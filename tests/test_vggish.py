"""fad_pytorch's VGGish against torchvggish, the reference frechet-audio-distance and fadtk run.

The reference VGG gets seeded random weights (the published ones cannot be downloaded here); they are written in the
published format (a flat state dict, `vggish-10086976.pth`) and loaded through our own loader, `get_embedder('vggish',
weights=FILE)`, with its checks and checksum. The reference examples come from torchvggish's numpy front end
(`waveform_to_examples`).

Tolerance: embeddings within TOL = 1e-4 absolute (the project's fp32 CPU budget; the embeddings here reach ~25 with a
standard deviation of about 5, so this is about 2e-5 relative). Our front end computes in float64 like the reference's
numpy code and the network runs the same torch ops: with the same batch as the reference the result is bit-exact here
(checked within TOL_SAME = 1e-6). Through `Embedder.embed` (forward passes of exactly 64 windows) the fp32 kernels
block the matrix products differently than for the reference's batch, which moves results by up to ~4e-5 here; the
reference itself moves as much between batch sizes (batch 1 vs 4: up to 3.8e-5).
"""
import json
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
import fad_pytorch.models.vggish as V
from fad_pytorch.audio import audio_to_windows, load_audio
from fad_pytorch.embedder import get_embedder
from fad_pytorch.weights import Checkpoint, read_checkpoint

TOL = 1e-4
TOL_SAME = 1e-6     # same computation, same batch: bit-exact on one machine
CKPT, PCA = V.VGGISH_WEIGHTS.file, V.VGGISH_PCA.file
torch.set_num_threads(2)


@pytest.fixture(scope='module')
def ref():
    "torchvggish's VGG as the FAD tools run it (no final ReLU, no PCA), seeded random weights"
    return refs.vggish_fad(seed=11)


@pytest.fixture(scope='module')
def wdir(ref, tmp_path_factory):
    "A weights directory with the reference weights as vggish-10086976.pth (288 MB, written once) and a PCA file"
    d = tmp_path_factory.mktemp('vggish_weights')
    refs.save_vggish_file(ref.state_dict(), d / CKPT)
    refs.save_pca_file(d / PCA, seed=3)
    yield d
    for p in d.iterdir(): p.unlink()


@pytest.fixture(scope='module')
def pca(wdir):
    "The PCA params written to the weights directory (numpy arrays)"
    return read_checkpoint(wdir / PCA, numpy_ok=True)


@pytest.fixture(scope='module')
def ours(wdir):
    return get_embedder('vggish', weights=wdir / CKPT)


def ref_examples(x, sr=16000):
    "The reference preprocessing: torchvggish's waveform_to_examples -> (n, 1, 96, 64) float32"
    from torchvggish import vggish_input
    return vggish_input.waveform_to_examples(x, sr).detach()


def ref_log_mel(x):
    "The reference log-mel (float64, before the cast and the cut into examples)"
    from torchvggish import mel_features
    return mel_features.log_mel_spectrogram(x, audio_sample_rate=16000, log_offset=0.01, window_length_secs=0.025,
                                            hop_length_secs=0.010, num_mel_bins=64, lower_edge_hertz=125, upper_edge_hertz=7500)


def windows(x):
    "The engine's windows of a mono 16 kHz signal, with VGGish's default framing"
    return audio_to_windows(torch.from_numpy(x)[None], V.WINDOW_SAMPLES, V.HOP_SAMPLES, 'drop')


# ------------------------------------------------------------------ front end

def test_mel_matrix_and_window_are_the_reference_ones():
    from torchvggish import mel_features
    assert np.array_equal(V.vggish_mel_matrix(), mel_features.spectrogram_to_mel_matrix(64, 257, 16000, 125, 7500))
    assert np.array_equal(V.periodic_hann(400), mel_features.periodic_hann(400))


@pytest.mark.parametrize('seconds', [0.975, 2.0, 3.3])
def test_log_mel_equals_reference(seconds):
    "Float64 front end vs the reference's float64 log-mel: within 1e-6 relative (float64 FFT libraries differ in the last bits)"
    for name, x in refs.make_signals(16000, seconds).items():
        r = ref_log_mel(x)
        o = V.VGGishLogMel()(torch.from_numpy(x)[None])[0].numpy()
        assert o.shape == r.shape, name
        assert np.abs(o - r).max() <= 1e-6 * max(1.0, np.abs(r).max()), name


@pytest.mark.parametrize('n', [15599, 15600, 15600 + 15359, 15600 + 15360, 15600 + 15361, 3 * 15360 + 15599, 52345])
def test_windows_give_exactly_the_reference_examples(n):
    "1 + (n - 15600) // 15360 windows of 15600 samples give the reference's examples bit for bit; shorter files: one zero-padded window"
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.3
    w = windows(x)
    ex = ref_examples(np.pad(x, (0, max(0, V.WINDOW_SAMPLES - n))))
    assert w.shape == (len(ex), 1, V.WINDOW_SAMPLES) and len(ex) == 1 + max(0, n - V.WINDOW_SAMPLES) // V.HOP_SAMPLES
    assert torch.equal(V.VGGishLogMel()(w[:, 0])[:, None], ex)


def test_float32_front_end_is_not_enough():
    "Why float64 is the default: a float32 front end is ~1e-4 off on a pure tone (documented, not a fidelity test)"
    x = refs.make_signals(16000, 2.0)['chirp']
    ex, w = ref_examples(x)[:, 0], windows(x)[:, 0]
    assert (V.VGGishLogMel(torch.float64)(w) - ex).abs().max() == 0
    assert (V.VGGishLogMel(torch.float32)(w) - ex).abs().max() > 1e-5


# ------------------------------------------------------------------ embeddings

LENGTHS = [0.5, 0.975, 1.0, 2.5, 4.0]     # 0.5 s: shorter than a window (zero-padded, as fadtk); 0.975 s: exactly one


def test_embeddings_equal_reference(ref, ours):
    "All signals x all lengths in one batch through Embedder.embed, vs the reference on each signal's examples"
    cases, wins, exs = [], [], []
    for seconds in LENGTHS:
        for name, x in refs.make_signals(16000, seconds, seed=int(seconds * 10)).items():
            w = windows(x)
            cases.append((f'{name} {seconds} s', len(w)))
            wins.append(w); exs.append(ref_examples(np.pad(x, (0, max(0, V.WINDOW_SAMPLES - len(x))))))
    with torch.inference_mode():
        got, want = ours.embed(torch.cat(wins)), ref(torch.cat(exs))
        same_batch = ours(torch.cat(wins))                 # the reference's batch size (54), not a micro-batch of 64
    assert got.shape == want.shape == same_batch.shape == (sum(k for _, k in cases), 128)
    assert (same_batch - want).abs().max() <= TOL_SAME
    i, worst = 0, {}
    for case, k in cases:
        worst[case] = (got[i:i + k] - want[i:i + k]).abs().max().item(); i += k
    assert max(worst.values()) <= TOL, worst
    assert want.std() > 1                               # the comparison is not between near-zero numbers


def test_44k_stereo_file_with_resampy_equals_reference(ref, ours, tmp_path):
    "A 44.1 kHz stereo file: load_audio(mono, resampy_kaiser_best) + our model == waveform_to_examples(44.1 kHz) + VGG"
    s = refs.make_signals(44100, 3.1, seed=5)
    p = tmp_path / 'stereo.flac'
    sf.write(p, np.stack([s['music'], s['chirp']], 1) * 0.7, 44100, subtype='PCM_24')
    data, sr = sf.read(p, dtype='float32')
    wav, _ = load_audio(p, 16000, 'mono', 'resampy_kaiser_best')
    with torch.inference_mode():
        got = ours.embed(audio_to_windows(wav, V.WINDOW_SAMPLES, V.HOP_SAMPLES, 'drop'))
        want = ref(ref_examples(data, sr))
    assert got.shape == want.shape == (3, 128)
    assert (got - want).abs().max() <= TOL


def test_relu_and_pca_equal_torchvggish_default(ref, wdir, pca):
    "relu=True, pca=True (loaded from a weights dir) == torchvggish's default output (final ReLU + its Postprocessor)"
    ours = get_embedder('vggish', weights=wdir, opts={'relu': True, 'pca': True})
    assert ours.options() == {'relu': True, 'pca': True, 'rounding': 'round', 'frontend_dtype': 'float64'}
    assert ours.config()['checkpoint'] == f'{CKPT},{PCA}'
    full, relu_only = refs.vggish_default(ref.state_dict(), pca), refs.vggish_default(ref.state_dict())
    x = refs.make_signals(16000, 4.0)['music']
    w, ex = windows(x), ref_examples(x)
    with torch.inference_mode():
        got, want, pre = ours.embed(w), full(ex), ref(ex)
        assert (torch.relu(pre) - relu_only(ex)).abs().max() <= TOL     # relu=True: torchvggish's VGG output
    # the 8-bit rounding may go the other way for a value within float error of a .5 tie
    raw = (torch.mm(ours.pca_eigen_vectors, pre.relu().t() - ours.pca_means[:, None]).t().clamp(-2, 2) + 2) * 63.75
    tie = ((raw - raw.floor()) - 0.5).abs() < 1e-3
    assert got.shape == want.shape == (4, 128)
    assert torch.equal(got[~tie], want[~tie]) and ((got - want).abs() <= 1)[tie].all()
    assert torch.equal(got, got.round()) and got.min() >= 0 and got.max() <= 255 and got.std() > 10


def test_floor_rounding_is_googles_postprocess(ref, pca):
    "rounding='floor' == Google's vggish_postprocess.py (numpy, uint8 truncation) up to float error at integer boundaries"
    x = refs.make_signals(16000, 3.0)['noise']
    with torch.inference_mode(): pre = ref(ref_examples(x))
    e, m = torch.as_tensor(pca['pca_eigen_vectors']).float(), torch.as_tensor(pca['pca_means']).float()
    ours = V.pca_quantize(pre, e, m, 'floor')
    g = np.dot(pca['pca_eigen_vectors'], pre.numpy().T - pca['pca_means'].reshape(-1, 1)).T    # Google's code, float64
    g = ((np.clip(g, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)
    d = np.abs(ours.numpy() - g)
    assert d.max() <= 1 and (d > 0).mean() < 0.01


def test_batch_independence_is_bitwise(ours):
    "A window's embedding is the same bit for bit alone or among 65 others (fixed micro-batches of 64, zero-padded)"
    x = np.concatenate([refs.make_signals(16000, 16.0, seed=s)['music'] for s in range(4)])
    w = windows(x)
    assert len(w) == 66
    with torch.inference_mode():
        many = ours.embed(w)                                   # two forward passes: windows 0-63, then 64, 65 + zeros
        for i in (37, 65):                                     # alone: at position 0 of a pass of zeros
            assert torch.equal(ours.embed(w[i:i + 1]), many[i:i + 1]), i


# ------------------------------------------------------------------ loading

def test_wrong_checksum(wdir, monkeypatch):
    "A published sha256 that does not match is an error naming the file, before anything is loaded"
    monkeypatch.setattr(V, 'VGGISH_WEIGHTS', Checkpoint(CKPT, V.VGGISH_WEIGHTS.url, sha256='0' * 64))
    with pytest.raises(ValueError, match=rf'{CKPT}: checksum mismatch \(sha256 [0-9a-f]{{64}}, expected 0000'):
        get_embedder('vggish', weights=wdir)


def test_truncated_file(wdir, tmp_path):
    p = tmp_path / CKPT
    with open(wdir / CKPT, 'rb') as f: p.write_bytes(f.read(1 << 20))
    with pytest.raises(ValueError, match=f'{p}: cannot read checkpoint'):
        get_embedder('vggish', weights=p)


def test_wrong_architecture(ref, tmp_path):
    sd = ref.state_dict()
    torch.save({k: torch.zeros(1) for k in sd}, tmp_path / 'shapes.pth')          # right keys, wrong shapes
    with pytest.raises(ValueError, match=r"shapes.pth: checkpoint does not fit VGGish \(shape mismatch: features.0.weight: checkpoint \(1,\) vs model \(64, 1, 3, 3\)"):
        get_embedder('vggish', weights=tmp_path / 'shapes.pth')
    torch.save({k: torch.zeros(1) for k in list(sd)[:-1]}, tmp_path / 'missing.pth')
    with pytest.raises(ValueError, match=r"missing.pth: checkpoint does not fit VGGish \(missing keys: embeddings.4.bias"):
        get_embedder('vggish', weights=tmp_path / 'missing.pth')
    refs.save_pann_file({'conv_block1.conv1.weight': torch.zeros(64, 1, 3, 3)}, tmp_path / 'pann.pth')   # PANN layout
    with pytest.raises(ValueError, match="pann.pth: not a torchvggish VGGish state dict: .*like a PANN checkpoint"):
        get_embedder('vggish', weights=tmp_path / 'pann.pth')


def test_legacy_torch_format_pca(tmp_path):
    "The 2019 files may predate torch's zip format: the legacy format with numpy arrays reads too"
    d = refs.save_pca_file(tmp_path / PCA, seed=1, zipfile=False)
    e, m = V.read_pca(tmp_path / PCA)
    assert torch.equal(e, torch.as_tensor(d['pca_eigen_vectors']).float()) and torch.equal(m, torch.as_tensor(d['pca_means']).float())


def test_missing_file_offline(offline, tmp_path, wdir):
    with pytest.raises(FileNotFoundError, match=f'weights {CKPT} not found .* fetch {V.VGGISH_WEIGHTS.url}'):
        get_embedder('vggish')
    (tmp_path / 'only_vgg').mkdir(); (tmp_path / 'only_vgg' / CKPT).symlink_to(wdir / CKPT)
    with pytest.raises(FileNotFoundError, match=f'weights {PCA} not found'):          # pca=True needs the second file
        get_embedder('vggish', weights=tmp_path / 'only_vgg', opts={'pca': True})


# ------------------------------------------------------------------ end to end

def test_fad_embed_cli_equals_reference(ref, wdir, tmp_path):
    "fad_embed vggish DIR --weights FILE, a real program: its .pt embeddings == the reference on the same audio"
    src = tmp_path / 'audio'
    (src / 'sub').mkdir(parents=True)
    files = {'a.wav': ('music', 0.6), 'b.wav': ('chirp', 2.5), 'sub/c.wav': ('noise', 4.0)}
    for rel, (kind, seconds) in files.items():
        sf.write(src / rel, refs.make_signals(16000, seconds, seed=len(rel))[kind], 16000, subtype='PCM_16')
    r = run('fad_embed', 'vggish', src, '--weights', wdir / CKPT, '--out', tmp_path / 'out')
    out = tmp_path / 'out' / 'audio_emb_vggish'
    assert r.stdout.strip().endswith('audio_emb_vggish')
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert (prov['model'], prov['checkpoint'], prov['opt_relu'], prov['opt_pca'], prov['window'], prov['hop'], prov['pad'], prov['short']) == \
           ('vggish', CKPT, False, False, 0.975, 0.96, 'drop', 'zero')
    for rel in files:
        x, sr = sf.read(src / rel, dtype='float32')
        with torch.inference_mode(): want = ref(ref_examples(np.pad(x, (0, max(0, V.WINDOW_SAMPLES - len(x))))))
        d = torch.load(out / f'{rel}.pt', weights_only=True)
        assert d['embeddings'].shape == want.shape, rel
        assert (d['embeddings'] - want).abs().max() <= TOL, rel
        assert torch.equal(d['times'], torch.arange(len(want), dtype=torch.float64) * 0.96)
