"""fad_pytorch's MERT against the reference MERT modelling code (the MERT repository's `MERTModel` on `transformers`'
HuBERT parts, in ../shared/refenv/mert) and against fadtk's MERT loader driving that reference.

The reference models are built from the MERT repository's conversion configs (`mert_base.json`: 95M, post-LN;
`mert_large.json`: 330M, pre-LN, attention_relax 32) with seeded random weights on every parameter (LayerNorm and
GroupNorm affine terms included), written as a Hugging Face MERT repository holds them (config.json +
pytorch_model.bin with the 2023 weight-norm key names, or config.json + model.safetensors as today's
`save_pretrained` writes them), and loaded by our own reader. The reference is fed what its preprocessor
(`Wav2Vec2FeatureExtractor`, do_normalize) makes of the same audio; ours normalises itself.

Tolerance: every hidden state within TOL = 1e-4 absolute (the project's fp32 CPU budget); the states reach ~3-10,
so this is ~1e-5 relative. Measured here (the prints show a run's values): small configs <= 4e-6, the full-size 95M
<= 5e-6 (13 states, 1 s), the full-size 330M <= 2e-5 (25 states; opt-in: FAD_TEST_MERT_330M=1), fad_embed vs
fadtk's own `_get_embedding` on the same weights <= 6e-6. The differences come from the order of fp32 operations
(normalisation in torch here, numpy there; the weight norm; attention kernels).
"""
import json, os, shutil
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
from fad_pytorch.embedder import get_embedder
from fad_pytorch.models.mert import mert_from_files
from fad_pytorch.models.hfspeech import zero_mean_unit_var
from fad_pytorch.weights import WeightsError

TOL = 1e-4
SR = 24000
SMALL = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128, conv_dim=[32] * 7,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
pytestmark = pytest.mark.skipif(refs.mert_refenv() is None, reason="the MERT reference code (shared/refenv/mert, or "
                                "$FAD_REFENV/mert) is not on this machine")
torch.set_num_threads(2)


def audio(seconds, names=('music', 'chirp', 'noise'), seed=0):
    "Named test signals at 24 kHz, (len(names), samples) float32"
    s = refs.make_signals(SR, seconds, seed)
    return torch.from_numpy(np.stack([s[n] for n in names]))


def ref_states(ref, x):
    "The reference's hidden states of clips x (batch, samples), through its published preprocessor"
    inp = refs.mert_feature_extractor()([a.numpy() for a in x], sampling_rate=SR, return_tensors='pt')
    with torch.inference_mode(): return ref(**inp, output_hidden_states=True).hidden_states


def max_diffs(want, got):
    assert len(want) == len(got)
    for w, g in zip(want, got): assert w.shape == g.shape
    assert max(float(w.abs().max()) for w in want) > 1                  # not a comparison of near-zero numbers
    return [float((w - g).abs().max()) for w, g in zip(want, got)]


# ------------------------------------------------------------------ the architecture, small configs

@pytest.mark.parametrize('kind', ['mert_base', 'mert_large'])
@pytest.mark.parametrize('safetensors', [False, True])
def test_small_configs_every_layer(kind, safetensors, tmp_path):
    "Post-LN (95M's kind) and pre-LN (330M's kind) at a small width: every hidden state, both file formats"
    ref = refs.mert_ref(kind, seed=1, **SMALL)
    d = refs.save_mert_published(ref, tmp_path, safetensors)
    assert (d / ('model.safetensors' if safetensors else 'pytorch_model.bin')).is_file()
    ours = mert_from_files(d / 'config.json', d / ('model.safetensors' if safetensors else 'pytorch_model.bin'))
    assert ours.cfg.do_stable_layer_norm == (kind == 'mert_large')
    x = audio(0.7)
    with torch.inference_mode(): got = ours.hidden_states(zero_mean_unit_var(x))
    d = max_diffs(ref_states(ref, x), got)
    print(kind, 'safetensors' if safetensors else 'bin', 'max |diff| per layer', ['%.1e' % v for v in d])
    assert max(d) <= TOL


