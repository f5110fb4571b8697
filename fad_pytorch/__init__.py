__version__ = "0.1.0"

def __getattr__(name):
    "The Python APIs users know from other tools, imported on first use (so `import fad_pytorch` stays light)"
    if name in ('calculate_metrics', 'FrechetAudioDistance'):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'fad_pytorch' has no attribute {name!r}")
