"""fad_pytorch's MS-CLAP 2023 embedder against msclap 1.3.4 (and fadtk 1.1's clap-2023), with the same random weights.

The reference is msclap's own code, built offline by tests/refs.py: its GPT-2 text tower is a randomly initialised
1-layer GPT-2 and its tokenizer a stub (both would be downloads); the audio side is msclap's. Its audio encoder gets
seeded random values (`refs.msclap_randomize`); the whole model is written in the published format
(`refs.msclap_save_published`: {'model': state dict}, float tensors only, as CLAP_weights_2023.pth), and that file
is read both by msclap's own `CLAPWrapper` (its loader: `torch.load(...)['model']`, `load_state_dict(strict=False)`)
and by OURS, `get_embedder('msclap', weights=FILE, custom_weights=True)`.

Tolerance: max |diff| <= 1e-4 on the 1024-d embeddings (the project's rule for fp32 on CPU). Ours differs from the
reference only in the order of float sums (fused attention, window-order tokens, the token mean); measured ~1e-6
on embeddings of size ~1 (LayerNorm output). A wrong hop, mel stretch, crop or projection moves them by far more.
"""
import os
import numpy as np, pytest, soundfile as sf, torch
import refs
from util import run
from fad_pytorch.audio import load_audio
from fad_pytorch.embedder import get_embedder
from fad_pytorch.models import msclap

refs.install()
torch.set_num_threads(2)
TOL = 1e-4
SR, CLIP = msclap.SAMPLE_RATE, msclap.CLIP


def signals(n:int, seed:int, k:int=1) -> torch.Tensor:
    "k deterministic test signals of n samples at 44.1 kHz (noise, tone + noise, chirp, gated mix), (k, n)"
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / SR
    gate = (torch.sin(2 * np.pi * 0.13 * t) > 0).float()
    f = 200 + 3000 * t / max(t[-1].item(), 1e-9)
    sigs = [0.3 * torch.randn(n, generator=g),
            (0.5 * torch.sin(2 * np.pi * 440 * t)).float() + 0.01 * torch.randn(n, generator=g),
            (0.5 * torch.sin(2 * np.pi * f * t)).float(),
            (0.4 * gate * torch.sin(2 * np.pi * f * t)).float() + 0.2 * (1 - gate) * torch.randn(n, generator=g)]
    return torch.stack([sigs[(seed + i) % 4] for i in range(k)])


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "(msclap's CLAPWrapper, our embedder, the published-format file), both reading the same file"
    path = refs.msclap_save_published(refs.msclap_randomize(refs.msclap_model(), 1),
                                      tmp_path_factory.mktemp('msclap') / 'CLAP_weights_2023.pth')
    wrapper = refs.msclap_wrapper(path)
    yield wrapper, get_embedder('msclap', weights=path, custom_weights=True), path
    path.unlink()


def diff(a, b) -> float: return (a - b).abs().max().item()


def ours(emb, x) -> torch.Tensor:
    "our forward on (batch, samples)"
    with torch.no_grad(): return emb(x[:, None])


def reference_windows(wrapper, x) -> torch.Tensor:
    "msclap's audio encoder on 7 s windows (batch, 308700), as fadtk calls it"
    with torch.no_grad(): return wrapper.clap.audio_encoder(x)[0]


