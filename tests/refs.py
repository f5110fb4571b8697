"""Build the REFERENCE implementations offline, with random weights, for the fidelity tests.

The reference packages (torchvggish, panns_inference, laion_clap, frechet_audio_distance, fadtk, torchopenl3) are
test dependencies, installed by `.ci/setup`. Some reach the network at import or construction time; this module
makes them build offline:
- torchvision on PyPI is a CUDA build whose compiled ops cannot load with CPU torch; its fake-op registrations are
  skipped (the pure-Python parts laion_clap uses still work);
- laion_clap loads BERT/RoBERTa/BART tokenizers at import and RoBERTa weights at construction: tokenizers are
  replaced by None and text models by randomly initialised ones with the published configs, so state-dict keys and
  shapes match the released checkpoints;
- panns_inference's package __init__ downloads a label CSV with wget: the models module is imported without it.
Nothing here downloads anything. Call `install()` before importing a reference package.
"""
import importlib.util, os, sys, types

_HF = {  # configs of the text towers laion_clap asks for by name
    'roberta-base': ('RobertaConfig', dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                     pad_token_id=1, bos_token_id=0, eos_token_id=2)),
    'bert-base-uncased': ('BertConfig', dict()),
    'facebook/bart-base': ('BartConfig', dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6,
                           encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
                           decoder_ffn_dim=3072, max_position_embeddings=1024)),
}
_done = False


def install():
    "Offline environment, torchvision stub, transformers patches (idempotent)"
    global _done
    if _done: return
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('torchvision._meta_registrations'))
    import transformers
    for name in ('BertTokenizer', 'RobertaTokenizer', 'BartTokenizer'):
        getattr(transformers, name).from_pretrained = classmethod(lambda cls, *a, **k: None)
    def random_model(cls, name, *a, **k):
        cfg, kw = _HF[name]
        return cls(getattr(transformers, cfg)(**kw))
    for name in ('RobertaModel', 'BertModel', 'BartModel'):
        getattr(transformers, name).from_pretrained = classmethod(random_model)
    _done = True


def _package_without_init(pkg):
    "Register a package without running its __init__.py"
    if pkg not in sys.modules:
        mod = types.ModuleType(pkg)
        mod.__path__ = list(importlib.util.find_spec(pkg).submodule_search_locations)
        sys.modules[pkg] = mod
    return sys.modules[pkg]


def panns_models():
    "panns_inference.models (Cnn14 ...) without the package __init__ (which shells out to wget)"
    _package_without_init('panns_inference')
    import panns_inference.models as m
    return m


def fad_pann_models():
    "frechet_audio_distance.models.pann (Cnn14, Cnn14_16k, Cnn14_8k), without the package __init__ (laion_clap, encodec: 8 s)"
    _package_without_init('frechet_audio_distance')
    _package_without_init('frechet_audio_distance.models')
    import frechet_audio_distance.models.pann as m
    return m


def clap_module(amodel='HTSAT-tiny', enable_fusion=False, small_text=False):
    """laion_clap.CLAP_Module with random weights. small_text: its RoBERTa text tower gets 1 layer and a 1000-token
    vocabulary instead of roberta-base's 12 and 50265 (the audio branch is untouched; building roberta-base's 125 M
    random parameters is most of the build time). The published key shapes need small_text=False."""
    install()
    import laion_clap
    full = _HF['roberta-base']
    if small_text: _HF['roberta-base'] = (full[0], dict(full[1], vocab_size=1000, num_hidden_layers=1))
    try: return laion_clap.CLAP_Module(enable_fusion=enable_fusion, amodel=amodel, tmodel='roberta', device='cpu')
    finally: _HF['roberta-base'] = full


def clap_randomize(module, seed):
    """Seeded random values for the audio branch and audio projection of a CLAP_Module, in ranges that keep the
    activations lively (BatchNorm statistics included); the front-end tensors (torchlibrosa STFT kernels and mel
    matrix) and the fixed buffers (relative_position_index, attn_mask) are kept as built"""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in module.model.state_dict().items():
            if not k.startswith(('audio_branch.', 'audio_projection.')) or not v.is_floating_point(): continue
            if k.startswith(('audio_branch.spectrogram_extractor.', 'audio_branch.logmel_extractor.')): continue
            if k.endswith(('relative_position_index', 'attn_mask')): continue
            name, r = k.rsplit('.', 1)[-1], lambda: torch.randn(v.shape, generator=g)
            if k.startswith('audio_branch.bn0.'):      # log-mel in dB: a mean near -40 dB and a variance of ~200 dB²
                val = {'weight': 1 + 0.2 * r(), 'bias': 0.2 * r(), 'running_mean': 5 * r() - 40.0,
                       'running_var': 200 + 50 * torch.rand(v.shape, generator=g)}[name]
            elif name == 'running_mean': val = 0.1 * r()
            elif name == 'running_var': val = 0.5 + torch.rand(v.shape, generator=g)
            elif name == 'relative_position_bias_table': val = 0.5 * r()
            elif v.dim() == 1 and name == 'weight': val = 1 + 0.2 * r()           # LayerNorm / BatchNorm scales
            elif name == 'bias': val = 0.05 * r()
            else: val = r() / v[0].numel() ** 0.5                              # fan-in scaled weights
            v.copy_(val)
    return module


