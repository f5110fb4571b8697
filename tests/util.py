"""Helpers shared by the tests: run the command line programs as real programs (N real processes via torchrun)."""
import contextlib, os, subprocess, sys
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


def free_port() -> int:
    "A TCP port of 127.0.0.1 that nothing listens on now"
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def run_nodes(prog:str, # program
              *args, # its arguments
              nodes:int=2, # launchers, one per "node", each with one process
              env:dict|None=None, # extra environment variables
              timeout:float=600, # seconds
             ) -> list[subprocess.CompletedProcess]: # one per launcher, in node-rank order
    "Run a program as a multi-node launch on this machine: `nodes` torchrun launchers joined by a c10d rendezvous on 127.0.0.1"
    exe = Path(sys.executable).parent / prog
    port, e = free_port(), {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    procs = []
    for rank in range(nodes):
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', str(nodes), '--node_rank', str(rank), '--nproc_per_node', '1',
               '--rdzv_backend', 'c10d', '--rdzv_endpoint', f'127.0.0.1:{port}', '--rdzv_id', f'test-{port}', '--local_addr', '127.0.0.1',
               '--no-python', '--', str(exe), *map(str, args)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e))
    out = []
    for p in procs:
        try: so, se = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs: q.kill()
            raise
        out.append(subprocess.CompletedProcess(p.args, p.returncode, so, se))
    for i, r in enumerate(out):
        if r.returncode != 0: raise AssertionError(f"node {i}: {prog} exited {r.returncode}\nstderr:\n{r.stderr[-5000:]}")
    return out


def make_tar(path:Path, # the shard to write
             members:dict, # member name -> bytes, in this order
            ) -> Path:
    "A WebDataset shard (a plain tar file)"
    import io, tarfile
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, 'w') as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
    return path


@contextlib.contextmanager
def s3_server(bucket:str='fadtest', # the one bucket it starts with
             ):
    "moto's S3 server on 127.0.0.1 (a real S3-compatible HTTP server) with one empty bucket: yields (endpoint URL, boto3 client)"
    import boto3
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
    server.start()
    try:
        url = f'http://127.0.0.1:{port}'
        c = boto3.client('s3', endpoint_url=url, aws_access_key_id='k', aws_secret_access_key='s', region_name='us-east-1')
        c.create_bucket(Bucket=bucket)
        yield url, c
    finally: server.stop()
