"""Write a small, generated example: `real/` and two candidate sets, `fake_close/` (same kind of sound, other random
draws) and `fake_far/` (duller and noisier). Usage: python make_example.py OUT_DIR [--n 24] [--seconds 4]"""
import argparse
from pathlib import Path
import numpy as np, soundfile as sf

def clip(g, sr, seconds, dull=False):
    "A few seconds of music-like audio: harmonic notes with envelopes, and noise-burst drums"
    t = np.arange(int(sr * seconds)) / sr
    x = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.5):
        f0, amp = 110 * 2 ** (g.integers(0, 24) / 12), g.uniform(0.05, 0.2)
        env = np.exp(-np.clip(t - start, 0, None) * 4) * (t >= start)
        for h in range(1, 4 if dull else 9):
            x += amp / h * env * np.sin(2 * np.pi * f0 * h * t + g.uniform(0, 2 * np.pi))
    hits = (np.arange(int(seconds * 4)) * sr // 4)
    for s in hits:
        n = min(2000, len(t) - s)
        x[s:s + n] += g.standard_normal(n) * np.exp(-np.arange(n) / 300) * (0.3 if not dull else 0.05)
    if dull: x += g.standard_normal(len(t)) * 0.02
    return (x / max(1.0, np.abs(x).max())).astype(np.float32)

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('out'); p.add_argument('--n', type=int, default=24); p.add_argument('--seconds', type=float, default=4.0)
    a = p.parse_args()
    for name, seed, dull in (('real', 0, False), ('fake_close', 1, False), ('fake_far', 2, True)):
        d = Path(a.out) / name; d.mkdir(parents=True, exist_ok=True)
        g = np.random.default_rng(seed)
        for i in range(a.n):
            x = clip(g, 44100, a.seconds, dull)
            sf.write(d / f'{i:03d}.flac', np.stack([x, np.roll(x, 7)], 1), 44100)
    print(f"wrote {3 * a.n} files under {a.out}")

if __name__ == '__main__':
    main()