def clap_save_published(model, path, protocol=4):
    """Write a CLAP model (`CLAP_Module.model`) as LAION's files are laid out: {'epoch', 'name', 'state_dict':
    {'module.<key>': tensor}, 'optimizer'}, with text_branch.embeddings.position_ids (a buffer that transformers no
    longer saves but the files hold, and laion_clap 1.1.7's load_ckpt deletes), numpy scalars in the optimizer state
    and pickle protocol 4, as reported for the released files"""
    import numpy as np, torch
    sd = {'module.' + k: v for k, v in model.state_dict().items()}
    sd['module.text_branch.embeddings.position_ids'] = torch.arange(514)[None]
    opt = {'state': {}, 'param_groups': [{'lr': np.float64(1e-4), 'betas': (0.9, 0.99), 'eps': 1e-9, 'weight_decay': 0.0,
                                          'params': [0, 1]}]}
    torch.save({'epoch': 15, 'name': 'random-weights', 'state_dict': sd, 'optimizer': opt}, path, pickle_protocol=protocol)
    return path


def vggish_vgg():
    "torchvggish's VGG (same code and state-dict keys as the torch.hub master the FAD tools load), random init"
    from torchvggish import torchvggish as tv
    return tv._vgg(postprocess=False)


# ---------------------------------------------------------------- seeded weights in the published file formats
# Random weights stand in for the published ones (which cannot be downloaded here); they are written in the exact
# published layouts so that the fidelity tests load them through fad_pytorch's own loaders.

def randomize_(model, seed:int, bn0_mean:float=0.0, bn0_std:float=1.0):
    """Seeded He-scaled conv/linear weights, small biases, random BatchNorm affine and running statistics. PANN's
    front-end tensors (STFT kernels, mel matrix) are left as the reference built them; `bn0` (which sees dB values)
    gets dB-scale statistics so that activations stay O(1)."""
    import math, torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if name.startswith(('spectrogram_extractor', 'logmel_extractor')): continue
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / m.weight[0].numel()))
                if m.bias is not None: m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g)); m.bias.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2); m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 10**6, (1,), generator=g)))
        if hasattr(model, 'bn0'):
            c = model.bn0.num_features
            model.bn0.running_mean.copy_(bn0_mean + torch.randn(c, generator=g) * 5.0)
            model.bn0.running_var.copy_((bn0_std * (0.7 + 0.6 * torch.rand(c, generator=g))) ** 2)
    return model.eval()


def vggish_fad(seed:int=0):
    "torchvggish's VGG as frechet-audio-distance and fadtk run it (final ReLU cut, no PCA), seeded random weights"
    import torch
    m = randomize_(vggish_vgg(), seed)
    m.embeddings = torch.nn.Sequential(*list(m.embeddings.children())[:-1])
    return m


def vggish_default(sd:dict, pca:dict|None=None):
    "torchvggish's own default model (final ReLU; with `pca`, its Postprocessor with those params) holding `sd`"
    import torch
    from torchvggish import torchvggish as tv
    m = vggish_vgg()
    m.load_state_dict(sd)
    if pca is not None:
        p = tv.Postprocessor.__new__(tv.Postprocessor)             # its __init__ downloads the params: set them as it would
        p._pca_matrix = torch.as_tensor(pca['pca_eigen_vectors']).float()
        p._pca_means = torch.as_tensor(pca['pca_means'].reshape(-1, 1)).float()
        m.pproc, m.postprocess = p, True
    return m.eval()


def save_vggish_file(sd:dict, path, zipfile:bool=True):
    "Write a state dict as torchvggish's `vggish-10086976.pth`: a flat OrderedDict of tensors"
    import collections, torch
    torch.save(collections.OrderedDict((k, v.clone()) for k, v in sd.items()), path, _use_new_zipfile_serialization=zipfile)
    return path


def save_pca_file(path, seed:int=0, zipfile:bool=True) -> dict:
    "Write PCA params like `vggish_pca_params-970ea276.pth` (a dict of float64 numpy arrays); return them"
    import numpy as np, torch
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((128, 128)))[0] * rng.uniform(0.5, 3.0, (128, 1))
    d = {'pca_eigen_vectors': q, 'pca_means': rng.standard_normal(128) * 0.3}
    torch.save(d, path, _use_new_zipfile_serialization=zipfile)
    return d


PANN_CONFIGS = {  # variant: panns_inference / frechet-audio-distance constructor arguments (sr, window, hop, mels, fmin, fmax, classes)
    '16k': (16000, 512, 160, 64, 50, 8000, 527), '32k': (32000, 1024, 320, 64, 50, 14000, 527), '8k': (8000, 256, 80, 64, 50, 4000, 527)}