def test_published_layout_is_what_transformers_reads(tmp_path):
    "The pytorch_model.bin layout written for these tests (weight_g / weight_v) loads back into the reference unchanged"
    M, C = refs.mert_modules()
    ref = refs.mert_ref('mert_base', seed=2, **SMALL)
    d = refs.save_mert_published(ref, tmp_path)
    assert 'encoder.pos_conv_embed.conv.weight_g' in torch.load(d / 'pytorch_model.bin', weights_only=True)
    cfg = C.MERTConfig.from_pretrained(d); cfg.conv_pos_batch_norm = False
    again = M.MERTModel.from_pretrained(d, config=cfg).eval()
    x = audio(0.3)
    assert max_diffs(ref_states(ref, x), ref_states(again, x)) == [0.0] * 4


# ------------------------------------------------------------------ the full-size 95M model

@pytest.fixture(scope='module')
def full95(tmp_path_factory):
    "The full-size MERT-v1-95M reference, its files (378 MB, written once), and ours loaded from them as custom weights"
    ref = refs.mert_ref('mert_base', seed=0)
    d = refs.save_mert_published(ref, tmp_path_factory.mktemp('mert95'))
    yield ref, d, get_embedder('mert', weights=d, custom_weights=True)
    shutil.rmtree(d)


def test_full_95m_every_layer(full95):
    "All 13 hidden states of the full-size 95M on 1 s of audio; the default (layer 12, per frame) through embed"
    ref, _, ours = full95
    x = audio(1.0, ('music', 'chirp'))
    want = ref_states(ref, x)
    with torch.inference_mode(): got, default = ours.hidden_states(x[:, None]), ours(x[:, None])
    d = max_diffs(want, got)
    print('95M max |diff| per layer', ['%.1e' % v for v in d])
    assert len(d) == 13 and max(d) <= TOL
    assert default.shape == (2, 74, 768)                                 # 74 frames in 1 s
    assert (default - want[12]).abs().max() <= TOL


def test_batch_independence(full95):
    "A window's embeddings do not depend on the windows that share its forward pass: bit for bit"
    _, _, ours = full95
    x = audio(0.25, ('music', 'chirp', 'silence'))[:, None]
    with torch.inference_mode():
        whole = ours.embed(x)                                            # one forward pass of 4 windows (one of zeros)
        assert torch.equal(whole, torch.cat([ours.embed(x[:1]), ours.embed(x[1:])]))
    assert torch.isfinite(whole).all() and whole.shape == (3, 18, 768)


def fadtk_mert(ref, layer):
    "fadtk's MERT loader (MERTModel: whole file, processor, torch.stack(hidden_states).squeeze()[layer]) on the reference"
    from fadtk.model_loader import MERTModel
    ml = MERTModel(layer=layer)
    ml.model, ml.processor, ml.device = ref, refs.mert_feature_extractor(), torch.device('cpu')
    return ml


