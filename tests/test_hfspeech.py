"""fad_pytorch's Hugging Face speech encoders (wav2vec2, hubert, wavlm, whisper) against transformers' own pipeline:
the feature extractor and model class loaded with `from_pretrained` from the same repository directory, which is what
fadtk and kadtk run (`processor(audio)`, `model(**inputs, output_hidden_states=True).hidden_states[layer]`).

The reference networks are small (2 or 3 transformer layers, narrow convolutions) but of each architecture the
published checkpoints use: group-norm post-LN (wav2vec2/hubert/wavlm base), layer-norm "stable" pre-LN (the large
models), Whisper with 80 and 128 mel bands; their width is the variant's (768, 1024, 384, 1280), as our loader requires.
They get seeded random weights, are saved as the published repositories are laid out (config.json; a CTC fine-tune,
bare model or encoder-decoder; 2021 weight-norm names in pytorch_model.bin, or model.safetensors;
preprocessor_config.json), and are loaded by ours as a fine-tune is (`custom_weights=True`).

Tolerance: TOL = 1e-4 absolute, the project's fp32 CPU budget for models. Both sides run the same transformers
modules; the differences come from our float32 torch front ends (normalisation; Whisper's log-mel with the
filterbank computed here) against the extractors' numpy/torch ones, and from batch shapes, and are ~1e-6 here.
"""
import dataclasses, json, shutil, subprocess, sys
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
import fad_pytorch.models.hfspeech as H
from fad_pytorch.embedder import get_embedder

TOL = 1e-4
SR = 16000
torch.set_num_threads(2)

# name: (spec, small architecture, how it is saved)
CASES = {
    'wav2vec2-base': ('wav2vec2:base', H.tiny_arch('wav2vec2', 768, 3), dict(preprocessor={'do_normalize': True})),
    'hubert-large': ('hubert:large', H.tiny_arch('hubert', 1024, 2, stable=True),
                     dict(preprocessor={'do_normalize': True, 'return_attention_mask': True})),
    'wavlm-base': ('wavlm:base-plus', H.tiny_arch('wavlm', 768, 3), dict(preprocessor={'do_normalize': False, 'return_attention_mask': True},
                                                                         old_weight_norm=False)),
    'wavlm-large': ('wavlm:large', H.tiny_arch('wavlm', 1024, 2, stable=True), dict(preprocessor={'do_normalize': True})),
    'whisper-tiny': ('whisper:tiny', H.tiny_arch('whisper', 384, 3), {}),
    'whisper-large-v3': ('whisper:large-v3', H.tiny_arch('whisper', 1280, 2, mels=128), dict(safetensors=True)),
}


@pytest.fixture(scope='module')
def repos(tmp_path_factory):
    "Each case's repository directory, written once"
    out = {}
    for i, (name, (spec, arch, save)) in enumerate(CASES.items()):
        out[name] = refs.save_hf_speech_dir(refs.hf_speech_ref(arch, seed=i), tmp_path_factory.mktemp(name), **save)
    return out


def load(name, repos, **opts):
    "Ours, from the case's repository directory, as a fine-tune is loaded"
    return get_embedder(CASES[name][0], weights=repos[name], custom_weights=True, opts=opts or None)


def audio(seconds, seed=0, kind='music'):
    return refs.make_signals(SR, seconds, seed)[kind]


def ours_at(emb, x, layer):
    "Our frames of one clip at one layer (the option set directly, to keep one loaded model per case), one window per pass"
    emb.layer_opt = layer
    with torch.inference_mode(): return emb.embed(torch.from_numpy(x)[None, None], micro_batch=1)[0]


# ------------------------------------------------------------------ fidelity: every layer

