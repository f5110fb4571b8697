"""The command lines behave the same with fastcore 1 (what nbdev 2 needs) and fastcore 2 (what users may have):
dash-spelled flags, variadic directories, three-state booleans. fastcore 2 is installed into a temporary directory
from the package registry and put first on the path of a real `fad_score` / `fad_embed` run."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, soundfile as sf
from util import run


@pytest.fixture(scope='module')
def fastcore2(tmp_path_factory):
    d = tmp_path_factory.mktemp('fastcore2')
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(d), 'fastcore>=2,<3'],
                       capture_output=True, text=True)
    if r.returncode != 0: pytest.fail(f"could not install fastcore 2 from the registry:\n{r.stderr[-2000:]}")
    out = subprocess.run([sys.executable, '-c', 'import fastcore; print(fastcore.__version__)'], capture_output=True,
                         text=True, env={**os.environ, 'PYTHONPATH': str(d)})
    assert out.stdout.startswith('2.'), out
    return d


@pytest.mark.parametrize('which', ['installed', 'fastcore2'])
def test_cli_same_on_fastcore_1_and_2(tmp_path, request, which):
    env = {'PYTHONPATH': str(request.getfixturevalue('fastcore2'))} if which == 'fastcore2' else {}
    ver = subprocess.run([sys.executable, '-c', 'import fastcore; print(fastcore.__version__)'], capture_output=True,
                         text=True, env={**os.environ, **env}).stdout
    assert ver.startswith('2.' if which == 'fastcore2' else '1.')
    h = run('fad_embed', '--help', env=env).stdout
    for flag in ('--batch-size', '--num-workers', '--on-error', '--no-recursive', '--center', '--overwrite'): assert flag in h
    src = tmp_path / 'a'; src.mkdir()
    g = np.random.default_rng(0)
    for i in range(3): sf.write(src / f'{i}.wav', g.standard_normal(30000).astype(np.float32) * 0.1, 16000)
    run('fad_embed', 'logmel', src, src, '--out', tmp_path / 'o', '--batch-size', 4, '--no-recursive', '--on-error', 'skip', env=env)
    r = run('fad_score', tmp_path / 'o/a_emb_logmel', tmp_path / 'o/a_emb_logmel', '--json', '--save-stats', tmp_path / 's', env=env)
    assert json.loads(r.stdout)['fad'] < 1e-9 and (tmp_path / 's_real.npz').exists()
