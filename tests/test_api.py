"""The Python APIs users already know, against the tools they come from.

`FrechetAudioDistance(...).score` against frechet-audio-distance 0.3.4's own `score` on the same audio files with the
same (random) VGGish weights: frechet-audio-distance is run as it is (its audio loading, resampy resampling, mono mean,
torchvggish's front end and model, numpy statistics and scipy's sqrtm); only its model download is replaced by the
seeded model. Tolerance 1e-6 relative: the embeddings agree to ~1e-5 absolute (fp32 kernels in another batch layout)
on values of ~10, and scipy's float64 sqrtm agrees with our exact trace to ~1e-13.
"""
import os, json
import numpy as np, pytest, soundfile as sf, torch
import refs
from fad_pytorch.api import FrechetAudioDistance, calculate_metrics
from fad_pytorch.metrics import MetricInputError


def write_dir(d, n, seed, sr, seconds=2.5, shape=None):
    g = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = g.standard_normal((int(seconds * sr), 2)).astype(np.float32) * 0.1
        if shape: x = np.cumsum(x, 0).astype(np.float32) * 0.05
        sf.write(d / f'{i}.wav', np.clip(x, -1, 1), sr)
    return d


@pytest.fixture(scope='module')
def vggish_dir(tmp_path_factory):
    "A ckpt_dir in frechet-audio-distance's layout (torch.hub's checkpoints/) holding seeded VGGish weights"
    d = tmp_path_factory.mktemp('ckpt')
    full = refs.randomize_(refs.vggish_vgg(), seed=5)
    (d / 'checkpoints').mkdir()
    refs.save_vggish_file(full.state_dict(), d / 'checkpoints' / 'vggish-10086976.pth')
    return d, full


def reference_fad(full_vgg, background, evaluation, sr):
    "frechet-audio-distance 0.3.4's score, with its torch.hub VGGish replaced by the seeded one"
    refs.install()
    from frechet_audio_distance import FrechetAudioDistance as Ref
    f = Ref.__new__(Ref)
    f.model_name, f.submodel_name, f.sample_rate, f.channels, f.verbose = 'vggish', None, 16000, 1, False
    f.device, f.audio_load_worker, f.enable_fusion = torch.device('cpu'), 2, False
    m = refs.vggish_default(full_vgg.state_dict())
    m.embeddings = torch.nn.Sequential(*list(m.embeddings.children())[:-1])    # use_activation=False, as its __get_model does
    m.postprocess, m.preprocess, m.device = False, True, torch.device('cpu')
    from torchvggish import vggish_input
    def forward(x, fs=None):
        ex = vggish_input.waveform_to_examples(x, fs)
        return m.embeddings(torch.flatten(m.features(ex).transpose(1, 3).transpose(1, 2).contiguous(), 1))
    m.forward = forward
    f.model = m
    return f.score(str(background), str(evaluation))


@pytest.mark.parametrize('sr', [16000, 22050])
def test_frechet_audio_distance_score_equals_the_reference(tmp_path, vggish_dir, sr):
    ckpt, full = vggish_dir
    bg, ev = write_dir(tmp_path / 'bg', 6, 0, sr), write_dir(tmp_path / 'ev', 6, 1, sr, shape=True)
    os.environ['FAD_CACHE_DIR'] = str(tmp_path / 'cache')
    ours = FrechetAudioDistance(ckpt_dir=str(ckpt), model_name='vggish', sample_rate=16000, use_pca=False, use_activation=False)
    want = reference_fad(full, bg, ev, sr)
    assert want > 0.1 and want != -1
    got = ours.score(bg, ev)
    assert abs(got - want) <= 1e-6 * want, (got, want)
    # embeddings saved and loaded as .npy, as frechet-audio-distance does
    got2 = ours.score(bg, ev, tmp_path / 'e/bg.npy', tmp_path / 'e/ev.npy')
    assert got2 == got and np.load(tmp_path / 'e/bg.npy').shape[1] == 128
    assert ours.score(bg, ev, tmp_path / 'e/bg.npy', tmp_path / 'e/ev.npy') == got


def test_frechet_audio_distance_raises_instead_of_returning_minus_one(tmp_path, vggish_dir):
    ckpt, _ = vggish_dir
    ours = FrechetAudioDistance(ckpt_dir=str(ckpt))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no audio files found'): ours.score(tmp_path / 'empty', tmp_path / 'empty')
    with pytest.raises(ValueError, match='dtype not supported'): ours.score(tmp_path, tmp_path, dtype='int8')


def test_calculate_metrics_inputs(tmp_path):
    "Tensors, embedding directories, statistics files and audio directories give the same FAD"
    os.environ['FAD_CACHE_DIR'] = str(tmp_path / 'cache')
    a, b = write_dir(tmp_path / 'a', 5, 2, 16000), write_dir(tmp_path / 'b', 5, 3, 16000, shape=True)
    r = calculate_metrics(b, a, model='logmel')
    cached = sorted((tmp_path / 'cache/embeddings').iterdir())
    assert len(cached) == 2 and all((c / 'manifest.json').exists() for c in cached)
    ea = next(c for c in cached if c.name.startswith('a_')); eb = next(c for c in cached if c.name.startswith('b_'))
    assert calculate_metrics(eb, ea)['fad'] == r['fad']
    from fad_pytorch.metrics import read_side
    xa, xb = read_side(ea).embeddings(), read_side(eb).embeddings()
    assert abs(calculate_metrics(xb, xa)['fad'] - r['fad']) <= 1e-9 * r['fad']
    with pytest.raises(MetricInputError, match='holds audio files'): calculate_metrics(b, a)
