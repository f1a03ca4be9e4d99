"""The Submit button and job panel against the real practice cluster (not a stand-in)."""

import time

import pytest

from helpers import need

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def slurm_here():
    from hpcwidgets.run import slurm
    from hpcwidgets.run.practice_cluster import client_env
    env = client_env()
    need(slurm.available(env), "no reachable Slurm (start it with: hpcwidgets practice-cluster up)")
    return env


def _wait(cond, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.25)
    return False


def test_submit_button_runs_the_job_and_the_panel_follows_it(slurm_here, tmp_path, monkeypatch):
    from hpcwidgets.spec import SlurmJob
    from hpcwidgets.widgets import SlurmBuilder
    monkeypatch.chdir(tmp_path)
    for k, v in slurm_here.items():
        monkeypatch.setenv(k, v)
    job_model = SlurmJob(job_name="widget-submit", partition="debug", time="2", output="%x-%j.out",
                         commands=("echo hello from the form",))
    b = SlurmBuilder.from_spec(job_model, profile="local", poll_seconds=0.5)
    assert b.submit_button.layout.display != "none" and not b.submit_button.disabled  # sbatch is here
    b.submit_button.click()  # what a person does
    panel = b.job_panel
    assert panel.job is not None
    assert _wait(lambda: panel.state == "COMPLETED"), (panel.state, panel.summary.value)
    # a final state is published after that poll's output and the disabled Cancel; the thread ends a moment later
    assert "hello from the form" in panel.output_view.value
    assert panel.cancel_button.disabled
    assert _wait(lambda: not panel.polling), "the panel must stop following a finished job"


def test_cancel_from_the_panel(slurm_here, tmp_path, monkeypatch):
    from hpcwidgets.spec import SlurmJob
    from hpcwidgets.widgets import SlurmBuilder
    monkeypatch.chdir(tmp_path)
    for k, v in slurm_here.items():
        monkeypatch.setenv(k, v)
    b = SlurmBuilder.from_spec(SlurmJob(job_name="widget-cancel", partition="debug", time="2",
                                        commands=("sleep 120",)), profile="local", poll_seconds=0.5)
    job = b.submit()
    assert _wait(lambda: b.job_panel.state in ("PENDING", "RUNNING"))
    b.job_panel.cancel_button.click()
    assert _wait(lambda: b.job_panel.state == "CANCELLED"), b.job_panel.state
    assert job.state() == "CANCELLED"