def pann_ref(variant:str='16k', seed:int=0, tool:str='panns_inference'):
    "Reference Cnn14 with seeded weights: panns_inference's Cnn14, or frechet-audio-distance's Cnn14_16k / Cnn14_8k / Cnn14"
    if tool == 'panns_inference': cls = panns_models().Cnn14
    else: cls = getattr(fad_pann_models(), {'16k': 'Cnn14_16k', '8k': 'Cnn14_8k', '32k': 'Cnn14'}[variant])
    return randomize_(cls(*PANN_CONFIGS[variant]), seed, bn0_mean=-40.0, bn0_std=20.0)


def save_pann_file(sd:dict, path, zipfile:bool=True, seed:int=0):
    "Write `{'iteration', 'model', 'sampler'}` like audioset_tagging_cnn's main.py (the sampler state holds int64 numpy arrays)"
    import collections, numpy as np, torch
    rng = np.random.default_rng(seed)
    sampler = {'indexes_per_class': [np.where(rng.random(200) < 0.05)[0] for _ in range(527)],
               'queue': rng.permutation(527).tolist()[:100], 'pointers_of_classes': [int(i) for i in rng.integers(0, 50, 527)]}
    ck = {'iteration': 540000, 'model': collections.OrderedDict((k, v.clone()) for k, v in sd.items()), 'sampler': sampler}
    torch.save(ck, path, _use_new_zipfile_serialization=zipfile)
    return path