def reference_files(wrapper, clips, monkeypatch) -> torch.Tensor:
    "msclap's get_audio_embeddings on whole clips (its length rule; its random crop made the centre one)"
    import msclap.CLAPWrapper as W
    monkeypatch.setattr(wrapper, 'read_audio', lambda i, resample=True: (clips[i][None], SR), raising=False)
    monkeypatch.setattr(W.random, 'randrange', lambda m: m // 2)         # crop start in 0..m-1: the centre one
    return wrapper.get_audio_embeddings(list(range(len(clips))), resample=True)


def test_reference_reads_the_file(models):
    "msclap's loader (strict=False) really took the file's audio weights: the comparisons below compare two readers"
    wrapper, emb, path = models
    ref_sd, our_sd = wrapper.clap.state_dict(), emb.state_dict()
    fixed = ('.relative_position_index', '.attn_mask')                             # checked by the loader, not loaded
    assert set(our_sd) == {k for k in ref_sd if k.startswith(msclap.AUDIO_KEYS) and not k.startswith(msclap.IGNORED)
                           and not k.endswith(fixed)}
    for k, v in our_sd.items():
        if not k.endswith('num_batches_tracked'): assert torch.equal(ref_sd[k], v), k
    assert ref_sd['audio_encoder.base.htsat.bn0.running_mean'].mean() < -30        # the seeded value, not the init's 0


def test_matches_reference(models, monkeypatch):
    "7 s windows; whole clips shorter (repeated) and longer (cropped) than 7 s"
    wrapper, emb, _ = models
    x = signals(CLIP, 10, 2)
    d_win = diff(ours(emb, x), reference_windows(wrapper, x))
    clips = [signals(100001, 11)[0], signals(CLIP + 40001, 12)[0], signals(CLIP, 13)[0]]
    want = reference_files(wrapper, clips, monkeypatch)
    d_files = [diff(ours(emb, c[None])[0], w) for c, w in zip(clips, want)]
    print(f"msclap: max |diff| 7 s windows {d_win:.1e}; whole clips of 100001 / 348701 / 308700 samples: "
          + ', '.join(f'{d:.1e}' for d in d_files) + f"; |embedding| ~ {want.abs().mean():.2f}")
    assert want.shape == (3, 1024) and max([d_win] + d_files) <= TOL


def test_default_framing_is_fadtks(models):
    "fadtk's clap-2023 on a 7.5 s file: its first 2 windows (up to the one that reaches the end) are our default framing's"
    from fadtk.model_loader import CLAPModel, ModelLoader
    wrapper, emb, _ = models
    ml = CLAPModel.__new__(CLAPModel)                                 # its __init__ downloads the checkpoint
    ModelLoader.__init__(ml, 'clap-2023', 1024, SR)
    ml.model, ml.device = wrapper, torch.device('cpu')
    wav = signals(int(7.5 * SR), 20)
    with torch.no_grad(): want = ml._get_embedding(wav.numpy())
    wins, times = emb.framing().cut(wav, SR)
    with torch.no_grad(): got = emb.embed(wins)
    d = diff(got, want[:len(got)])
    print(f"fadtk clap-2023, 7.5 s: {len(want)} windows there, {len(got)} here (starts {times.tolist()} s), max |diff| {d:.1e}")
    assert len(want) == 8 and times.tolist() == [0.0, 1.0] and d <= TOL


def test_embed_is_batch_independent(models):
    "Embedder.embed runs fixed micro-batches: a window's embedding is bit for bit the same alone or among others"
    _, emb, _ = models
    x = signals(CLIP, 30, 2)[:, None]
    with torch.no_grad():
        together = emb.embed(x, micro_batch=2)
        alone = torch.cat([emb.embed(x[i:i + 1], micro_batch=2) for i in range(2)])    # window 1 at position 0
        single = emb(x[1:])                                                            # a batch of 1: other shapes
    print(f'micro-batch of 2 vs a batch of 1: max |diff| {diff(together[1], single[0]):.1e}')
    assert torch.equal(together, alone) and diff(together[1], single[0]) <= 1e-5


def test_full_state_dict_file(models, tmp_path):
    "a file with every buffer (as torch.save of a fine-tune's state_dict gives) reads to the same model"
    wrapper, emb, _ = models
    path = refs.msclap_save_published(wrapper.clap, tmp_path / 'finetune.pth', full=True)
    assert 'audio_encoder.base.htsat.layers.0.blocks.0.attn.relative_position_index' in torch.load(path)['model']
    other = get_embedder('msclap', weights=path, custom_weights=True)
    x = signals(CLIP, 40)
    assert torch.equal(ours(other, x), ours(emb, x))
    assert other.config()['custom_weights'] is True and other.config()['checkpoint'] == 'finetune.pth'


def test_loader_errors(models, tmp_path):
    wrapper, emb, path = models
    with pytest.raises(ValueError, match="msclap: unknown variant '2022'; choose one of 2023"):
        get_embedder('msclap:2022', weights=path, custom_weights=True)
    trunc = tmp_path / 'trunc.pth'
    with open(path, 'rb') as f: trunc.write_bytes(f.read(1_000_000))
    with pytest.raises(ValueError, match="trunc.pth: cannot read checkpoint"): get_embedder('msclap', weights=trunc)
    sd = {k: v for k, v in wrapper.clap.state_dict().items() if k != 'audio_encoder.projection.linear2.weight'}
    sd['audio_encoder.projection.layer_norm.bias'] = torch.zeros(3)
    torch.save({'model': sd}, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match=r"bad.pth: checkpoint does not fit MsClapAudio \(missing keys: audio_encoder.projection.linear2.weight; shape mismatch: audio_encoder.projection.layer_norm.bias: checkpoint \(3,\) vs model \(1024,\)"):
        get_embedder('msclap', weights=tmp_path / 'bad.pth')
    torch.save({'model': {'audio_encoder.base.conv_block1.conv1.weight': torch.zeros(64, 1, 3, 3)}}, tmp_path / 'v2022.pth')
    with pytest.raises(ValueError, match="v2022.pth: this is MS-CLAP 2022"): get_embedder('msclap', weights=tmp_path / 'v2022.pth')
    torch.save({'epoch': 15, 'state_dict': {'module.audio_branch.patch_embed.proj.weight': torch.zeros(96, 1, 4, 4)}},
               tmp_path / 'laion.pt')                                            # LAION-CLAP's layout, one key
    with pytest.raises(ValueError, match="laion.pt: no audio_encoder.base.htsat.patch_embed.proj.weight: not an MS-CLAP 2023 checkpoint \\(it is a LAION-CLAP one"):
        get_embedder('msclap', weights=tmp_path / 'laion.pt')
    marker = tmp_path / 'pwned'
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    torch.save({'model': {'audio_encoder.base.htsat.bn0.weight': Evil()}}, tmp_path / 'evil.pth', pickle_protocol=4)
    with pytest.raises(ValueError, match="evil.pth: cannot read checkpoint .*global 'posix.system' is not allowed"):
        get_embedder('msclap', weights=tmp_path / 'evil.pth')
    assert not marker.exists()


def test_fad_embed_end_to_end(models, tmp_path, monkeypatch):
    "fad_embed msclap DIR --weights FILE --custom-weights, as a program: its .pt files equal msclap on the same windows"
    wrapper, _, path = models
    src = tmp_path / 'audio'; src.mkdir()
    for name, n, seed in (('short.wav', 3 * SR + 17, 50), ('long.wav', 9 * SR + 22050, 51)):
        sf.write(src / name, signals(n, seed)[0].numpy(), SR, subtype='FLOAT')
    env = {'OMP_NUM_THREADS': '2'}
    run('fad_embed', 'msclap', src, '--out', tmp_path / 'win', '--weights', path, '--custom-weights', env=env)
    run('fad_embed', 'msclap', src, '--out', tmp_path / 'whole', '--weights', path, '--custom-weights', '--window', 0, env=env)
    out = {d: tmp_path / d / 'audio_emb_msclap' for d in ('win', 'whole')}
    assert out['win'].is_dir(), sorted(p.name for p in (tmp_path / 'win').iterdir())
    for name, starts in (('short', [0.0]), ('long', [0.0, 1.0, 2.0, 3.0])):
        wav, _ = load_audio(src / f'{name}.wav', SR)
        got = torch.load(out['win'] / f'{name}.wav.pt', weights_only=True)
        segs = [wav[0, round(s * SR):round(s * SR) + CLIP] for s in starts]        # fadtk's windows, zero-padded
        wins = torch.stack([torch.nn.functional.pad(seg, (0, CLIP - len(seg))) for seg in segs])
        d = diff(got['embeddings'], reference_windows(wrapper, wins))
        whole = torch.load(out['whole'] / f'{name}.wav.pt', weights_only=True)
        dw = diff(whole['embeddings'], reference_files(wrapper, [wav[0]], monkeypatch))
        print(f'fad_embed {name}: {len(starts)} windows, max |diff| {d:.1e}; --window 0: {dw:.1e}')
        assert got['embeddings'].shape == (len(starts), 1024) and got['times'].tolist() == starts and d <= TOL
        assert whole['embeddings'].shape == (1, 1024) and dw <= TOL
