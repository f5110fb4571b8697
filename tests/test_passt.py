"""fad_pytorch's PaSST against hear21passt 0.0.26 (the implementation stable-audio-metrics, kadtk and audiocraft run).

Seeded random weights for every tensor of the network are written as the release files are (the network's state
dict, `torch.save`d) and loaded by both sides through their own loaders: ours with `get_embedder('passt:<variant>',
weights=FILE, custom_weights=True)` (random weights are not the published file, whose size and sha256 are pinned),
hear21passt's `get_basic_model(mode='all')` through timm's download cache (`refs.passt_ref`). The reference gives
logits ‖ embedding (`mode='all'`), split here.

Tolerances: embeddings and logits within TOL = 1e-4 absolute (the project's fp32 CPU budget; the values here reach
~3 to ~10, so this is a few 1e-5 relative). Our attention is `scaled_dot_product_attention`, which rounds differently
from the reference's explicit softmax(q kᵀ) v: measured ~2e-6 at the output. The front end (pre-emphasis, STFT,
kaldi mel banks, log) uses the same float32 operations as the reference: equal bit for bit here (checked within
TOL_FRONT = 1e-6).

PaSST is ~10 s of CPU per 10 s window on 2 threads: the comparisons use short windows (PaSST takes any length from
0.15 s, using the first time positions), one real 10 s window (the default framing, kadtk's vector), and the full
20 s / 30 s windows of the longer variants with both models cut to their first block (front end, patches and every
time position are still compared; the blocks are compared at full depth on the short windows).
"""
import contextlib, io, json, math
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
import fad_pytorch.models.passt as P
from fad_pytorch.audio import audio_to_windows
from fad_pytorch.embedder import get_embedder
from fad_pytorch.fad_embed import embed_dir, settings_for, Choices, RunSettings

TOL, TOL_FRONT = 1e-4, 1e-6
SR = 32000
FILE = {v: s.checkpoint.file for v, s in P.PASST_VARIANTS.items()}
torch.set_num_threads(2)


def make_file(variant, folder, seed):
    "Seeded random weights of a variant's shapes, written as its release file"
    with torch.device('meta'): shapes = {k: v.shape for k, v in P.PasstNet(P.PASST_VARIANTS[variant].time_positions).state_dict().items()}
    return refs.save_passt_file(refs.passt_random_state_dict(shapes, seed), folder / FILE[variant])


@pytest.fixture(scope='module')
def ckpt10(tmp_path_factory):
    "Random base-10s weights as passt-s-f128-p16-s10-ap.476-swa.pt (345 MB, written once per module)"
    p = make_file('base-10s', tmp_path_factory.mktemp('passt10'), seed=1)
    yield p
    p.unlink()


@pytest.fixture(scope='module')
def ref10(ckpt10):
    return refs.passt_ref('base-10s', ckpt10)


@pytest.fixture(scope='module')
def ours10(ckpt10):
    return get_embedder('passt', weights=ckpt10, custom_weights=True)


def signals(seconds, seed=0):
    "Named test signals of one length: names and a (6, samples) tensor"
    s = refs.make_signals(SR, seconds, seed)
    return list(s), torch.from_numpy(np.stack(list(s.values())))


def reference(ref, x):
    "hear21passt's forward (mode='all'): logits, embedding"
    y = ref(x)
    return y[:, :527], y[:, 527:]


# ------------------------------------------------------------------ front end