def make_signals(sr:int, seconds:float, seed:int=0) -> dict:
    "Named float32 test signals of one length: sines, noise, a chirp, silence, a music-like mixture (notes + drums + noise)"
    import numpy as np
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds)); t = np.arange(n) / sr
    f_hi = min(6000.0, 0.45 * sr)
    notes = np.zeros(n)
    for k, f0 in enumerate((220.0, 277.2, 329.6, 440.0)):
        env = np.clip(np.sin(np.pi * ((t * 2 + k / 4) % 1.0)), 0, 1) ** 2
        notes += sum(0.15 / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.28)) for h in range(1, 7) if f0 * h < 0.45 * sr) * env
    clicks = np.zeros(n); clicks[::max(1, sr // 4)] = 1.0
    burst = rng.standard_normal(sr // 50) * np.exp(-np.arange(sr // 50) / (sr / 400))
    sig = {'sine1k': 0.5 * np.sin(2 * np.pi * 1000 * t),
           'sines': 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3150.5 * t),
           'noise': 0.3 * rng.standard_normal(n),
           'chirp': 0.5 * np.sin(2 * np.pi * (50 * t + (f_hi - 50) / (2 * max(seconds, 1e-9)) * t ** 2)),
           'silence': np.zeros(n),
           'music': notes + np.convolve(clicks, burst, 'same') * 0.3 + 0.01 * rng.standard_normal(n)}
    return {k: v.astype(np.float32) for k, v in sig.items()}


def openl3_seeded_(net, seed:int):
    """Seeded random weights for torchopenl3's PytorchOpenl3 or our OpenL3 (the same module names): He-scaled convs,
    small biases, BatchNorm statistics that keep activations O(1) (the input BatchNorm sees dB values, -80..0). The
    front-end tensors (speclayer.*) are left as the model built them."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(torch.full((n,), -40.0) if n == 1 else 0.3 * torch.randn(n, generator=g))
                m.running_var.copy_(torch.full((n,), 400.0) if n == 1 else 0.5 + torch.rand(n, generator=g))
    return net.eval()


def openl3_ref(variant:str='mel256_music_512', seed:int=0):
    "torchopenl3 1.0.1's model for '<repr>_<content>_<dim>' with seeded weights (its speclayer as its constructor builds it)"
    import warnings
    import torchopenl3.models as TM
    repr_, content, dim = variant.split('_')
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Empty filters detected')
        return openl3_seeded_(TM.PytorchOpenl3(content, repr_, int(dim)), seed)


def save_openl3_file(sd:dict, path):
    "Write a state dict as torchopenl3's published `torchopenl3_<repr>_<content>_<dim>.pth.tar` (a flat dict of tensors)"
    import torch
    torch.save({k: v.clone() for k, v in sd.items()}, path)
    return path


# ---------------------------------------------------------------- MS-CLAP (msclap 1.3.4)
# msclap builds a GPT-2 text tower with `AutoModel.from_pretrained('gpt2')` and a GPT-2 tokenizer with
# `AutoTokenizer.from_pretrained('gpt2')`, both downloads. While a reference is built, msclap's own module globals
# are replaced: the text model by a randomly initialised GPT-2 (small: 1 layer, 1000 tokens; the audio side is
# msclap's own code), the tokenizer by a stub. Nothing else is patched and nothing is downloaded.

def _msclap_offline():
    "A context in which msclap builds its models offline (its AutoModel and AutoTokenizer globals replaced)"
    import contextlib, types
    install()
    import transformers
    import msclap.CLAPWrapper as W
    import msclap.models.clap as MC
    class Gpt2:
        @staticmethod
        def from_pretrained(name, *a, **k):
            if name != 'gpt2': raise ValueError(f"msclap 2023 asked for text model {name!r}, expected 'gpt2'")
            return transformers.GPT2Model(transformers.GPT2Config(n_layer=1, vocab_size=1000, n_positions=80))
    class Tok:
        @staticmethod
        def from_pretrained(name, *a, **k): return types.SimpleNamespace(add_special_tokens=lambda tokens: None)
    @contextlib.contextmanager
    def ctx():
        saved = MC.AutoModel, W.AutoTokenizer
        MC.AutoModel, W.AutoTokenizer = Gpt2, Tok
        try: yield W, MC
        finally: MC.AutoModel, W.AutoTokenizer = saved
    return ctx()


def msclap_model():
    "msclap's CLAP model with the 2023 configuration (as `CLAPWrapper.load_clap` builds it), random weights"
    with _msclap_offline() as (W, MC):
        w = W.CLAPWrapper.__new__(W.CLAPWrapper)
        args = w.read_config_as_args((__import__('pathlib').Path(W.__file__).parent / 'configs/config_2023.yml').read_text(),
                                     is_config_str=True)
        return MC.CLAP(audioenc_name=args.audioenc_name, sample_rate=args.sampling_rate, window_size=args.window_size,
                       hop_size=args.hop_size, mel_bins=args.mel_bins, fmin=args.fmin, fmax=args.fmax,
                       classes_num=args.num_classes, out_emb=args.out_emb, text_model=args.text_model,
                       transformer_embed_dim=args.transformer_embed_dim, d_proj=args.d_proj).eval()


def msclap_randomize(model, seed:int):
    """Seeded random values for the audio encoder of msclap's CLAP (tower and projection), in ranges that keep the
    activations lively; the front-end tensors (STFT kernels, mel matrix) and fixed buffers are kept as built"""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if not k.startswith('audio_encoder.') or not v.is_floating_point(): continue
            if '.spectrogram_extractor.' in k or '.logmel_extractor.' in k or k.endswith('attn_mask'): continue
            name, r = k.rsplit('.', 1)[-1], lambda: torch.randn(v.shape, generator=g)
            if '.htsat.bn0.' in k:                     # log-mel in dB: a mean near -40 dB and a variance of ~200 dB²
                val = {'weight': 1 + 0.2 * r(), 'bias': 0.2 * r(), 'running_mean': 5 * r() - 40.0,
                       'running_var': 200 + 50 * torch.rand(v.shape, generator=g)}[name]
            elif name == 'relative_position_bias_table': val = 0.5 * r()
            elif v.dim() == 1 and name == 'weight': val = 1 + 0.2 * r()           # LayerNorm scales
            elif name == 'bias': val = 0.05 * r()
            else: val = r() / v[0].numel() ** 0.5                              # fan-in scaled weights
            v.copy_(val)
    return model


def msclap_save_published(model, path, full:bool=False):
    """Write msclap's CLAP as `CLAP_weights_2023.pth` is laid out: {'model': OrderedDict state dict} of the whole model
    (text tower included). The published file holds float tensors only (Hugging Face's pickle scan lists FloatStorage,
    no LongStorage), so integer buffers (relative_position_index, num_batches_tracked) are left out; full=True keeps
    them, as `torch.save({'model': model.state_dict()})` of a fine-tune would"""
    import collections, torch
    sd = collections.OrderedDict((k, v) for k, v in model.state_dict().items() if full or v.is_floating_point())
    torch.save({'model': sd}, path)
    return path


def msclap_wrapper(path):
    "msclap's own `CLAPWrapper(path, version='2023')`: builds the model and loads the file with its own loader"
    with _msclap_offline() as (W, MC):
        return W.CLAPWrapper(str(path), version='2023', use_cuda=False)

# ---------------------------------------------------------------- PaSST (hear21passt 0.0.26)
# hear21passt builds its models through timm's download cache: get_basic_model() with the default pretrained=True
# looks for the release file in $TORCH_HOME/hub/checkpoints/<file> and downloads it only when it is missing. Putting
# a file there makes the reference load it with its own loader (strict), offline.

PASST_REF = {  # variant: hear21passt module whose get_basic_model builds it, and the release file it loads
    'base-10s': ('hear21passt.base', 'passt-s-f128-p16-s10-ap.476-swa.pt'),
    'base-20s': ('hear21passt.base20sec', 'passt-s-f128-20sec-p16-s10-ap.474-swa.pt'),
    'base-30s': ('hear21passt.base30sec', 'passt-s-f128-30sec-p16-s10-ap.473-swa.pt')}


def passt_random_state_dict(shapes:dict, seed:int) -> dict:
    """Seeded random PaSST weights for {key: shape}: fan-in scaled matrices, LayerNorm scales near 1, small biases, and
    position encodings and tokens of the size the trained model has (~0.5), so that no part of the sum is negligible"""
    import collections, torch
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    for k, shape in shapes.items():
        r = torch.randn(shape, generator=g)
        if 'pos_embed' in k or k.endswith('_token'): sd[k] = 0.5 * r
        elif len(shape) == 1 and k.endswith('weight'): sd[k] = 1 + 0.1 * r                     # LayerNorm scales
        elif len(shape) == 1: sd[k] = 0.05 * r                                                 # biases
        else: sd[k] = r / (torch.Size(shape)[1:].numel() ** 0.5)
    return sd


def save_passt_file(sd:dict, path):
    "Write a state dict as the PaSST release files are: the network's state dict, torch.save'd as it is"
    import collections, torch
    torch.save(collections.OrderedDict((k, v.clone()) for k, v in sd.items()), path)
    return path


def passt_ref(variant:str, path, mode:str='all'):
    """hear21passt's own model for a variant (`get_basic_model(mode=...)` of hear21passt.base / base20sec / base30sec),
    loading the checkpoint file `path` with its own loader (strict), offline; in evaluation mode. It prints a lot: quiet."""
    import contextlib, importlib, io, os, shutil, tempfile, torch
    install()
    module, file = PASST_REF[variant]
    hub, old = tempfile.mkdtemp(), torch.hub.get_dir()
    os.makedirs(os.path.join(hub, 'checkpoints'))
    os.symlink(os.path.abspath(path), os.path.join(hub, 'checkpoints', file))
    torch.hub.set_dir(hub)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module(module).get_basic_model(mode=mode).eval()
    finally:
        torch.hub.set_dir(old)
        shutil.rmtree(hub)


def passt_ref_random(variant:str='base-10s', seed:int=0, mode:str='all'):
    """hear21passt's model for a variant (the front end and network get_basic_model builds, without the download) with
    `passt_random_state_dict` weights; in evaluation mode"""
    import contextlib, io
    from hear21passt.models.passt import get_model
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper
    install()
    arch, tdim, window = {'base-10s': ('passt_s_swa_p16_128_ap476', 998, 10000), 'base-20s': ('passt_20sec', 2000, 20000),
                          'base-30s': ('passt_30sec', 3000, 30000)}[variant]
    with contextlib.redirect_stdout(io.StringIO()):
        mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192, htk=False,
                             fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
        net = get_model(arch=arch, pretrained=False, input_tdim=tdim)
    net.load_state_dict(passt_random_state_dict({k: v.shape for k, v in net.state_dict().items()}, seed))
    return PasstBasicWrapper(mel=mel, net=net, max_model_window=window, mode=mode).eval()
# ---------------------------------------------------------------- Hugging Face speech encoders (transformers)
# The published repositories hold what each model class saves: a CTC fine-tune (wav2vec2-*-960h, wavlm-libri-*:
# 'wav2vec2.'/'wavlm.' prefixes plus lm_head), a bare model (hubert-*-ls960) or Whisper's encoder-decoder
# (WhisperForConditionalGeneration: 'model.encoder.', 'model.decoder.'). The 2021 pickles name the positional
# convolution's weight norm 'weight_g'/'weight_v'; recent transformers writes 'parametrizations.weight.original0/1'.

HF_SAVED_CLASS = {'wav2vec2': 'Wav2Vec2ForCTC', 'hubert': 'HubertModel', 'wavlm': 'WavLMForCTC',
                  'whisper': 'WhisperForConditionalGeneration'}
HF_BASE_CLASS = {'wav2vec2': 'Wav2Vec2Model', 'hubert': 'HubertModel', 'wavlm': 'WavLMModel', 'whisper': 'WhisperModel'}


def hf_speech_ref(arch:dict, seed:int=0):
    """A small transformers model of the class its published checkpoint was saved from, seeded: transformers' own
    initialisation, then norm scales in 0.7..1.3 and biases N(0, 0.05) so that no layer is an identity"""
    install()
    import torch, transformers
    cfg = transformers.AutoConfig.for_model(**arch)
    torch.manual_seed(seed)
    model = getattr(transformers, HF_SAVED_CLASS[arch['model_type']])(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and name.endswith('weight'): p.copy_(0.7 + 0.6 * torch.rand(p.shape, generator=g))
            elif name.endswith('bias'): p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def save_hf_speech_dir(model, path, safetensors:bool=False, old_weight_norm:bool=True, preprocessor:dict|None=None):
    """A repository directory as published: config.json, pytorch_model.bin (2021 weight-norm names unless
    old_weight_norm=False) or model.safetensors, and the feature extractor's preprocessor_config.json
    (Wav2Vec2FeatureExtractor with `preprocessor`, or WhisperFeatureExtractor for Whisper)"""
    import torch, transformers
    from pathlib import Path
    path = Path(path)
    model.save_pretrained(path, safe_serialization=safetensors)
    if not safetensors and old_weight_norm:
        sd = torch.load(path / 'pytorch_model.bin', weights_only=True)
        ren = {'.parametrizations.weight.original0': '.weight_g', '.parametrizations.weight.original1': '.weight_v'}
        sd = {next((k.replace(a, b) for a, b in ren.items() if k.endswith(a)), k): v for k, v in sd.items()}
        assert any(k.endswith('weight_g') for k in sd) or model.config.model_type == 'whisper'
        torch.save(sd, path / 'pytorch_model.bin')
    if model.config.model_type == 'whisper':
        transformers.WhisperFeatureExtractor(feature_size=model.config.num_mel_bins).save_pretrained(path)
    else:
        transformers.Wav2Vec2FeatureExtractor(**(preprocessor or {})).save_pretrained(path)
    return path


def hf_speech_pipeline(path):
    """fadtk's pipeline on a repository directory: the feature extractor and the base model class from_pretrained
    (transformers' own loading), `model(**inputs, output_hidden_states=True).hidden_states`; Whisper: the encoder of
    WhisperModel on the extractor's 30 s log-mel. Returns audio (1-d float32 numpy) -> tuple of (frames, dim) tensors"""
    install()
    import json, torch, transformers
    from pathlib import Path
    family = json.loads((Path(path) / 'config.json').read_text())['model_type']
    fe = transformers.AutoFeatureExtractor.from_pretrained(path)
    model = getattr(transformers, HF_BASE_CLASS[family]).from_pretrained(path).eval()
    def run(audio):
        inputs = fe(audio, sampling_rate=16000, return_tensors='pt')
        with torch.inference_mode():
            if family == 'whisper': hs = model.encoder(inputs.input_features, output_hidden_states=True).hidden_states
            else: hs = model(**inputs, output_hidden_states=True).hidden_states
        return tuple(h[0] for h in hs)
    run.feature_extractor, run.model = fe, model
    return run
# ---------------------------------------------------------------- EnCodec (encodec 0.1.1) and DAC (descript-audio-codec 1.0.0)

def seeded_codec_(model, seed:int, gain=(0.5, 1.5)):
    """Seeded random parameters for an EnCodec or DAC model (all of them, so nothing is left at a default): weight-norm
    directions He-scaled and gains `gain` × ‖v‖ (so each convolution keeps its input's scale), plain conv weights
    He-scaled, biases small, GroupNorm affine near 1/0, LSTM weights uniform ±1/√hidden, Snake alphas in [0.5, 1.5]."""
    import math, torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit('.', 1)[-1]
            if leaf == 'weight_v' or (leaf == 'weight' and p.ndim == 3):
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / p[0].numel()))
            elif leaf.startswith(('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh')):
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / math.sqrt(p.shape[-1] if p.ndim == 2 else p.shape[0] / 4))
            elif leaf == 'alpha': p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif leaf == 'bias': p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            elif leaf == 'weight' and p.ndim == 1: p.copy_(0.5 + torch.rand(p.shape, generator=g))      # GroupNorm
        for name, p in model.named_parameters():
            if name.endswith('weight_g'):
                v = dict(model.named_parameters())[name[:-1] + 'v']
                p.copy_(torch.linalg.vector_norm(v.flatten(1), dim=1).view(p.shape)
                        * (gain[0] + (gain[1] - gain[0]) * torch.rand(p.shape, generator=g)))
    return model.eval()


