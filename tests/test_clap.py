"""fad_pytorch's CLAP embedder against laion_clap 1.1.7, with the same random weights.

The reference is built offline by `refs.clap_module` (tests/refs.py): the tokenizers laion_clap loads at import are
replaced by None and `RobertaModel.from_pretrained('roberta-base')` by a randomly initialised RoBERTa (here a 1-layer,
1000-token one: `small_text=True`); nothing is downloaded and the audio branch is laion_clap's own. Its audio branch
and projection get seeded random values (`refs.clap_randomize`); the whole model is written in the published format
(`refs.clap_save_published`: {'epoch', 'name', 'state_dict': {'module.<key>'}, 'optimizer'}, pickle protocol 4, numpy
scalars) and read back by OUR loader, `get_embedder('clap:<variant>', weights=FILE)`.

Tolerance: max |diff| <= 1e-4 on the unit-norm 512-d embeddings (the project's rule for fp32 on CPU). Ours differs
from the reference only in the order of float sums (fused attention, window-order tokens), which gives ~1e-7; 1e-4
leaves room for other BLAS builds and still catches real errors (the antialias switch alone moves a long fusion
embedding by ~2e-3, a crop one frame off or a wrong merge order by far more).
"""
import os
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
from fad_pytorch.audio import audio_to_windows, load_audio
from fad_pytorch.embedder import get_embedder
from fad_pytorch.models import clap

refs.install()
torch.set_num_threads(2)
TOL = 1e-4
CLIP = clap.CLIP
KINDS = {'tiny': ('HTSAT-tiny', False, '630k-best', 1),            # variants without an enforced checksum
         'base': ('HTSAT-base', False, 'music_audioset_epoch_15_esc_90.14', 2),
         'fusion': ('HTSAT-tiny', True, '630k-fusion-best', 3)}


def signals(n:int, seed:int, k:int=1) -> torch.Tensor:
    "k deterministic test signals of n samples at 48 kHz (noise, tone + noise, chirp, gated mix), (k, n)"
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / 48000
    gate = (torch.sin(2 * np.pi * 0.13 * t) > 0).float()
    f = 200 + 3000 * t / max(t[-1].item(), 1e-9)
    sigs = [0.3 * torch.randn(n, generator=g),
            (0.5 * torch.sin(2 * np.pi * 440 * t)).float() + 0.01 * torch.randn(n, generator=g),
            (0.5 * torch.sin(2 * np.pi * f * t)).float(),
            (0.4 * gate * torch.sin(2 * np.pi * f * t)).float() + 0.2 * (1 - gate) * torch.randn(n, generator=g)]
    return torch.stack([sigs[(seed + i) % 4] for i in range(k)])


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "kind -> (reference CLAP_Module, our embedder loaded from the published-format file, that file); built on first use"
    made = {}
    def get(kind):
        if kind not in made:
            tower, fusion, variant, seed = KINDS[kind]
            ref = refs.clap_randomize(refs.clap_module(tower, fusion, small_text=True), seed)
            path = refs.clap_save_published(ref.model, tmp_path_factory.mktemp(kind) / f'{variant}.pt')
            made[kind] = ref, get_embedder(f'clap:{variant}', weights=path), path
        return made[kind]
    yield get
    for _, _, path in made.values(): path.unlink()          # 130-370 MB each


def reference(ref, clips, use_tensor=True) -> torch.Tensor:
    "laion_clap's embeddings of a list of 1-D clips (any lengths)"
    with torch.no_grad():
        if use_tensor: return ref.get_audio_embedding_from_data(list(clips), use_tensor=True)
        return torch.from_numpy(ref.get_audio_embedding_from_data([c.numpy() for c in clips], use_tensor=False))


def ours(emb, x) -> torch.Tensor:
    "our forward on (batch, samples)"
    with torch.no_grad(): return emb(x[:, None])


