import os
import sys
from pathlib import Path

# tests import helpers.py from this folder
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HPCW_PROFILE_PATH", "")

import pytest  # noqa: E402


@pytest.fixture
def isolated_profiles(tmp_path, monkeypatch):
    """No test sees the real ~/.config or a $HPCW_PROFILE_PATH from the environment."""
    from hpcwidgets.profiles import clear_cache
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HPCW_PROFILE_PATH", "")
    yield
    clear_cache()