def encodec_ref(variant:str='24k', seed:int=0):
    "encodec 0.1.1's whole EncodecModel (24 or 48 kHz, as `encodec_model_*khz(pretrained=False)` builds it), seeded"
    import torch
    from encodec import EncodecModel
    torch.manual_seed(seed)       # the quantiser's codebooks (buffers) are random at construction
    m = (EncodecModel.encodec_model_24khz if variant == '24k' else EncodecModel.encodec_model_48khz)(pretrained=False)
    return seeded_codec_(m, seed)


def save_encodec_file(model, path):
    "The published format: the whole codec's flat state dict (encoder, decoder, quantizer), torch.save"
    import torch
    torch.save(model.state_dict(), path)
    return path


def fadtk_encodec(ref, variant:str):
    "fadtk 1.1.0's EncodecEmbModel holding `ref` (its load_model would download the published weights)"
    import torch
    from fadtk.model_loader import EncodecEmbModel
    ml = EncodecEmbModel(variant)
    ml.model, ml.device = ref, torch.device('cpu')
    return ml


def fad_encodec(ref):
    "frechet-audio-distance 0.3.4's FrechetAudioDistance with model_name='encodec' holding `ref` (its __init__ would download)"
    import torch
    install()
    from frechet_audio_distance import FrechetAudioDistance
    f = FrechetAudioDistance.__new__(FrechetAudioDistance)
    f.model_name, f.model, f.device, f.verbose, f.sample_rate = 'encodec', ref, torch.device('cpu'), False, ref.sample_rate
    return f


