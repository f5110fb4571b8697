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


def clap_module(amodel='HTSAT-tiny', enable_fusion=False):
    "laion_clap.CLAP_Module with random weights"
    install()
    import laion_clap
    return laion_clap.CLAP_Module(enable_fusion=enable_fusion, amodel=amodel, tmodel='roberta', device='cpu')


def vggish_vgg():
    "torchvggish's VGG (same code and state-dict keys as the torch.hub master the FAD tools load), random init"
    from torchvggish import torchvggish as tv
    return tv._vgg(postprocess=False)
