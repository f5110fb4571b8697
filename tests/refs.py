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
    "frechet_audio_distance.models.pann (Cnn14, Cnn14_16k, Cnn14_8k)"
    install()
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