def _stub_tensorboard():
    "audiotools imports torch.utils.tensorboard (training logs) at import; the encoder path never uses it: a stub avoids installing tensorboard"
    import sys, types
    if 'torch.utils.tensorboard' not in sys.modules:
        m = types.ModuleType('torch.utils.tensorboard')
        m.SummaryWriter = object
        sys.modules['torch.utils.tensorboard'] = m


def audiotools():
    "descript-audiotools 0.7.2 (AudioSignal: loudness, normalize, ensure_max_of_audio, collect_windows)"
    _stub_tensorboard()
    import audiotools as at
    return at


def dac_ref(seed:int=0):
    "descript-audio-codec 1.0.0's 44.1 kHz DAC (the defaults of `dac.DAC()` are the 44khz 8kbps model), seeded"
    import torch
    _stub_tensorboard()
    import dac
    torch.manual_seed(seed)
    return seeded_codec_(dac.DAC(), seed, gain=(0.2, 0.5))


def save_dac_file(model, path):
    "The published format, written by audiotools' own BaseModel.save(package=False): {'state_dict', 'metadata': {'kwargs'}}"
    model.save(str(path), package=False)
    return path


def fadtk_dac(encoder):
    "fadtk 1.1.0's DACModel whose model's `encoder` is `encoder` (its load_model would download the published weights)"
    import types, torch
    _stub_tensorboard()
    from fadtk.model_loader import DACModel
    ml = DACModel()
    ml.model, ml.device = types.SimpleNamespace(encoder=encoder), torch.device('cpu')
    return ml


