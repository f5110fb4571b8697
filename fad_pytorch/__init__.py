__version__ = "0.1.0"

# Idle OpenMP threads of torch sleep instead of spinning, unless the user chose otherwise. It changes no result (the
# same threads split the same work) and, with decode workers or other jobs on the same cores, spinning threads steal
# the cores the work needs (engine 1.3-1.6x faster with it on a busy 2-core machine). It must be set
# before torch is first imported, so it lives here; OMP_WAIT_POLICY=ACTIVE restores OpenMP's default.
import os as _os
_os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

def __getattr__(name):
    "The Python APIs users know from other tools, imported on first use (so `import fad_pytorch` stays light)"
    if name in ('calculate_metrics', 'FrechetAudioDistance'):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'fad_pytorch' has no attribute {name!r}")
