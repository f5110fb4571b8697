"""The peers' own embedding pipelines, run in-process for bench_embed.py: fadtk 1.1.0 and frechet-audio-distance 0.3.4,
warm, on the same files and with the same seeded random weights as ours, nothing of their code changed.

What has to be arranged around them, offline:
- VGGish: both tools call `torch.hub.load('harritaylor/torchvggish', 'vggish')`. A hub cache directory is written
  with `harritaylor_torchvggish_master/hubconf.py` holding master's VGGish wrapper (preprocessing inside `forward(x,
  fs)`: `vggish_input.waveform_to_examples`, resampy to 16 kHz; the VGG of the pip torchvggish 0.2 package, whose
  modules are byte-identical to master's) loading our random weights; the hub's probe of GitHub fails fast offline
  and the cached directory is used.
- fadtk reads and writes audio with `torchaudio.load/save`, which need torchcodec under torchaudio 2.11: they are
  replaced by soundfile equivalents of torchaudio's old soundfile backend (float32 (C, N) in; PCM_16 out).
  fadtk writes `convert/16000/*.wav` and `embeddings/<model>/*.npy` beside the audio: it runs on its own folder of
  links to the files, cleared before every run.
- frechet-audio-distance loads PANN checkpoints with `torch.load` (weights only): its file holds just {'model': sd}.
- fadtk's CLAP model downloads into its package folder: the loader is built without its __init__ and pointed at our
  checkpoint (its own `load_model` then runs). Both tools build laion_clap's whole model, text tower included: the
  checkpoint they load holds our random audio branch and a random full-size text tower (`clap_full_checkpoint`).

Each function returns (setup, run): `setup()` builds the tool's model (untimed); `run(paths)` embeds the files as
the tool does, and returns the number of model windows it computed.
"""
from __future__ import annotations
import os, shutil, sys
from pathlib import Path
import numpy as np, soundfile as sf, torch

HUBCONF = '''dependencies = ['torch', 'numpy', 'resampy']
import os
import numpy as np
import torch
from torchvggish import vggish_input
from torchvggish.torchvggish import VGG, make_layers


class VGGish(VGG):
    "harritaylor/torchvggish master's VGGish: preprocessing in forward; weights from $FAD_BENCH_VGGISH_WEIGHTS"
    def __init__(self, preprocess=True, postprocess=True):
        super().__init__(make_layers(), postprocess=False)
        self.load_state_dict(torch.load(os.environ['FAD_BENCH_VGGISH_WEIGHTS'], map_location='cpu'))
        self.device = torch.device('cpu')
        self.preprocess = preprocess

    def forward(self, x, fs=None):
        if self.preprocess: x = vggish_input.waveform_to_examples(x, fs)
        return VGG.forward(self, x.to(self.device))


def vggish(**kwargs):
    return VGGish()
'''


def vggish_hub(root:Path, weights:Path) -> Path:
    "A torch.hub cache directory that serves 'harritaylor/torchvggish' offline with our weights"
    d = root / 'harritaylor_torchvggish_master'
    d.mkdir(parents=True, exist_ok=True)
    (d / 'hubconf.py').write_text(HUBCONF)
    os.environ['FAD_BENCH_VGGISH_WEIGHTS'] = str(weights)
    return root


def links(paths:list[Path], d:Path) -> Path:
    "A folder holding only links to `paths` (the tools list or write into the folder of the audio)"
    if d.exists(): shutil.rmtree(d)
    d.mkdir(parents=True)
    for p in paths: (d / p.name).symlink_to(p.resolve())
    return d


def patch_torchaudio():
    "torchaudio.load/save through soundfile, as torchaudio's old soundfile backend did (torchcodec is not installed)"
    import torchaudio
    def load(path, *a, **k):
        x, sr = sf.read(str(path), dtype='float32', always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(x.T)), sr
    def save(path, wav, sr, *a, encoding=None, bits_per_sample=None, **k):
        sf.write(str(path), wav.detach().cpu().numpy().T, sr, subtype='PCM_16' if bits_per_sample == 16 else 'FLOAT')
    torchaudio.load, torchaudio.save = load, save


def _offline():
    "laion_clap (imported by frechet-audio-distance, and by fadtk's CLAP) loads tokenizers at import: tests/refs.py's offline patches"
    import refs
    refs.install()


def _quiet():
    import logging
    for n in ('fadtk', 'root'): logging.getLogger(n).setLevel(logging.ERROR)


# ------------------------------------------------------------------ fadtk