# ------------------------------------------------------------------ MERT (reference modelling code from ../shared/refenv/mert)

def mert_refenv():
    "The MERT reference folder: $FAD_REFENV/mert, else shared/refenv/mert beside the repository (or a folder above it); None when absent"
    from pathlib import Path
    roots = [Path(os.environ['FAD_REFENV'])] if os.environ.get('FAD_REFENV') else \
            [p / 'shared' / 'refenv' for p in Path(__file__).resolve().parents[1].parents]
    return next((r / 'mert' for r in roots if (r / 'mert' / 'modeling_MERT.py').is_file()), None)


def mert_modules():
    "The reference `modeling_MERT` (MERTModel) and `configuration_MERT`, imported in place as the package `mert_ref`"
    install()
    d = mert_refenv()
    if d is None: raise FileNotFoundError("the MERT reference code (shared/refenv/mert) is not here; set $FAD_REFENV")
    if 'mert_ref' not in sys.modules:
        pkg = types.ModuleType('mert_ref'); pkg.__path__ = [str(d)]; sys.modules['mert_ref'] = pkg
    import mert_ref.modeling_MERT as M, mert_ref.configuration_MERT as C
    return M, C


def mert_ref(kind:str='mert_base', seed:int=0, **overrides):
    """The reference MERTModel built from the MERT repository's conversion config (`mert_base` = 95M, `mert_large` =
    330M) with `overrides` (e.g. a small width), seeded random weights, eval mode. `conv_pos_batch_norm=False` is set
    as fadtk sets it (transformers' HuBERT position embedding asks for it; MERTConfig predates it)."""
    import json, math, torch
    M, C = mert_modules()
    cfg = C.MERTConfig(**(json.loads((mert_refenv() / f'{kind}.json').read_text()) | overrides))
    cfg.conv_pos_batch_norm = False
    from transformers.modeling_utils import no_init_weights
    with no_init_weights(): model = M.MERTModel(cfg)          # every parameter is set below: skip transformers' init
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == 'masked_spec_embed' or name.endswith('original1'): p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith('original0'): p.copy_(0.5 + torch.rand(p.shape, generator=g))                 # weight-norm g
            elif name.endswith('bias'): p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1: p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))                         # norm weights
            else: p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
    return model.eval()


def mert_feature_extractor():
    "The preprocessor the MERT repositories publish: Wav2Vec2FeatureExtractor, 24 kHz, do_normalize, attention mask"
    from transformers import Wav2Vec2FeatureExtractor
    return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=24000, padding_value=0.0, do_normalize=True,
                                    return_attention_mask=True)


def save_mert_published(ref, d, safetensors:bool=False):
    """The reference's files as a MERT Hugging Face repository holds them, in directory `d`: config.json (what
    save_pretrained writes) and pytorch_model.bin with the position conv's weight norm as `weight_g` / `weight_v` (as
    2023's transformers wrote the published files; today's transformers reads them back unchanged); or, with
    `safetensors`, config.json and model.safetensors exactly as today's `save_pretrained` writes them."""
    import torch
    from pathlib import Path
    d = Path(d); d.mkdir(parents=True, exist_ok=True)
    if safetensors: ref.save_pretrained(d)
    else:
        ref.config.save_pretrained(d)
        torch.save({k.replace('parametrizations.weight.original0', 'weight_g').replace('parametrizations.weight.original1', 'weight_v'): v
                    for k, v in ref.state_dict().items()}, d / 'pytorch_model.bin')
    return d


# ------------------------------------------------------------------ SaShiMi SC09 (reference code from ../shared/refenv/sashimi)

def sashimi_refenv():
    "The SaShiMi reference folder: $FAD_REFENV/sashimi, else shared/refenv/sashimi beside the repository (or a folder above it); None when absent"
    from pathlib import Path
    roots = [Path(os.environ['FAD_REFENV'])] if os.environ.get('FAD_REFENV') else \
            [p / 'shared' / 'refenv' for p in Path(__file__).resolve().parents[1].parents]
    return next((r / 'sashimi' for r in roots if (r / 'sashimi' / 'resnext.py').is_file()), None)


