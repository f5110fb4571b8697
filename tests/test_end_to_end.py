"""The whole path as users run it: fad_gen -> fad_embed -> fad_score, real programs, a TorchScript generator made here.
An identity generator must give FAD 0 (fakes are the reals); a degrading one a clearly larger FAD; two processes the
same numbers as one."""
import json
from pathlib import Path
import numpy as np, pytest, soundfile as sf, torch
from util import run
from fad_pytorch.fad_score import calc_score


class Identity(torch.nn.Module):
    def forward(self, x): return x

class Muffle(torch.nn.Module):
    "A moving-average low-pass plus a little hum: the kind of damage FAD should see"
    def forward(self, x):
        k = torch.ones(x.shape[1], 1, 31) / 31
        y = torch.nn.functional.conv1d(x, k, padding=15, groups=x.shape[1])
        t = torch.arange(x.shape[-1], dtype=x.dtype) / 16000
        return y + 0.05 * torch.sin(2 * torch.pi * 60 * t)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('e2e')
    g = np.random.default_rng(0)
    (d / 'src').mkdir()
    for i in range(48):                                    # 48 files of 3 s: music-like tones and noise
        t = np.arange(48000) / 16000
        x = sum(0.2 / h * np.sin(2 * np.pi * 220 * 2 ** (g.integers(0, 12) / 12) * h * t) for h in range(1, 6))
        x = x + 0.05 * g.standard_normal(len(t))
        sf.write(d / f'src/{i}.wav', np.stack([x, x], 1).astype(np.float32), 16000)
    for name, m in (('identity', Identity()), ('muffle', Muffle())):
        torch.jit.script(m).save(str(d / f'{name}.ts'))
    return d


def test_gen_embed_score(setup, tmp_path):
    d = setup
    common = ['--sample-rate', 16000, '--sample-size', 32000, '--batch-size', 4, '--n', 48, '--seed', 1]
    for name in ('identity', 'muffle'):
        run('fad_gen', tmp_path / name, d / f'{name}.ts', d / 'src', *common)
    for name in ('identity', 'muffle'):
        assert len(list((tmp_path / f'{name}_reals').glob('*.wav'))) == 48 == len(list((tmp_path / f'{name}_fakes').glob('*.wav')))
        run('fad_embed', 'logmel', tmp_path / f'{name}_reals', tmp_path / f'{name}_fakes', '--out', tmp_path / 'emb')
    e = tmp_path / 'emb'
    same = calc_score(e / 'identity_reals_emb_logmel', e / 'identity_fakes_emb_logmel')
    damaged = calc_score(e / 'muffle_reals_emb_logmel', e / 'muffle_fakes_emb_logmel')
    assert abs(same) < 1e-9, same                        # identity generator: the fakes are the reals
    assert damaged > 1.0, damaged
    # the same seed gives the same reals whatever the model, so both reals sets score 0 against each other
    assert calc_score(e / 'identity_reals_emb_logmel', e / 'muffle_reals_emb_logmel') < 1e-9
    r = run('fad_score', e / 'muffle_reals_emb_logmel', e / 'muffle_fakes_emb_logmel', '--json')
    assert abs(json.loads(r.stdout)['fad'] - damaged) <= 1e-9 * damaged


def test_two_processes_end_to_end(setup, tmp_path):
    d = setup
    common = ['--sample-rate', 16000, '--sample-size', 32000, '--batch-size', 3, '--n', 47, '--seed', 2]
    run('fad_gen', tmp_path / 'one', d / 'muffle.ts', d / 'src', *common)
    run('fad_gen', tmp_path / 'two', d / 'muffle.ts', d / 'src', *common, nproc=2)
    for side in ('reals', 'fakes'):
        a, b = sorted((tmp_path / f'one_{side}').glob('*.wav')), sorted((tmp_path / f'two_{side}').glob('*.wav'))
        assert [p.name for p in a] == [p.name for p in b] and len(a) == 47
        assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b))
    run('fad_embed', 'logmel', tmp_path / 'one_reals', tmp_path / 'one_fakes', '--out', tmp_path / 'e1')
    run('fad_embed', 'logmel', tmp_path / 'two_reals', tmp_path / 'two_fakes', '--out', tmp_path / 'e2', nproc=2)
    f1 = calc_score(tmp_path / 'e1/one_reals_emb_logmel', tmp_path / 'e1/one_fakes_emb_logmel')
    f2 = calc_score(tmp_path / 'e2/two_reals_emb_logmel', tmp_path / 'e2/two_fakes_emb_logmel')
    assert f1 > 0 and abs(f1 - f2) <= 1e-9 * f1
