import pytest


@pytest.fixture
def offline(tmp_path, monkeypatch):
    "No downloads (FAD_OFFLINE=1), an empty weights cache in tmp_path, no $FAD_WEIGHTS_DIR: where a missing file is reported"
    monkeypatch.setenv('FAD_OFFLINE', '1'); monkeypatch.setenv('FAD_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.delenv('FAD_WEIGHTS_DIR', raising=False)
