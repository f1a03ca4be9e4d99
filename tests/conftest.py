import os
import sys
from pathlib import Path

# tests import helpers.py from this folder
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HPCW_PROFILE_PATH", "")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests judge what a call returns, never how long it took: hypothesis's per-example deadline (200 ms) and
# its too-slow health check are timings, and a busy 2-core machine (CI, or a run beside other work) trips them
# with correct code. The number of examples each test draws stays as set.
settings.register_profile("hpcwidgets", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hpcwidgets")


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


@pytest.fixture(autouse=True)
def _forms_ask_slurm_afresh():
    """Forms remember what Slurm said for a minute; each test starts with what its own stand-ins say."""
    yield
    builder = sys.modules.get("hpcwidgets.widgets.builder")
    if builder is not None:
        builder.forget_cluster_answers()


@pytest.fixture(autouse=True)
def _cancel_jobs_a_real_test_left(request):
    """A real test that fails between sbatch and scancel must not leave a job holding the practice cluster's
    two nodes: later tests would wait behind it, and one failure would look like many.

    Only the practice cluster is asked (its own slurm.conf, whatever SLURM_CONF the shell has) and only for this
    user's jobs: on a login node, a job the user submits to the site's cluster while the tests run is theirs to keep."""
    if request.node.get_closest_marker("real") is None:
        yield
        return
    import getpass
    from hpcwidgets.errors import RunError
    from hpcwidgets.run import practice_cluster, slurm

    conf = practice_cluster.env()["SLURM_CONF"]

    def active() -> set[str]:
        if not os.path.isfile(conf):
            return set()
        try:
            proc = slurm._run(["squeue", "-h", "-u", getpass.getuser(), "-t", "PD,R,CF,S", "-o", "%A"],
                              env={"SLURM_CONF": conf})
        except (RunError, OSError):
            return set()
        return set(proc.stdout.split()) if proc.returncode == 0 else set()

    before = active()
    yield
    left = sorted(active() - before)
    if left:
        try:
            slurm._run(["scancel", *left], env={"SLURM_CONF": conf})
        except (RunError, OSError):
            pass