def test_fad_embed_equals_fadtk(full95, tmp_path):
    "fad_embed (a real process, default framing: whole files, per frame, layer 12) vs fadtk's _get_embedding, same weights"
    ref, wdir, _ = full95
    (tmp_path / 'a').mkdir()
    x = audio(1.5, ('music', 'chirp'), seed=3)
    lens = {'m.wav': SR, 'c.wav': int(1.5 * SR)}
    for (name, n), sig in zip(lens.items(), x): sf.write(tmp_path / 'a' / name, sig[:n].numpy(), SR, subtype='FLOAT')
    run('fad_embed', 'mert', tmp_path / 'a', '--weights', wdir, '--custom-weights', '--out', tmp_path / 'o', '--num-workers', '0')
    out = tmp_path / 'o' / 'a_emb_mert'
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert (prov['opt_layer'], prov['opt_pool'], prov['opt_max_seconds'], prov['window']) == (12, 'none', 360.0, None)
    assert (prov['custom_weights'], prov['checkpoint']) == (True, 'config.json,pytorch_model.bin')
    ml = fadtk_mert(ref, 12)
    for name, n in lens.items():
        d = torch.load(out / f'{name}.pt', weights_only=True)
        wav, _ = sf.read(tmp_path / 'a' / name, dtype='float32')
        with torch.inference_mode(): want = ml._get_embedding(wav)
        frames = (n - 400) // 320 + 1
        assert d['embeddings'].shape == want.shape == (frames, 768)
        assert torch.equal(d['times'], torch.arange(frames, dtype=torch.float64) / 75)   # 75 frames/s
        diff = float((d['embeddings'] - want).abs().max())
        print(name, 'fad_embed vs fadtk max |diff|', '%.1e' % diff)
        assert diff <= TOL


# ------------------------------------------------------------------ loader errors

def test_loader_errors(full95, tmp_path):
    "Wrong variant, truncated weights, unsupported config, one file where two are needed; the published names load too"
    _, wdir, _ = full95
    with pytest.raises(WeightsError, match="config.json of m-a-p/MERT-v1-95M, but mert:v1-330m was asked for: use mert:v1-95m"):
        get_embedder('mert:v1-330m', weights=wdir, custom_weights=True)
    bad = tmp_path / 'bad'; bad.mkdir()
    shutil.copy(wdir / 'config.json', bad / 'config.json')
    with open(wdir / 'pytorch_model.bin', 'rb') as f: (bad / 'pytorch_model.bin').write_bytes(f.read(1 << 20))
    with pytest.raises(WeightsError, match="pytorch_model.bin: cannot read checkpoint"):
        get_embedder('mert', weights=bad, custom_weights=True)
    cfg = json.loads((wdir / 'config.json').read_text())
    (bad / 'config.json').write_text(json.dumps(cfg | {'feature_extractor_cqt': True}))
    with pytest.raises(WeightsError, match="not supported: feature_extractor_cqt=True"):
        get_embedder('mert', weights=bad, custom_weights=True)
    with pytest.raises(WeightsError, match="loads 2 files"):
        get_embedder('mert', weights=wdir / 'pytorch_model.bin', custom_weights=True)
    with pytest.raises(WeightsError, match="cannot read it as config.json"):   # a file for both: the weights taken for the config
        get_embedder('mert', weights=wdir / 'pytorch_model.bin')
    m = get_embedder('mert', weights=wdir)                                    # as published: no pinned checksum to fail
    assert m.config()['checkpoint'] == 'MERT-v1-95M-config.json,MERT-v1-95M-pytorch_model.bin'


@pytest.mark.skipif(not os.environ.get('FAD_TEST_MERT_330M'), reason="the full-size 330M check builds two 1.3 GB models "
                    "and writes a 1.3 GB file (about a minute): set FAD_TEST_MERT_330M=1 to run it")
def test_full_330m_every_layer(tmp_path):
    "All 25 hidden states of the full-size 330M (pre-LN, attention_relax 32) on 1 s of audio; MAD's embedding"
    ref = refs.mert_ref('mert_large', seed=0)
    d = refs.save_mert_published(ref, tmp_path)
    ours = get_embedder('mert:v1-330m', weights=d, custom_weights=True, opts={'pool': 'max'})
    x = audio(1.0, ('music', 'chirp'))
    want = ref_states(ref, x)
    with torch.inference_mode(): got, mad = ours.hidden_states(x[:, None]), ours(x[:, None])
    diffs = max_diffs(want, got)
    print('330M max |diff| per layer', ['%.1e' % v for v in diffs])
    assert len(diffs) == 25 and max(diffs) <= TOL
    assert mad.shape == (2, 1024) and (mad - want[24].amax(1)).abs().max() <= TOL      # layer 24, max over time