@pytest.mark.parametrize('cfg', [(128, 1024, 32000, 0.0, 15000.0), (64, 512, 16000, 20.0, 7600.0), (80, 400 * 2, 22050, 50.0, 0.0)])
def test_mel_banks_equal_torchaudio_kaldi(cfg):
    "kaldi_mel_banks == torchaudio.compliance.kaldi.get_mel_banks (+ the Nyquist column hear21passt pads), bit for bit"
    from torchaudio.compliance.kaldi import get_mel_banks
    n_mels, n_fft, sr, lo, hi = cfg
    want, _ = get_mel_banks(n_mels, n_fft, sr, lo, hi if hi > 0 else sr / 2, vtln_low=100.0, vtln_high=-500.0, vtln_warp_factor=1.0)
    got = P.kaldi_mel_banks(n_mels, n_fft, sr, lo, hi if hi > 0 else sr / 2)
    assert got.shape == (n_mels, n_fft // 2 + 1) and want.shape == (n_mels, n_fft // 2)
    assert torch.equal(got[:, :-1], want) and (got[:, -1] == 0).all()


@pytest.mark.parametrize('seconds', [0.15, 1.7, 10.0])
def test_front_end_equals_hear21passt(ref10, ours10, seconds):
    "Our torch-only log-mel vs hear21passt's AugmentMelSTFT (torchaudio's kaldi mel banks) in evaluation mode"
    names, x = signals(seconds, seed=int(seconds * 10))
    with torch.inference_mode(): want, got = ref10.mel(x), ours10.mel(x)
    assert got.shape == want.shape == (6, 128, P.mel_frames(x.shape[1]))
    d = (got - want).abs().amax((1, 2))
    assert (d <= TOL_FRONT).all(), dict(zip(names, d.tolist()))


# ------------------------------------------------------------------ the network

def test_base10s_equals_hear21passt(ref10, ours10):
    "Embeddings and logits of six 1 s clips and six 0.3 s clips, through Embedder.embed (passes of 4 windows)"
    for seconds in (1.0, 0.3):
        names, x = signals(seconds, seed=3)
        with torch.inference_mode():
            want_l, want_e = reference(ref10, x)
            got_e, got_l = ours10.embed(x[:, None], logits=True)
        assert got_e.shape == want_e.shape == (6, 768) and got_l.shape == want_l.shape == (6, 527)
        assert want_e.abs().max() > 1 and want_l.abs().max() > 1               # not a comparison of near-zero numbers
        de, dl = (got_e - want_e).abs().amax(1), (got_l - want_l).abs().amax(1)
        assert (de <= TOL).all() and (dl <= TOL).all(), (seconds, dict(zip(names, zip(de.tolist(), dl.tolist()))))
    assert type(ours10) is P.PaSST and ours10.variant == 'base-10s' and ours10.class_names()[137] == 'Music'


def test_default_framing_gives_kadtk_vectors(ref10, ckpt10, tmp_path):
    """fad_embed's default framing with --opts output=both on a 7 s file: one 10 s window, zero-padded, whose 1295-d
    vector is kadtk's passt-base-10s vector (kadtk pads/cuts the clip to 10 s and calls hear21passt's
    get_scene_embeddings on the mode='all' model: logits ‖ embedding)"""
    from hear21passt.base import get_scene_embeddings
    src = tmp_path / 'audio'
    src.mkdir()
    x = refs.make_signals(SR, 7.0, seed=7)['music']
    sf.write(src / 'a.wav', x, SR, subtype='FLOAT')
    ours = get_embedder('passt', weights=ckpt10, custom_weights=True, opts={'output': 'both'})
    ours.micro_batch = 1                       # one window: no zero windows to fill a pass of 4 (results do not depend on it)
    embed_dir(ours, src, tmp_path / 'out', *settings_for(ours, Choices()), RunSettings(num_workers=0, progress=False, logits=True))
    d = torch.load(tmp_path / 'out/a.wav.pt', weights_only=True)
    audio = torch.nn.functional.pad(torch.from_numpy(x), (0, 10 * SR - len(x)))[None]     # kadtk's load_wav
    want = get_scene_embeddings(audio, ref10)                                              # what kadtk's _get_embedding returns
    assert d['embeddings'].shape == want.shape == (1, 1295) and d['times'].tolist() == [0.0]
    assert (d['embeddings'] - want).abs().max() <= TOL
    assert torch.equal(d['logits'], d['embeddings'][:, :527])


@pytest.mark.parametrize('variant', ['base-20s', 'base-30s'])
def test_long_variants_equal_hear21passt(variant, tmp_path):
    """base-20s / base-30s vs hear21passt.base20sec / base30sec: full depth on 1 s clips; the full 20 s / 30 s window
    (every time position) with both networks cut to their first block"""
    path = make_file(variant, tmp_path, seed=20 if variant == 'base-20s' else 30)
    ref = refs.passt_ref(variant, path)
    ours = get_embedder(f'passt:{variant}', weights=path, custom_weights=True)
    path.unlink()
    seconds = P.PASST_VARIANTS[variant].seconds
    assert ours.window_samples() == (seconds * SR, seconds * SR // 2) and ours.net.time_new_pos_embed.shape[-1] == seconds * 10
    names, x = signals(1.0, seed=seconds)
    with torch.inference_mode():
        want_l, want_e = reference(ref, x[:3])
        got_e, got_l = ours.embed(x[:3, None], logits=True)
        assert (got_e - want_e).abs().max() <= TOL and (got_l - want_l).abs().max() <= TOL
        ref.net.blocks, ours.net.blocks = ref.net.blocks[:1], ours.net.blocks[:1]
        long = torch.from_numpy(refs.make_signals(SR, seconds, seed=1)['music'])[None]
        want_l, want_e = reference(ref, long)
        got_e, got_l = ours.forward_logits(long[:, None])
    assert want_e.abs().max() > 1
    assert (got_e - want_e).abs().max() <= TOL and (got_l - want_l).abs().max() <= TOL


def test_longer_than_the_time_encoding(ref10, ours10):
    "One sample more than 10.05 s needs a 100th time position: the reference fails, ours says why"
    x = torch.zeros(1, P.max_samples() + 1)
    with torch.inference_mode():
        with pytest.raises(RuntimeError): ref10(x)
        with pytest.raises(ValueError, match=r'passt:base-10s takes 4801 to 321600 samples .* got 321601 .*cut long files into windows'):
            ours10.embed(x[:, None])


def test_batch_independence_is_bitwise(ours10):
    "A window's embedding is the same bit for bit alone or among 5 others (fixed passes of 4 windows, zero-padded)"
    _, x = signals(0.5, seed=4)
    with torch.inference_mode():
        many = ours10.embed(x[:, None])
        for i in (1, 5):
            assert torch.equal(ours10.embed(x[i:i + 1, None]), many[i:i + 1]), i


# ------------------------------------------------------------------ loading

def test_published_format(ref10, ckpt10):
    "The file is the network's state dict: the reference's keys, in its order, and ours"
    sd = torch.load(ckpt10, weights_only=True)
    with torch.device('meta'): ours = P.PaSST()
    assert list(sd) == list(ref10.net.state_dict()) == list(ours.net.state_dict()) and len(sd) == 159
    assert all(torch.equal(sd[k], v) for k, v in ref10.net.state_dict().items())     # the reference loaded the same tensors


def test_the_published_file_is_checked(ckpt10):
    "Without --custom-weights a file must be the published one: the pinned size is checked first"
    with pytest.raises(ValueError, match=r'bytes, but passt-s-f128-p16-s10-ap.476-swa.pt is 344665734 bytes'):
        get_embedder('passt', weights=ckpt10)


def test_truncated_file(ckpt10, tmp_path):
    p = tmp_path / FILE['base-20s']
    with open(ckpt10, 'rb') as f: p.write_bytes(f.read(1 << 20))
    with pytest.raises(ValueError, match=f'{p}: cannot read checkpoint'):
        get_embedder('passt:base-20s', weights=tmp_path)


def test_checkpoint_of_another_variant(ckpt10):
    with pytest.raises(ValueError, match=rf'{ckpt10}: this is the base-10s checkpoint \(99 time positions\), but passt:base-30s '
                                         r'\(300 time positions, 30 s\) was asked for: use passt:base-10s'):
        get_embedder('passt:base-30s', weights=ckpt10, custom_weights=True)


def test_not_a_passt_file(tmp_path):
    refs.save_pann_file({'fc1.bias': torch.zeros(3)}, tmp_path / 'Cnn14.pth')
    with pytest.raises(ValueError, match=r'Cnn14.pth: not a PaSST checkpoint: .*under "model"'):
        get_embedder('passt', weights=tmp_path / 'Cnn14.pth', custom_weights=True)
    sd = refs.passt_random_state_dict({'time_new_pos_embed': (1, 768, 1, 99), 'patch_embed.proj.weight': (768, 1, 16, 16),
                                       'head.1.weight': (200, 768)}, 0)
    refs.save_passt_file(sd, tmp_path / 'fsd50k.pt')
    with pytest.raises(ValueError, match=r'fsd50k.pt: this is an FSD50K fine-tune \(200 classes\)'):
        get_embedder('passt', weights=tmp_path / 'fsd50k.pt', custom_weights=True)


def test_missing_file_offline(offline):
    url = P.PASST_VARIANTS['base-20s'].checkpoint.url
    with pytest.raises(FileNotFoundError, match=f'weights passt-s-f128-20sec-p16-s10-ap.474-swa.pt not found .* fetch {url}'):
        get_embedder('passt:base-20s')


def test_unknown_option():
    with pytest.raises(ValueError, match=r"passt: option output must be embedding\|logits\|both, got 'all'"):
        get_embedder('passt', opts={'output': 'all'})


# ------------------------------------------------------------------ end to end

def test_fad_embed_cli_equals_reference(ref10, ckpt10, tmp_path):
    """fad_embed passt DIR --custom-weights --weights FILE --window 1 --hop 0.5 --logits --opts output=both, a real
    program: its .pt outputs == the reference on the same windows (1 s windows keep it fast)"""
    src = tmp_path / 'audio'
    src.mkdir()
    files = {'a.wav': ('music', 0.6), 'b.wav': ('chirp', 2.3)}
    for rel, (kind, seconds) in files.items():
        sf.write(src / rel, refs.make_signals(SR, seconds, seed=len(rel))[kind], SR, subtype='PCM_16')
    r = run('fad_embed', 'passt', src, '--weights', ckpt10, '--custom-weights', '--out', tmp_path / 'out', '--window', '1',
            '--hop', '0.5', '--logits', '--opts', 'output=both')
    out = tmp_path / 'out' / 'audio_emb_passt'
    assert r.stdout.strip().endswith('audio_emb_passt')
    prov = json.loads((out / 'manifest.json').read_text())['provenance']
    assert (prov['model'], prov['variant'], prov['dim'], prov['opt_output'], prov['checkpoint'], prov['custom_weights'],
            prov['window'], prov['hop'], prov['pad'], prov['short'], prov['logits']) == \
           ('passt', 'base-10s', 1295, 'both', FILE['base-10s'], True, 1.0, 0.5, 'zero', 'zero', True)
    for rel, (kind, seconds) in files.items():
        x = torch.from_numpy(sf.read(src / rel, dtype='float32')[0])
        n = len(x)
        starts = [i * SR // 2 for i in range(1 + math.ceil(max(0, n - SR) / (SR // 2)))]   # every 0.5 s until one covers the end
        wins = torch.stack([torch.nn.functional.pad(x[s:s + SR], (0, max(0, s + SR - n))) for s in starts])
        with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()): want = ref10(wins)
        d = torch.load(out / f'{rel}.pt', weights_only=True)
        assert d['embeddings'].shape == want.shape == (len(starts), 1295), rel
        assert (d['embeddings'] - want).abs().max() <= TOL and (d['logits'] - want[:, :527]).abs().max() <= TOL, rel
        assert d['times'].tolist() == [s / SR for s in starts]
    assert len(starts) == 4                                                   # b.wav: 0, 0.5, 1, 1.5 s (the last one padded)


def test_fad_embed_list_shows_variants():
    r = run('fad_embed', 'list')
    for v in P.PASST_VARIANTS:
        assert f'passt:{v}' in r.stdout, r.stdout
    assert 'passt:base-30s  32000 Hz, dim 768, 527 class logits, 30 s windows every 15 s (pad zero, short zero), mono' in r.stdout
