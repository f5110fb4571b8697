"""Reference outputs of the official openl3 0.4.2 (TensorFlow / Keras 2, kapre 0.3.7) for tests/test_openl3.py.

Runs in the TF reference venv made by `.ci/setup-tfref` (never in the project's venv), with the unpacked openl3 sdist
on PYTHONPATH; tests/test_openl3.py runs it and caches its output. For each input representation it builds openl3's
own audio network with seeded random weights, writes them with Keras `save_weights` (.h5, the layout of the published
v0.4.0 files: the network without front-end layers), loads that file back with openl3's loader, and records openl3's
front ends (kapre, librosa) and embeddings (512, 6144) on a test signal and on a pure tone (and, for mel256, the
weights as Keras holds them). It also records openl3's
framing (`_preprocess_audio_batch`) of several lengths, hops and centrings, as sha256 digests of the frames.

Usage: PYTHONPATH=<openl3-0.4.2> <venv>/bin/python make_tf_reference.py OUT_DIR
"""
import hashlib, json, os, sys, time, warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
warnings.filterwarnings('ignore')
import numpy as np
import tensorflow as tf
import openl3
import openl3.core as C
import openl3.models as M

SR, HOP = 48000, 0.5
REPRS = ('mel128', 'mel256', 'linear')
FRAMING = dict(lengths=(1, 1000, 23999, 24000, 24001, 47999, 48000, 48001, 50000, 72000, 100001),
               hops=(0.1, 0.25, 0.5, 1.0), centers=(True, False))


def test_signal(seconds:float=1.5, # duration
                seed:int=1, # noise seed
               ) -> np.ndarray: # float32 mono signal at 48 kHz
    "Noise, a 440 Hz tone and a chirp, with a nearly silent stretch across a window boundary"
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.2 * rng.standard_normal(t.size) + 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (100 + 4000 * t) * t)
    x[int(0.9 * SR):int(1.1 * SR)] *= 0.01
    return x.astype(np.float32)


def tone(seconds:float=1.0, # duration
         freq:float=1000.0, # Hz
        ) -> np.ndarray: # float32 pure tone at 48 kHz
    "A pure tone: 80 dB of spectrogram range spans the float32 rounding noise of the quiet bins"
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def randomize(model:tf.keras.Model, # openl3 audio network
              seed:int, # numpy seed
             ):
    "Seeded random weights: He-normal kernels, BatchNorm statistics that keep activations O(1) (the input is in dB)"
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if isinstance(layer, tf.keras.layers.Conv2D):
            k, b = ws
            layer.set_weights([rng.standard_normal(k.shape) * np.sqrt(2.0 / np.prod(k.shape[:3])), 0.1 * rng.standard_normal(b.shape)])
        elif isinstance(layer, tf.keras.layers.BatchNormalization):
            n = ws[0].shape[0]
            mean, var = (np.full(n, -40.0), np.full(n, 400.0)) if n == 1 else (0.3 * rng.standard_normal(n), 0.5 + rng.random(n))
            layer.set_weights([0.8 + 0.4 * rng.random(n), 0.1 * rng.standard_normal(n), mean, var])


def keras_weights(model:tf.keras.Model, # a Keras model
                 ) -> dict: # 'kw_<index>_<class>_<weight>' -> array, for the layers with weights, in model order
    "The weights as Keras itself holds them"
    out, i = {}, 0
    for layer in model.layers:
        if not layer.weights: continue
        for v, a in zip(layer.weights, layer.get_weights()):
            out[f'kw_{i:02d}_{type(layer).__name__}_{v.name.split("/")[-1].split(":")[0]}'] = a
        i += 1
    return out


def embeddings(h5:str, # weights written by Keras
               repr_:str, # input representation
               inputs:dict, # name -> (mono signal at 48 kHz, hop_size, center)
              ) -> dict: # '<name>_emb_<frontend>_<size>' -> (frames, size), and 'spec_kapre' of the first input
    "openl3.get_audio_embedding with the model openl3 loads from the file: both front ends, both sizes, each input"
    out = {}
    for frontend in ('kapre', 'librosa'):
        for size in (512, 6144):
            m = M.load_audio_embedding_model_from_path(h5, repr_, size, frontend=frontend)
            for name, (audio, hop, center) in inputs.items():
                e, _ = openl3.get_audio_embedding(audio, SR, model=m, hop_size=hop, center=center, frontend=frontend,
                                                  input_repr=repr_, verbose=False)
                out[f'{name}_emb_{frontend}_{size}'] = e
            if frontend == 'kapre' and size == 512:      # the kapre front-end block alone: the network's input
                audio, hop, center = next(iter(inputs.values()))
                spec = [l for l in m.layers if isinstance(l, tf.keras.Sequential)][0]
                frames = C._preprocess_audio_batch(audio, SR, center=center, hop_size=hop)
                out['spec_kapre'] = spec(tf.constant(frames)).numpy()[..., 0]
    return out


def framing_digests() -> dict: # 'n_hop_center' -> [n_frames, sha256 of the float32 frames]
    "openl3's framing of a seeded signal (`default_rng(n)` normal, float32), for several lengths, hops and centrings"
    out = {}
    for n in FRAMING['lengths']:
        a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        for hop in FRAMING['hops']:
            for center in FRAMING['centers']:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    fr = np.ascontiguousarray(C._preprocess_audio_batch(a, SR, center=center, hop_size=hop), dtype=np.float32)
                out[f'{n}_{hop}_{center}'] = [int(fr.shape[0]), hashlib.sha256(fr.tobytes()).hexdigest()]
    return out


def main(out_dir:str): # output directory
    "Write weights, reference outputs, framing digests and versions"
    os.makedirs(out_dir, exist_ok=True)
    audio, pure = test_signal(), tone()
    frames = C._preprocess_audio_batch(audio, SR, center=True, hop_size=HOP)        # (n, 1, 48000)
    tone_frames = C._preprocess_audio_batch(pure, SR, center=False, hop_size=1.0)    # one window
    for seed, repr_ in enumerate(REPRS):
        t0 = time.time()
        bare = M.AUDIO_MODELS[repr_](include_frontend=False)
        randomize(bare, seed)
        h5 = os.path.join(out_dir, f'openl3_audio_{repr_}_music.h5')
        bare.save_weights(h5)
        res = dict(audio=audio, frames=frames, hop=HOP, tone=pure, tone_frames=tone_frames)
        if repr_ == 'mel256': res.update(keras_weights(bare))
        res.update(embeddings(h5, repr_, {'audio': (audio, HOP, True), 'tone': (pure, 1.0, False)}))
        res['spec_librosa'] = openl3.preprocess_audio(audio, SR, hop_size=HOP, input_repr=repr_, center=True)[..., 0]
        np.savez(os.path.join(out_dir, f'ref_{repr_}.npz'), **res)
        print(f'{repr_}: {time.time() - t0:.1f} s', flush=True)
    with open(os.path.join(out_dir, 'framing.json'), 'w') as f: json.dump(framing_digests(), f)
    versions = dict(tensorflow=tf.__version__, keras=__import__('keras').__version__, openl3=openl3.__version__,
                    kapre=__import__('kapre').__version__, librosa=__import__('librosa').__version__, numpy=np.__version__)
    with open(os.path.join(out_dir, 'versions.json'), 'w') as f: json.dump(versions, f)
    print('versions', versions)


if __name__ == '__main__':
    main(sys.argv[1])