def centre_crops(monkeypatch):
    "make laion_clap's random crops the deterministic ones ours uses (centre 10 s; middle of each third for fusion)"
    monkeypatch.setattr(np.random, 'randint', lambda lo, hi: (hi - 1) // 2)        # crop start in 0..overflow
    monkeypatch.setattr(np.random, 'choice', lambda a: a[(len(a) - 1) // 2])


def diff(a, b) -> float: return (a - b).abs().max().item()


def test_front_end_pieces():
    "HTK filterbank = torchaudio's (bit for bit); fusion log-mel = laion_clap's get_mel; int16 round trip = its numpy code"
    import torchaudio.functional as AF
    from laion_clap.training.data import get_mel, int16_to_float32, float32_to_int16
    assert torch.equal(clap.htk_filterbank(), AF.melscale_fbanks(513, 50.0, 14000.0, 64, 48000, norm=None, mel_scale='htk'))
    x = signals(CLIP, 0, 2)
    cfg = dict(sample_rate=48000, window_size=1024, hop_size=480, mel_bins=64, fmin=50, fmax=14000)
    mel = clap.htk_logmel(x, clap.htk_filterbank())
    for i in range(2): assert diff(mel[i], get_mel(x[i], cfg)) <= 1e-4                # dB
    g = torch.Generator().manual_seed(0)
    y = torch.cat([1.5 * torch.randn(200000, generator=g), torch.tensor([1.0, -1.0, 2.0, -2.0, 0.99999, -3e-5])])
    assert torch.equal(clap.quantize_int16(y), torch.from_numpy(int16_to_float32(float32_to_int16(y.numpy()))))


@pytest.mark.parametrize('kind', ['tiny', 'base', 'fusion'])
def test_matches_reference(kind, models, monkeypatch):
    "10 s clips and a short clip as the engine frames them; a long clip as a whole file (the reference on the same crop)"
    ref, emb, _ = models(kind)
    centre_crops(monkeypatch)
    x10, short, long = signals(CLIP, 10, 2), signals(150001, 11)[0], signals(700001, 12)[0]
    want = reference(ref, [x10[0], x10[1], short, long])
    wins = torch.cat([x10, audio_to_windows(short[None], CLIP, CLIP, emb.pad, short=emb.short)[:, 0]])
    got = torch.cat([ours(emb, wins), ours(emb, long[None])])
    d = [diff(got[i], want[i]) for i in range(4)]
    print(f"{kind}: max |diff| 10 s {max(d[:2]):.1e}, 150001 samples {d[2]:.1e}, 700001 samples (whole file) {d[3]:.1e}")
    assert got.shape == (4, 512) and max(d) <= TOL


def test_fusion_whole_files(models, monkeypatch):
    "fusion over 10 s: 1001 frames (not 'longer'), just over, and twice 10 s; the reference's crops forced to ours"
    ref, emb, _ = models('fusion')
    centre_crops(monkeypatch)
    clips = [signals(n, 3)[0] for n in (480100, 481440, 1_000_003)]
    want = reference(ref, clips)
    d = [diff(ours(emb, c[None])[0], w) for c, w in zip(clips, want)]
    print('fusion whole files: max |diff|', ', '.join(f'{v:.1e}' for v in d))
    assert max(d) <= TOL


def test_fusion_antialias_option(models, monkeypatch):
    "antialias=False equals laion_clap under torchvision < 0.17 (Resize without antialiasing)"
    import torchvision.transforms as T
    ref, emb, path = models('fusion')
    centre_crops(monkeypatch)
    resize = T.Resize
    monkeypatch.setattr(T, 'Resize', lambda size: resize(size, antialias=False))
    x = signals(900000, 3)[0]
    want = reference(ref, [x])[0]
    no_aa = get_embedder('clap:630k-fusion-best', weights=path, opts={'antialias': False})
    d, d_aa = diff(ours(no_aa, x[None])[0], want), diff(ours(emb, x[None])[0], want)
    print(f'fusion antialias=False: max |diff| {d:.1e}; antialias=True differs by {d_aa:.1e}')
    assert d <= TOL and d_aa > 10 * TOL and no_aa.config()['opt_antialias'] is False


@pytest.mark.parametrize('kind', ['tiny', 'fusion'])
def test_quantized_matches_reference_numpy_path(kind, models, monkeypatch):
    "quantize=True equals get_audio_embedding_from_data(numpy, use_tensor=False), which round-trips through int16"
    ref, _, path = models(kind)
    centre_crops(monkeypatch)
    emb = get_embedder(f'clap:{KINDS[kind][2]}', weights=path, opts={'quantize': True})
    x = 2.5 * signals(CLIP if kind == 'tiny' else 600000, 15)[0]                        # loud: values beyond ±1 clip
    d = diff(ours(emb, x[None])[0], reference(ref, [x], use_tensor=False)[0])
    print(f'{kind} quantized: max |diff| {d:.1e}')
    assert d <= TOL and emb.config()['opt_quantize'] is True


def test_embed_is_batch_independent(models):
    "Embedder.embed runs fixed micro-batches: a window's embedding is bit for bit the same alone or among others"
    _, emb, _ = models('tiny')
    x = signals(CLIP, 20, 2)[:, None]
    with torch.no_grad():
        together = emb.embed(x, micro_batch=2)
        alone = torch.cat([emb.embed(x[i:i + 1], micro_batch=2) for i in range(2)])    # window 1 at position 0
        single = emb(x[1:])                                                            # a batch of 1: other shapes
    print(f'micro-batch of 2 vs a batch of 1: max |diff| {diff(together[1], single[0]):.1e}')
    assert torch.equal(together, alone) and diff(together[1], single[0]) <= 1e-6


def test_published_file_reads_in_laion_clap(models):
    "the file our loader reads is one laion_clap's own load_ckpt reads too, with the same numbers"
    ref, emb, path = models('tiny')
    ref2 = refs.clap_module('HTSAT-tiny', False, small_text=True)
    ref2.load_ckpt(str(path), verbose=False)
    x = signals(CLIP, 30)
    assert diff(ours(emb, x), reference(ref2, x)) <= TOL


def test_loader_errors(models, tmp_path):
    ref, emb, path = models('tiny')
    with pytest.raises(ValueError, match=r"holds an HTSAT-tiny model, but clap:music_audioset_epoch_15_esc_90.14 is HTSAT-base; variants for this file: 630k-audioset-best, 630k-best"):
        get_embedder('clap:music_audioset_epoch_15_esc_90.14', weights=path)
    with pytest.raises(ValueError, match="but clap:630k-fusion-best is HTSAT-tiny fusion"):
        get_embedder('clap:630k-fusion-best', weights=path)
    with pytest.raises(ValueError, match="checksum mismatch .* not the published 630k-audioset-best.pt"):
        get_embedder('clap:630k-audioset-best', weights=path)
    trunc = tmp_path / 'trunc.pt'
    with open(path, 'rb') as f: trunc.write_bytes(f.read(1_000_000))
    with pytest.raises(ValueError, match="trunc.pt: cannot read checkpoint"): get_embedder('clap:630k-best', weights=trunc)
    sd = {k: v for k, v in ref.model.state_dict().items() if k != 'audio_branch.layers.1.blocks.0.mlp.fc1.weight'}
    sd['audio_projection.0.bias'] = torch.zeros(3)
    torch.save({'state_dict': sd}, tmp_path / 'bad.pt')                # bare keys (no 'module.'), pickle protocol 2
    with pytest.raises(ValueError, match=r"bad.pt: checkpoint does not fit ClapAudio \(missing keys: audio_branch.layers.1.blocks.0.mlp.fc1.weight; shape mismatch: audio_projection.0.bias: checkpoint \(3,\) vs model \(512,\)"):
        get_embedder('clap:630k-best', weights=tmp_path / 'bad.pt')
    marker = tmp_path / 'pwned'
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    torch.save({'epoch': 15, 'state_dict': {'module.audio_branch.bn0.weight': Evil()}}, tmp_path / 'evil.pt', pickle_protocol=4)
    with pytest.raises(ValueError, match="evil.pt: cannot read checkpoint .*global 'posix.system' is not allowed"):
        get_embedder('clap:630k-best', weights=tmp_path / 'evil.pt')
    assert not marker.exists()


def test_fad_embed_end_to_end(models, tmp_path, monkeypatch):
    "fad_embed clap:<variant> DIR --weights FILE, as a program: its .pt files equal laion_clap on the same 48 kHz windows"
    ref, _, path = models('tiny')
    src = tmp_path / 'audio'; src.mkdir()
    for name, n, seed in (('short.wav', 4 * 48000 + 17, 40), ('long.wav', 12 * 48000 + 24000, 41)):
        sf.write(src / name, signals(n, seed)[0].numpy(), 48000, subtype='FLOAT')
    env = {'OMP_NUM_THREADS': '2'}
    run('fad_embed', 'clap:630k-best', src, '--out', tmp_path / 'win', '--weights', path, env=env)
    run('fad_embed', 'clap:630k-best', src, '--out', tmp_path / 'whole', '--weights', path, '--window', 0, env=env)
    centre_crops(monkeypatch)
    for name in ('short', 'long'):
        wav, _ = load_audio(src / f'{name}.wav', 48000)
        wins = audio_to_windows(wav, CLIP, CLIP, 'end', short='repeat')[:, 0]          # CLAP's default framing
        got = torch.load(tmp_path / f'win/audio_emb_clap-630k-best/{name}.wav.pt', weights_only=True)
        whole = torch.load(tmp_path / f'whole/audio_emb_clap-630k-best/{name}.wav.pt', weights_only=True)
        d, dw = diff(got['embeddings'], reference(ref, wins)), diff(whole['embeddings'], reference(ref, wav))
        print(f'fad_embed {name}: {len(wins)} windows, max |diff| {d:.1e}; --window 0: {dw:.1e}')
        assert got['embeddings'].shape == (len(wins), 512) and d <= TOL
        assert whole['embeddings'].shape == (1, 512) and dw <= TOL
    assert len(wins) == 2 and got['times'].tolist() == [0.0, 2.5]                       # long: 0-10 s and 2.5-12.5 s
