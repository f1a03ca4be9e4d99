"""The practice cluster: configuration text (pure) and a real second cluster brought up and down.

The real tests start their OWN cluster in a temporary state directory on other ports, so the shared
practice cluster other people are using is never stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.errors import RunError
from hpcwidgets.run import practice_cluster as pc


def conf_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " not in line and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------------- pure

def test_slurm_conf_has_the_required_settings():
    layout = pc.Layout(Path("/srv/pc"))
    text = pc.slurm_conf_text(layout, "host1", port=20000)
    conf = conf_lines(text)
    assert conf["ClusterName"] == "practice"
    assert conf["SlurmctldHost"] == "host1(127.0.0.1)"
    assert conf["SlurmctldPort"] == "20000"
    assert conf["SelectType"] == "select/cons_tres"
    assert conf["GresTypes"] == "gpu"
    assert conf["ProctrackType"] == "proctrack/linuxproc"
    assert conf["TaskPlugin"] == "task/none"
    assert conf["JobCompType"] == "jobcomp/filetxt"
    assert conf["JobCompLoc"] == "/srv/pc/log/jobcomp.txt"
    assert conf["AuthInfo"] == "socket=/srv/pc/munge/munge.socket.2"
    assert conf["SlurmdSpoolDir"] == "/srv/pc/spool/%n"
    assert conf["ReturnToService"] == "2"
    # every path the daemons write lives inside the state directory
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldPidFile", "SlurmdPidFile", "SlurmctldLogFile",
                "SlurmdLogFile", "JobCompLoc"):
        assert conf[key].startswith("/srv/pc/"), key


def test_slurm_conf_nodes_and_partition():
    text = pc.slurm_conf_text(pc.Layout(Path("/x")), "host1", port=20000)
    node_lines = [line for line in text.splitlines() if line.startswith("NodeName=")]
    assert len(node_lines) == 2
    assert "NodeName=n1 NodeHostname=host1 NodeAddr=127.0.0.1 Port=20001 CPUs=2 RealMemory=3900 Gres=gpu:2" \
        in node_lines[0]
    assert "NodeName=n2 " in node_lines[1] and "Port=20002" in node_lines[1]
    part = [line for line in text.splitlines() if line.startswith("PartitionName=")]
    assert part == ["PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=01:00:00 State=UP"]


def test_gres_conf_points_at_two_device_files_per_node():
    layout = pc.Layout(Path("/x"))
    text = pc.gres_conf_text(layout)
    assert "NodeName=n1 Name=gpu File=/x/dev/nvidia[0-1]" in text
    assert "NodeName=n2 Name=gpu File=/x/dev/nvidia[2-3]" in text
    assert [m for _, m in layout.gpu_devices("n2")] == [2, 3]


def test_daemons_are_recognised_by_their_config_not_by_name():
    layout = pc.Layout(Path("/x"))
    names = [d.name for d in pc.daemons(layout)]
    assert names == ["munged", "slurmctld", "slurmd n1", "slurmd n2"]
    ctld = pc.daemons(layout)[1]
    # this test process is not slurmctld, so its PID must not count as the daemon
    assert not pc._is_ours(os.getpid(), ctld)


def test_env_and_cli_env_print_the_export_line(capsys, tmp_path):
    assert pc.env(tmp_path) == {"SLURM_CONF": str(tmp_path / "slurm.conf")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(pc.DIR_ENV, str(tmp_path / "my dir"))
        assert pc.main(["env"]) == 0
    assert capsys.readouterr().out == f"export SLURM_CONF='{tmp_path}/my dir/slurm.conf'\n"


def test_client_env_keeps_an_explicit_slurm_conf(tmp_path):
    base = {"SLURM_CONF": "/etc/site/slurm.conf", pc.DIR_ENV: str(tmp_path)}
    assert pc.client_env(base)["SLURM_CONF"] == "/etc/site/slurm.conf"


def test_client_env_ignores_a_cluster_that_is_not_up(tmp_path):
    (tmp_path / "slurm.conf").write_text("ClusterName=practice\n")
    out = pc.client_env({pc.DIR_ENV: str(tmp_path), "PATH": "/usr/bin"})
    assert "SLURM_CONF" not in out
    assert out["PATH"] == "/usr/bin"


def test_bad_port_variable_is_reported():
    with pytest.raises(RunError, match="HPCW_CLUSTER_PORT"):
        pc.cluster_port({pc.PORT_ENV: "80"})
    assert pc.cluster_port({}) == pc.DEFAULT_PORT


def test_status_of_an_empty_directory_is_stopped(tmp_path):
    st = pc.status(tmp_path)
    assert st.stopped and not st.running
    assert "stopped" in str(st)


# --------------------------------------------------------------------------------------------------- real

def _can_run_cluster() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "the practice cluster needs root"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return False, "no Slurm and no apt-get to install it"
    return True, ""


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{entry.name}: {cmd}")
    return found


@pytest.fixture(scope="module")
def second_cluster():
    ok, reason = _can_run_cluster()
    need(ok, reason)
    # /var/tmp rather than pytest's tmp dirs: munged (user munge) must be able to reach its key
    root = Path(tempfile.mkdtemp(prefix="hpcw-test-cluster-", dir="/var/tmp"))
    port = pc.DEFAULT_PORT + 100
    try:
        yield root, port
    finally:
        pc.down(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.real
def test_up_twice_then_down_leaves_nothing_running(second_cluster):
    root, port = second_cluster
    first = pc.up(root, port=port, image=False)
    assert first.running, str(first)
    assert sorted(line.split()[0] for line in first.sinfo) == ["n1", "n2"]
    assert all(" idle " in f" {line} " for line in first.sinfo), first.sinfo

    second = pc.up(root, port=port, image=False)  # idempotent: the same daemons keep running
    assert second.daemons == first.daemons

    # a real job on this cluster, through its own SLURM_CONF
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    proc = subprocess.run(["srun", "-N", "2", "--ntasks-per-node=1", "printenv", "SLURMD_NODENAME"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == ["n1", "n2"]

    conf = str(root / "slurm.conf")
    assert len(_processes_mentioning(conf)) == 3  # slurmctld and two slurmd
    stopped = pc.down(root)
    assert stopped.stopped, str(stopped)
    assert _processes_mentioning(conf) == []
    assert _processes_mentioning(str(root / "munge" / "munge.socket.2")) == []
    assert not list((root / "run").glob("*.pid"))
    assert pc.down(root).stopped  # idempotent

    again = pc.up(root, port=port, image=False)
    assert again.running and len(again.sinfo) == 2


@pytest.mark.real
def test_hosts_file_names_the_nodes_once(second_cluster):
    root, port = second_cluster
    pc.up(root, port=port, image=False)
    text = pc.HOSTS_FILE.read_text()
    assert text.count(pc.HOSTS_MARKER) == 1
    for node in pc.NODES:
        proc = subprocess.run(["getent", "hosts", node], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.split()[0] == "127.0.0.1"


@pytest.mark.real
def test_fake_gpus_are_character_devices(second_cluster):
    root, port = second_cluster
    pc.up(root, port=port, image=False)
    layout = pc.Layout(root)
    for node in pc.NODES:
        for path, minor in layout.gpu_devices(node):
            st = path.lstat()
            assert os.major(st.st_rdev) == 195 and os.minor(st.st_rdev) == minor


@pytest.mark.real
def test_down_leaves_a_foreign_pid_alone(second_cluster, tmp_path):
    root, port = second_cluster
    pc.up(root, port=port, image=False)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ctld = next(d for d in pc.daemons(pc.Layout(root)) if d.name == "slurmctld")
        real_pid = ctld.pid_file.read_text().strip()
        ctld.pid_file.write_text(f"{sleeper.pid}\n")  # a recycled PID: must not be killed
        pc.down(root)
        assert sleeper.poll() is None, "down() killed a process that was not its daemon"
        # the real slurmctld was not recognised through the tampered PID file; stop it by its true PID
        if Path(f"/proc/{real_pid}").exists():
            ctld.pid_file.write_text(real_pid + "\n")
            pc.down(root)
        assert _processes_mentioning(str(root / "slurm.conf")) == []
    finally:
        sleeper.kill()
        sleeper.wait()


def _job_processes(conf: Path) -> list[int]:
    """Processes of a job of the cluster whose configuration is ``conf``: they carry its SLURM_CONF and a job id."""
    mine = f"SLURM_CONF={conf}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mine in environ and any(v.startswith(b"SLURM_JOB_ID=") for v in environ):
            found.append(int(entry.name))
    return found


@pytest.mark.real
def test_up_after_the_daemons_died_forgets_their_jobs(second_cluster, tmp_path):
    """The daemons die under a running job (a machine or container restarted, a kill -9). The controller recovers
    the job from its state files as running, and Slurm would re-queue and run it again; `up` cancels it and stops
    its leftover processes, so the nodes are free at once."""
    import signal
    import time
    root, port = second_cluster
    pc.up(root, port=port, image=False)
    conf = root / "slurm.conf"
    env = {**os.environ, "SLURM_CONF": str(conf)}
    script = tmp_path / "long.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH -N 2\n#SBATCH --ntasks-per-node=2\n#SBATCH --output={tmp_path}/long.out\n"
                      "srun sleep 600\n")
    job = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    deadline = time.monotonic() + 60
    while len(_job_processes(conf)) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(_job_processes(conf)) >= 4, "the job's four tasks did not start"

    layout = pc.Layout(root)
    for d in pc.daemons(layout):
        if d.program != "munged":
            os.kill(int(d.pid_file.read_text()), signal.SIGKILL)
    for line in subprocess.run(["pgrep", "-f", "slurmstepd"], capture_output=True, text=True).stdout.split():
        if int(line) in _job_processes(conf) or f"SLURM_CONF={conf}".encode() in \
                Path(f"/proc/{line}/environ").read_bytes().split(b"\0"):
            os.kill(int(line), signal.SIGKILL)
    time.sleep(1)
    assert pc.status(root).daemons["slurmctld"] is None
    assert _job_processes(conf), "killing the daemons took the job's programs with it; nothing is left to clean"

    again = pc.up(root, port=port, image=False)
    assert again.running, str(again)
    queue = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, env=env, timeout=30)
    assert queue.stdout.strip() == "", f"job {job} outlived its daemons: {queue.stdout}"
    assert _job_processes(conf) == []
    # both nodes, every CPU, are free for the next job now, not when Slurm notices in minutes
    proc = subprocess.run(["srun", "-N", "2", "--ntasks-per-node=2", "--immediate=20", "true"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