def fadtk_run(ml, work:Path):
    "fadtk's per-file path: FrechetAudioDistance(ml).cache_embedding_file on every file (convert, load_wav, embed, np.save)"
    from fadtk.fad import FrechetAudioDistance
    fad = FrechetAudioDistance(ml, load_model=False)
    def run(paths):
        folder = links(paths, work / 'fadtk_audio')                 # no convert/ or embeddings/ left from a run before
        for p in paths: fad.cache_embedding_file(folder / p.name)
        return sum(int(np.load(f).shape[0]) for f in (folder / 'embeddings' / ml.name).glob('*.npy'))
    return run


def fadtk_vggish(paths:list[Path], weights:Path, work:Path):
    "fadtk VGGishModel (pre-activation, no PCA: its default)"
    patch_torchaudio(); _quiet()
    torch.hub.set_dir(str(vggish_hub(work / 'hub_fadtk', weights)))
    from fadtk.model_loader import VGGishModel
    ml = VGGishModel(); ml.device = torch.device('cpu'); ml.load_model()
    return fadtk_run(ml, work)


def clap_full_checkpoint(weights:Path, work:Path) -> Path:
    "A published-layout CLAP file with our checkpoint's audio branch and a random roberta-base text tower (what the tools load)"
    p = work / 'clap_full' / weights.name
    if p.exists(): return p
    _offline()
    import refs
    m = refs.clap_module('HTSAT-base', False, small_text=False)
    sd = torch.load(weights, map_location='cpu', weights_only=False)['state_dict']
    audio = {k[len('module.'):]: v for k, v in sd.items() if k.startswith(('module.audio_branch.', 'module.audio_projection.'))}
    missing = [k for k in audio if k not in m.model.state_dict()]
    if missing: raise ValueError(f"{weights}: audio keys the full model lacks, e.g. {missing[0]}")
    m.model.load_state_dict(audio, strict=False)
    p.parent.mkdir(parents=True, exist_ok=True)
    return refs.clap_save_published(m.model, p)


def fadtk_clap(paths:list[Path], weights:Path, work:Path):
    "fadtk CLAPLaionModel('music') (HTSAT-base): 10 s windows every 1 s, one window per call"
    patch_torchaudio(); _quiet(); _offline()
    from fadtk.model_loader import CLAPLaionModel, ModelLoader
    ml = CLAPLaionModel.__new__(CLAPLaionModel)
    ModelLoader.__init__(ml, 'clap-laion-music', 512, 48000)
    ml.type, ml.model_file, ml.device = 'music', clap_full_checkpoint(weights, work), torch.device('cpu')
    ml.load_model()
    return fadtk_run(ml, work)


# ------------------------------------------------------------------ frechet-audio-distance

def _fad(work:Path, paths:list[Path], whole_files:bool=False, **kw):
    "frechet-audio-distance's two steps of score() for one folder: load (ThreadPool(8), resampy), get_embeddings"
    import warnings
    _offline()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from frechet_audio_distance import FrechetAudioDistance
        fad = FrechetAudioDistance(verbose=False, **kw)
    def run(ps):
        audio = fad._FrechetAudioDistance__load_audio_files(str(links(ps, work / 'fad_audio')))
        e = fad.get_embeddings(audio, sr=fad.sample_rate)
        return len(ps) if whole_files else int(e.shape[0])          # PANN: one forward per file (its embeddings are flattened)
    return run


def fad_vggish(paths:list[Path], weights:Path, work:Path):
    "frechet-audio-distance VGGish (no PCA, no final ReLU: its default)"
    return _fad(work, paths, ckpt_dir=str(vggish_hub(work / 'hub_fad', weights)), model_name='vggish', sample_rate=16000)


def fad_pann(paths:list[Path], weights:Path, work:Path):
    "frechet-audio-distance PANN Cnn14_16k: one forward per whole file"
    d = work / 'fad_pann'; d.mkdir(parents=True, exist_ok=True)
    sd = torch.load(weights, map_location='cpu', weights_only=False)['model']
    torch.save({'model': sd}, d / 'Cnn14_16k_mAP%3D0.438.pth')
    return _fad(work, paths, True, ckpt_dir=str(d), model_name='pann', sample_rate=16000)


def fad_clap(paths:list[Path], weights:Path, work:Path):
    "frechet-audio-distance CLAP 'music_audioset' (HTSAT-base): one call per whole file (laion_clap crops one 10 s window at random)"
    d = work / 'fad_clap'; d.mkdir(parents=True, exist_ok=True)
    if not (d / weights.name).exists(): (d / weights.name).symlink_to(clap_full_checkpoint(weights, work).resolve())
    return _fad(work, paths, ckpt_dir=str(d), model_name='clap', submodel_name='music_audioset', sample_rate=48000)


PEERS = {'vggish': {'fadtk': fadtk_vggish, 'frechet-audio-distance': fad_vggish},
         'pann': {'frechet-audio-distance': fad_pann},
         'clap': {'fadtk': fadtk_clap, 'frechet-audio-distance': fad_clap}}