@pytest.mark.parametrize('name', list(CASES))
def test_every_layer_equals_transformers(name, repos):
    spec, arch, _ = CASES[name]
    ref = refs.hf_speech_pipeline(repos[name])
    ours = load(name, repos, layer=1)
    assert ours.options()['layer'] == 1 and ours.custom_weights
    assert list(ours.net.named_buffers()) == []                  # every tensor is a parameter: a strict load sets all
    n_layers = H.arch_layers(arch)
    clips = ((1.37, 'music'), (0.9, 'chirp')) if 'whisper' not in name else ((1.37, 'music'),)   # Whisper: 30 s per pass
    for seconds, kind in clips:
        x = audio(seconds, seed=int(seconds * 100), kind=kind)
        want = ref(x)
        assert len(want) == n_layers + 1
        frames = (len(x) - 400) // 320 + 1 if 'whisper' not in name else -(-len(x) // 320)
        for layer in range(n_layers + 1):
            got, w = ours_at(ours, x, layer), want[layer][:frames]
            assert got.shape == w.shape == (frames, ours.dim), (layer, got.shape, w.shape)
            assert w.abs().max() > 0.3                                    # not a comparison of near-zero numbers
            assert (got - w).abs().max() <= TOL, (name, seconds, layer, float((got - w).abs().max()))
    if 'whisper' not in name:
        assert ours.normalizes == ref.feature_extractor.do_normalize       # the repository's preprocessor_config.json


def test_normalize_option_overrides_the_repository(repos):
    "wavlm-base's preprocessor says do_normalize=false; normalize=true gives the extractor's normalised pipeline"
    ours = load('wavlm-base', repos, normalize=True)
    assert ours.options() == {'layer': 3, 'max_seconds': 360.0, 'normalize': True}
    x = audio(1.1, seed=5) * 0.2 + 0.05
    ref = refs.hf_speech_pipeline(repos['wavlm-base'])
    ref.feature_extractor.do_normalize = True
    assert (ours_at(ours, x, 3) - ref(x)[3]).abs().max() <= TOL
    ref.feature_extractor.do_normalize = False
    assert (ours_at(ours, x, 3) - ref(x)[3]).abs().max() > 1e-2          # the option does change the numbers


def test_max_seconds_keeps_the_first_seconds_like_fadtk(repos):
    "fadtk cuts each file to limit_minutes before the processor: max_seconds=1 equals the pipeline on the first second"
    ours = load('wav2vec2-base', repos, max_seconds=1.0)
    x = audio(2.5, seed=6)
    want = refs.hf_speech_pipeline(repos['wav2vec2-base'])(x[:SR])[3]
    got = ours_at(ours, x, 3)
    assert got.shape == want.shape == (49, 768) and (got - want).abs().max() <= TOL


def test_whisper_log_mel_equals_feature_extractor():
    from transformers import WhisperFeatureExtractor
    for n_mels, seconds in ((80, 0.5), (80, 30.0), (128, 7.3)):
        fe = WhisperFeatureExtractor(feature_size=n_mels)
        x = audio(seconds, seed=n_mels)
        want = torch.from_numpy(fe(x, sampling_rate=SR, return_tensors='np').input_features)
        padded = torch.nn.functional.pad(torch.from_numpy(x), (0, H.WHISPER_CHUNK - len(x)))[None]
        got = H.whisper_log_mel(padded, H.whisper_mel_filters(n_mels))
        assert got.shape == want.shape == (1, n_mels, 3000)
        assert (got - want).abs().max() <= 1e-5, (n_mels, seconds)


def test_whisper_long_file_is_encoded_in_30s_segments(repos):
    "A 31.5 s file: frames 0-1499 are the first 30 s through the pipeline, frames 1500-1574 the last 1.5 s (padded to 30 s)"
    ours = load('whisper-tiny', repos)
    ref = refs.hf_speech_pipeline(repos['whisper-tiny'])
    x = audio(31.5, seed=7)
    got = ours_at(ours, x, 3)
    assert got.shape == (1575, 384)
    assert (got[:1500] - ref(x[:H.WHISPER_CHUNK])[3]).abs().max() <= TOL
    assert (got[1500:] - ref(x[H.WHISPER_CHUNK:])[3][:75]).abs().max() <= TOL


# ------------------------------------------------------------------ batches

@pytest.mark.parametrize('name,micro', [('wav2vec2-base', 4), ('whisper-tiny', 2)])
def test_batch_independence_is_bitwise(name, micro, repos):
    "A window's frames are the same bit for bit alone or among 4 others (fixed micro-batches, zero-padded)"
    ours = load(name, repos)
    ours.micro_batch = micro                          # Whisper: 2 windows per pass (each is a 30 s segment) keeps the test short
    x = torch.from_numpy(np.stack([audio(0.8, seed=s, kind=k) for s, k in enumerate(('music', 'noise', 'chirp', 'sines', 'silence'))]))[:, None]
    with torch.inference_mode():
        many = ours.embed(x)
        for i in (0, 4):
            assert torch.equal(ours.embed(x[i:i + 1]), many[i:i + 1]), i