def sashimi_modules():
    """The reference `resnext`, `transforms_wav` and `metrics` modules. resnext.py is imported in place as `models.resnext`
    (the package the SaShiMi training script imports it from), so a model saved whole names `models.resnext.*` in its
    pickle, as the published resnext.pth does."""
    import importlib.util
    d = sashimi_refenv()
    if d is None: raise FileNotFoundError("the SaShiMi reference code (shared/refenv/sashimi) is not here; set $FAD_REFENV")
    if 'models' not in sys.modules:
        pkg = types.ModuleType('models'); pkg.__path__ = [str(d)]; sys.modules['models'] = pkg
    import models.resnext as R
    out = [R]
    for name in ('transforms_wav', 'metrics'):
        key = f'sashimi_{name}'
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, d / f'{name}.py')
            sys.modules[key] = mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        out.append(sys.modules[key])
    return tuple(out)


def digit_like(n:int, seed:int=0, seconds:float=1.0, sr:int=16000):
    "`n` float32 clips that look a little like spoken digits: a voiced harmonic tone under a syllable envelope, breath noise"
    import numpy as np
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    out = []
    for _ in range(n):
        f0, mid, width = rng.uniform(90, 300), rng.uniform(0.25, 0.75) * seconds, rng.uniform(0.08, 0.2)
        env = np.exp(-((t - mid) / width) ** 2)
        formants = rng.uniform(300, 3000, 3)
        y = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) * np.exp(-np.min(np.abs(f0 * h - formants)) / 400) / h
                for h in range(1, 25) if f0 * h < sr / 2)
        out.append((0.3 * y * env + 0.003 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def sc09_ref_mel(y, sr:int=16000):
    "The reference front end on one clip: FixAudioLength, ToMelSpectrogram(n_mels=32), ToTensor (float32 (32, 32))"
    _, T, _ = sashimi_modules()
    d = {'samples': y, 'sample_rate': sr}
    for tr in (T.FixAudioLength(), T.ToMelSpectrogram(n_mels=32), T.ToTensor('mel_spectrogram', 'input')): d = tr(d)
    return d['input']


def sc09_ref_outputs(ref, clips):
    "The reference model on the reference front end: (1024-d input of `classifier`, logits), as test_speech_commands.py reads them"
    import torch
    x = torch.stack([sc09_ref_mel(y) for y in clips])[:, None]
    got = {}
    def keep(m, i, o): got['f'] = i[0].detach().clone()               # returns None: the output stays as it is
    h = ref.classifier.register_forward_hook(keep)
    try:
        with torch.inference_mode(): logits = ref(x)
    finally: h.remove()
    return got['f'], logits


def sc09_ref(seed:int=0):
    """SaShiMi's CifarResNeXt(nlabels=10, in_channels=1) with seeded weights: He-scaled convolutions, random BatchNorm
    affine parameters, and BatchNorm statistics measured on digit-like mel images (a forward pass in training mode with
    cumulative averages), so that every layer's activations are O(1) as in a trained network"""
    import warnings, torch
    R, _, _ = sashimi_modules()
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*kaiming_normal')     # resnext.py calls the deprecated initialiser
        m = R.CifarResNeXt(nlabels=10, in_channels=1)
    g = torch.Generator().manual_seed(seed)
    bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for b in m.modules():
            if isinstance(b, torch.nn.Conv2d): b.weight.copy_(torch.randn(b.weight.shape, generator=g) * (2.0 / b.weight[0].numel()) ** 0.5)
            elif isinstance(b, torch.nn.Linear):
                b.weight.copy_(torch.randn(b.weight.shape, generator=g) * b.weight.shape[1] ** -0.5)
                b.bias.copy_(0.1 * torch.randn(b.bias.shape, generator=g))
        for b in bns:
            b.weight.copy_(0.5 + torch.rand(b.num_features, generator=g)); b.bias.copy_(0.2 * torch.randn(b.num_features, generator=g))
            b.reset_running_stats(); b.momentum = None
        cal = torch.stack([sc09_ref_mel(y) for y in digit_like(24, seed=1000 + seed)])[:, None]
        m.train(); m(cal); m.eval()
    for b in bns: b.momentum = 0.1
    return m


def save_sc09_file(model, path, cuda_tags:bool=True, **save_kw):
    """Write a model as SaShiMi's train_speech_commands.py writes resnext.pth: `torch.save(DataParallel(model), path)`, the
    whole object pickled. As on the GPU machine it was trained on: DataParallel's device attributes (device_ids [0],
    output_device 0, src_device_obj cuda:0) and, with `cuda_tags`, every tensor storage tagged 'cuda:0' (torch's
    location tag is patched while saving, so no GPU is needed)"""
    import torch, torch.serialization as S
    dp = torch.nn.DataParallel(model)
    dp.device_ids, dp.output_device, dp.src_device_obj, dp.dim = [0], 0, torch.device('cuda', 0), 0
    dp.eval()
    tag = S.location_tag
    if cuda_tags: S.location_tag = lambda storage: 'cuda:0'
    try: torch.save(dp, path, **save_kw)
    finally: S.location_tag = tag
    return path
