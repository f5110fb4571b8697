"""Helpers shared by the tests: run the command line programs as real programs (N real processes via torchrun)."""
import os, subprocess, sys
from pathlib import Path

def run(prog:str, # program: 'fad_score', 'fad_embed', 'fad_gen', ...
        *args, # its arguments
        nproc:int=1, # number of processes (more than 1: torchrun --standalone, gloo on CPU)
        env:dict|None=None, # extra environment variables
        check:bool=True, # raise if the exit code is not 0
        timeout:float=600, # seconds
       ) -> subprocess.CompletedProcess:
    "Run a fad_pytorch program, as the installed console script when there is one"
    exe = Path(sys.executable).parent / prog
    cmd = [str(exe)] if exe.exists() else [sys.executable, '-c', f"import sys; from fad_pytorch.{prog} import main; sys.exit(main())"]
    if nproc > 1:
        # '--': torchrun's parser would take the program's options for abbreviations of its own (--n: ambiguous)
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', '--no-python', '--'] + cmd
    e = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=e, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{prog} {' '.join(map(str, args))} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}")
    return r