# ------------------------------------------------------------------ files and errors

def test_published_names_through_the_weights_search(repos, tmp_path, monkeypatch):
    """Not custom: files under their cache names in $FAD_WEIGHTS_DIR are found and verified against the variant's sha256
    (here patched to our random file's), and the provenance names the published files"""
    src = repos['wav2vec2-base']
    spec = H.SPEECH_VARIANTS['wav2vec2']['base']
    ck = spec.repo.checkpoints()
    for c, f in zip(ck, ('config.json', 'pytorch_model.bin', 'preprocessor_config.json')): shutil.copy(src / f, tmp_path / c.file)
    from fad_pytorch.io import file_sha256
    repo = dataclasses.replace(spec.repo, sha256=file_sha256(tmp_path / ck[1].file))
    monkeypatch.setitem(H.SPEECH_VARIANTS['wav2vec2'], 'base', dataclasses.replace(spec, repo=repo))
    monkeypatch.setenv('FAD_WEIGHTS_DIR', str(tmp_path)); monkeypatch.setenv('FAD_OFFLINE', '1')
    ours = get_embedder('wav2vec2')
    cfg = ours.config()
    assert cfg['checkpoint'] == ','.join(c.file for c in ck) and 'custom_weights' not in cfg
    assert cfg['opt_layer'] == 3 and cfg['opt_normalize'] is True
    ref = refs.hf_speech_pipeline(src)
    x = audio(0.7)
    assert (ours_at(ours, x, 3) - ref(x)[3]).abs().max() <= TOL


def test_random_weights_are_not_the_published_file(repos):
    "Without --custom-weights, the pinned sha256 refuses our random file, and says what to do"
    with pytest.raises(ValueError, match=r'pytorch_model.bin: checksum mismatch .*--custom-weights'):
        get_embedder('wav2vec2:base', weights=repos['wav2vec2-base'])


def test_loader_errors(repos, tmp_path):
    d = tmp_path / 'repo'
    shutil.copytree(repos['wav2vec2-base'], d)
    with pytest.raises(ValueError, match=r"config.json is for model_type 'wav2vec2', but hubert:base needs a 'hubert' model"):
        get_embedder('hubert:base', weights=d, custom_weights=True)
    with pytest.raises(ValueError, match=r'this wav2vec2 model is 768-dimensional, but wav2vec2:large is 1024-dimensional'):
        get_embedder('wav2vec2:large', weights=d, custom_weights=True)
    with pytest.raises(ValueError, match=r'wav2vec2:base: layer 7 does not exist; this model has 3 layers'):
        get_embedder('wav2vec2:base', weights=d, custom_weights=True, opts={'layer': 7})
    with pytest.raises(ValueError, match="option layer must be int|none, got 'x'"):
        get_embedder('wav2vec2:base', weights=d, custom_weights=True, opts={'layer': 'x'})
    cfg = json.loads((d / 'config.json').read_text())
    (d / 'config.json').write_text(json.dumps({**cfg, 'num_hidden_layers': 2}))
    with pytest.raises(ValueError, match=r'pytorch_model.bin: checkpoint does not fit the model of its config.json \(unexpected wav2vec2.encoder.layers.2'):
        get_embedder('wav2vec2:base', weights=d, custom_weights=True)
    (d / 'config.json').write_text(json.dumps(cfg))
    blob = (d / 'pytorch_model.bin').read_bytes()
    (d / 'pytorch_model.bin').write_bytes(blob[:len(blob) // 3])
    with pytest.raises(ValueError, match=r'pytorch_model.bin: cannot read checkpoint'):
        get_embedder('wav2vec2:base', weights=d, custom_weights=True)
    (d / 'pytorch_model.bin').unlink()
    shutil.copy(repos['wavlm-large'] / 'pytorch_model.bin', d)
    with pytest.raises(ValueError, match=r"pytorch_model.bin: none of the model's \d+ tensors is in this file"):
        get_embedder('wav2vec2:base', weights=d, custom_weights=True)
    (d / 'pytorch_model.bin').unlink()
    with pytest.raises(ValueError, match=r'with --custom-weights give the file itself, or a directory holding wav2vec2-base-960h-pytorch_model.bin'):
        get_embedder('wav2vec2:base', weights=d, custom_weights=True)


def test_too_short_input(repos):
    ours = load('wav2vec2-base', repos)
    with pytest.raises(ValueError, match=r'wav2vec2 needs at least 400 samples \(25 ms\) at 16000 Hz for one frame, got 399'):
        ours.embed(torch.zeros(1, 1, 399))


# ------------------------------------------------------------------ the optional extra

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'transformers' or name.startswith('transformers.'): raise ImportError(f"No module named {name!r} (hidden)")
sys.meta_path.insert(0, Block())
"""

def test_missing_extra(tmp_path):
    """Without transformers: the module imports, `fad_embed list` shows the models, asking for one raises the error that
    names the extra, and `fad_embed whisper DIR` exits with code 2 and that message, without a traceback"""
    (tmp_path / 'a').mkdir()
    sf.write(tmp_path / 'a' / 'x.wav', audio(0.5), SR)
    code = BLOCK + f"""
import fad_pytorch.models.hfspeech as H
from fad_pytorch.embedder import get_embedder
from fad_pytorch.fad_embed import list_models, main
assert 'transformers' not in sys.modules
assert H.Whisper.info('large-v3').dim == 1280
assert 'wavlm:base-plus  16000 Hz, dim 768, 50 frames/s' in list_models()
try: get_embedder('hubert:large')
except H.MissingExtra as e: print('MSG', e)
sys.argv = ['fad_embed', 'whisper', {str(tmp_path / 'a')!r}]
main()
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert "MSG hubert:large needs the optional Hugging Face extra (transformers), which is not installed: pip install 'fad_pytorch[hf]'" in r.stdout, r.stderr[-3000:]
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert "fad_embed: error: whisper:tiny needs the optional Hugging Face extra (transformers), which is not installed: pip install 'fad_pytorch[hf]'" in r.stderr


# ------------------------------------------------------------------ end to end

def write_clips(src):
    "Two short files: 0.5 s and 1.3 s"
    files = {'a.wav': ('music', 0.5), 'b/c.flac': ('chirp', 1.3)}
    for rel, (kind, seconds) in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(src / rel, audio(seconds, seed=len(rel), kind=kind), SR, subtype='PCM_16')
    return files


def check_outputs(out, src, files, repo, layer, whisper):
    "Each file's .pt: one row per 20 ms frame at times k/50, == the reference pipeline on the whole file"
    ref = refs.hf_speech_pipeline(repo)
    for rel in files:
        x = sf.read(src / rel, dtype='float32')[0]
        frames = -(-len(x) // 320) if whisper else (len(x) - 400) // 320 + 1
        want = ref(x)[layer][:frames]
        d = torch.load(out / f'{rel}.pt', weights_only=True)
        assert d['embeddings'].shape == want.shape, rel
        assert (d['embeddings'] - want).abs().max() <= TOL, rel
        assert torch.allclose(d['times'], torch.arange(frames, dtype=torch.float64) / 50)


def test_fad_embed_cli_equals_reference(repos, tmp_path):
    "fad_embed wav2vec2 DIR --weights REPO --custom-weights --opts layer=1, a real program"
    src = tmp_path / 'audio'
    files = write_clips(src)
    run('fad_embed', 'wav2vec2', src, '--weights', repos['wav2vec2-base'], '--custom-weights', '--opts', 'layer=1', '--out', tmp_path / 'out')
    out = tmp_path / 'out' / 'audio_emb_wav2vec2'
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert (prov['model'], prov['variant'], prov['opt_layer'], prov['opt_normalize'], prov['opt_max_seconds'], prov['custom_weights']) == \
           ('wav2vec2', 'base', 1, True, 360.0, True)
    assert prov['checkpoint'] == 'config.json,pytorch_model.bin,preprocessor_config.json'
    check_outputs(out, src, files, repos['wav2vec2-base'], 1, whisper=False)


def test_embed_dir_whisper_equals_reference(repos, tmp_path):
    "The engine with Whisper's default framing (whole files): frames over the padding dropped, == the reference"
    from fad_pytorch.fad_embed import embed_dir, settings_for, Choices, RunSettings
    src = tmp_path / 'audio'
    files = write_clips(src)
    ours = load('whisper-tiny', repos, layer=2)
    embed_dir(ours, src, tmp_path / 'out', *settings_for(ours, Choices()), RunSettings(num_workers=0, progress=False))
    check_outputs(tmp_path / 'out', src, files, repos['whisper-tiny'], 2, whisper=True)
