"""End to end on real components: the practice cluster's Slurm 22.05 and Charliecloud's ch-run.

Every test here submits real jobs. They need the practice cluster up (started by the session fixture
when this runs as root) and the Charliecloud trainer image (:func:`hpcwidgets.run.images.ensure_trainer_image`,
built once, ~2 minutes). Without Slurm or Charliecloud the tests skip, or fail when ``HPCW_REQUIRE_REAL=1``.

Training is real but short (3 epochs of scikit-learn's digits): the whole file takes about three minutes
on two cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import need, need_tool
from hpcwidgets.examples import SWEEP_LEARNING_RATES, Example, examples
from hpcwidgets.fixes import fix_script
from hpcwidgets.payload import path as payload_path
from hpcwidgets.profiles import list_profiles, load_profile
from hpcwidgets.render import render
from hpcwidgets.run import practice_cluster as pc
from hpcwidgets.run import slurm
from hpcwidgets.spec.units import format_time, parse_time

pytestmark = pytest.mark.real

TESTS = Path(__file__).resolve().parent
SHIMS = TESTS / "shims"
SEED_DECK = Path(os.environ.get("HPCW_SOURCE_DECK", "/work/shared/seed/000_232e9879c9e13462.txt"))
EPOCHS = "3"
#: seconds a job may take before a test gives up (the slowest here trains 4 ranks for ~40 s)
JOB_TIMEOUT = 300.0


# ------------------------------------------------------------------------------------------------
# fixtures

def _user() -> str:
    import pwd
    return os.environ.get("USER") or pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture(scope="session")
def cluster() -> dict[str, str]:
    """The practice cluster, up, and the trainer image, built: returns the client environment."""
    need_tool("sbatch", "Slurm's client programs (apt-get install slurm-client)")
    need_tool("ch-run", "Charliecloud (apt-get install charliecloud-runtime)")
    st = pc.status()
    if not st.running:
        need(os.geteuid() == 0, "the practice cluster is not up and starting it needs root "
                                "(run: sudo hpcwidgets practice-cluster up)")
        st = pc.up(install=False, image=False)
    need(st.running, f"the practice cluster did not start: {st}")
    from hpcwidgets.run.images import TRAINER_IMAGE, check_image, ensure_trainer_image, read_marker
    if os.geteuid() == 0:
        ensure_trainer_image()
    else:
        need(read_marker(TRAINER_IMAGE) is not None,
             f"no trainer image at {TRAINER_IMAGE}; build it as root with: hpcwidgets practice-cluster up")
    check_image(TRAINER_IMAGE)
    return {"SLURM_CONF": str(st.slurm_conf), "USER": _user()}


@pytest.fixture
def on_cluster(cluster, monkeypatch) -> dict[str, str]:
    """Client programs and the jobs they submit see the practice cluster; ch-run needs USER."""
    for key, value in cluster.items():
        monkeypatch.setenv(key, value)
    return cluster


def _with_epochs(example: Example, epochs: str = EPOCHS, **srun_fields):
    """The example's model training for ``epochs`` (the one argument changed)."""
    m = example.model

    def swap(args: tuple[str, ...]) -> tuple[str, ...]:
        words = list(args)
        words[words.index("--epochs") + 1] = epochs
        return tuple(words)

    if m.launcher is not None:
        m = m.replace(launcher=m.launcher.replace(args=swap(m.launcher.args)))
    else:
        m = m.replace(program=swap(m.program))
    if srun_fields:
        m = m.replace(srun=m.srun.replace(**srun_fields))
    return m


def _workdir() -> Path:
    """Where the local examples write results (one folder per job)."""
    return Path(load_profile("local").examples.workdir)


def _epoch_losses(text: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"epoch=\d+ loss=([0-9.]+)", text)]


def _submit_cli(script: Path, capsys) -> tuple[int, str, str, Path]:
    """``hpcwidgets submit SCRIPT --wait`` through the CLI's main(): (exit, job id, state, output path)."""
    from hpcwidgets.cli import main
    capsys.readouterr()
    rc = main(["submit", str(script), "--wait", "--timeout", str(JOB_TIMEOUT)])
    out = capsys.readouterr().out.split("\n")
    job_id = out[0].strip()
    state, _, path = out[1].partition(" ")
    return rc, job_id, state, Path(path)


# ------------------------------------------------------------------------------------------------
# the trainer image

def test_trainer_image_matches_its_recipe(cluster):
    """The image holds what ensure_trainer_image promises: the marker equals the recipe of this
    environment, torch and its requirements are in the venv, the bind mount points exist."""
    from hpcwidgets.run import images
    source = images.site_packages_of("torch")
    closure = images.distribution_closure(source)
    assert {"torch", "numpy", "scikit-learn", "scipy", "sympy", "jinja2"} <= set(closure)
    assert "pytest" not in closure and "hpcwidgets" not in closure
    assert images.read_marker(images.TRAINER_IMAGE) == images.recipe(source)
    assert all((images.TRAINER_IMAGE / f"mnt/{i}").is_dir() for i in range(10))
    site = next((images.TRAINER_IMAGE / images.VENV.lstrip("/")).glob("lib/python3*/site-packages"))
    assert {"torch", "sklearn", "numpy"} <= {p.name for p in site.iterdir()}
    assert images.ensure_trainer_image().built is False  # idempotent: nothing to do


# ------------------------------------------------------------------------------------------------
# a. every example is valid sbatch input

def _cap(value, limit):
    return None if value is None else min(value, limit)


def _retarget(job):
    """The job moved to the practice cluster: partition debug, limits capped to its nodes (2 CPUs,
    3900M, 2 GPUs without a type, 1 hour), site-only settings (account, QOS, constraint) dropped."""
    return job.replace(
        partition=pc.PARTITION, account="", qos="", constraint="", gpu_type="",
        nodes=_cap(job.nodes, len(pc.NODES)), ntasks_per_node=_cap(job.ntasks_per_node, pc.CPUS_PER_NODE),
        cpus_per_task=_cap(job.cpus_per_task, pc.CPUS_PER_NODE), gpus_per_node=_cap(job.gpus_per_node, pc.GPUS_PER_NODE),
        gpus=_cap(job.gpus, pc.GPUS_PER_NODE), gpus_per_task=_cap(job.gpus_per_task, pc.GPUS_PER_NODE),
        cpus_per_gpu=_cap(job.cpus_per_gpu, 1), mem=f"{pc.MEMORY_MB // 2}M" if job.mem else "", mem_per_cpu="",
        mem_per_gpu="", time=job.time and format_time(min(parse_time(job.time), parse_time(pc.MAX_TIME))))


@pytest.mark.parametrize("profile", sorted(list_profiles()))
def test_every_example_is_accepted_by_sbatch_test_only(on_cluster, profile):
    """sbatch --test-only accepts the complete script of every example of every shipped profile.

    The ``local`` examples are submitted as they are. The other profiles describe real sites whose
    partitions, accounts and node sizes do not exist here, so their job is retargeted to the practice
    cluster first (:func:`_retarget`: partition debug, limits capped to the local nodes); the script
    body and every other directive stay as generated, which is what this test checks.
    """
    seen = []
    for name, example in examples(profile).items():
        model = example.model
        if profile != "local":
            model = model.replace(job=_retarget(model.job))
        answer = slurm.test_only(render(model))
        assert re.search(r"Job \d+ to start at .* on nodes .* in partition debug", answer), (profile, name, answer)
        seen.append(name)
    assert {"single-gpu", "multi-node-torchrun", "array-sweep", "charliecloud"} <= set(seen)


def test_a_heterogeneous_job_read_back_asks_sbatch_for_the_same(on_cluster):
    """Both components of a heterogeneous job survive the read-back: 2 + 1 tasks before and after
    (merged into one component, sbatch would count 1)."""
    from hpcwidgets.parse import parse_script
    script = ("#!/bin/bash\n#SBATCH -N1 -n2 --time=10\n#SBATCH hetjob\n#SBATCH -N1 -n1 --time=10\n"
              "srun --het-group=0 hostname &\nsrun --het-group=1 hostname &\nwait\n")
    again = render(parse_script(script))
    assert "#SBATCH hetjob\n#SBATCH -N1 -n1 --time=10\n" in again
    for text in (script, again):
        assert "using 3 processors" in slurm.test_only(text), text


# ------------------------------------------------------------------------------------------------
# b. two nodes, 2 x 2 ranks, through the CLI

def test_two_node_ddp_training_through_the_cli(on_cluster, tmp_path, capsys):
    """The local multi-node example (srun -> ch-run -> torchrun --nnodes 2 --nproc-per-node 2) trains on
    n1 and n2 with four ranks, submitted with ``hpcwidgets submit job.sbatch --wait``. srun's
    ``--label`` (the only change besides the epochs) prefixes each line with its task: task 0 runs on
    n1 and task 1 on n2 (one task per node)."""
    script = tmp_path / "job.sbatch"
    script.write_text(render(_with_epochs(examples("local")["multi-node-torchrun"], label=True)))
    rc, job_id, state, out_path = _submit_cli(script, capsys)
    log = out_path.read_text() if out_path.is_file() else "(no output file)"
    assert (rc, state) == (0, "COMPLETED"), log
    assert out_path.parent == tmp_path

    ranks = re.findall(r"^(\d+): rank=(\d) world_size=(\d+) local_rank=(\d)", log, re.M)
    assert sorted(int(r) for _, r, _, _ in ranks) == [0, 1, 2, 3], log
    assert {w for _, _, w, _ in ranks} == {"4"}
    # c10d numbers the nodes in the order they join, so either task may hold ranks 0-1: what holds is
    # one torchrun per node (srun task) with two consecutive ranks each
    by_task: dict[str, set[int]] = {}
    for t, r, _, _ in ranks:
        by_task.setdefault(t, set()).add(int(r))
    assert sorted(map(sorted, by_task.values())) == [[0, 1], [2, 3]] and set(by_task) == {"0", "1"}, \
        "two ranks per torchrun, one torchrun per node"
    assert slurm.Job(job_id).info().nodes == "n[1-2]"

    losses = _epoch_losses(log)
    assert len(losses) == int(EPOCHS) and losses[-1] < losses[0], log
    result = _workdir() / job_id
    metrics = json.loads((result / "metrics.json").read_text())
    assert metrics["world_size"] == 4 and metrics["backend"] == "gloo" and metrics["losses"] == pytest.approx(losses, abs=1e-4)
    assert sorted(p.name for p in (result / "checkpoints").glob("epoch-*.pt"))[-1] == f"epoch-{int(EPOCHS):04d}.pt"


# ------------------------------------------------------------------------------------------------
# c. single node, in ch-run directly and under srun

def test_single_node_and_charliecloud_examples_complete(on_cluster, tmp_path):
    """The single-gpu example (ch-run in the batch step) and the charliecloud example (srun -> ch-run)
    run side by side and write their metrics into the profile's work directory, one folder per job."""
    jobs = {}
    for name in ("single-gpu", "charliecloud"):
        jobs[name] = slurm.submit(render(_with_epochs(examples("local")[name])), cwd=tmp_path)
    for name, job in jobs.items():
        state = job.wait(JOB_TIMEOUT)
        log = job.output()
        assert state == "COMPLETED", (name, log)
        metrics = json.loads((_workdir() / job.id / "metrics.json").read_text())
        assert metrics["epochs"] == int(EPOCHS) and metrics["script"] == "train.py"
        assert metrics["losses"][-1] < metrics["losses"][0]
        assert f"wrote /mnt/1/{job.id}/metrics.json" in log


# ------------------------------------------------------------------------------------------------
# d. the source deck's multi-node script, as written, against its fix

def _deck_script() -> str:
    """The ``dist-ml-train`` script of the source deck, its placeholders replaced by things that exist here."""
    need(SEED_DECK.is_file(), f"the source deck is not at {SEED_DECK} (set HPCW_SOURCE_DECK to its path)")
    text = SEED_DECK.read_text(encoding="utf-8")
    start = text.index("#SBATCH --job-name=dist-ml-train")
    end = text.index("```", start)
    body = "#!/bin/bash\n" + text[start:end]
    for old, new in (("--partition=gpu-multi", f"--partition={pc.PARTITION}"),
                     ("/path/to/your/ml_container.sif", "/var/tmp/hpcw-images/pytorch.sif"),
                     ("/path/to/data:/data", f"{_workdir()}:/data"),
                     ("/path/to/your/distributed_train.py", str(payload_path("ddp_train.py")))):
        assert body.count(old) == 1, old
        body = body.replace(old, new)
    return body


@pytest.fixture(scope="module")
def deck_cluster():
    """A second practice cluster whose two nodes are sized like the deck's gpu-multi nodes (8 CPUs and
    4 GPUs each, simulated), so the deck's --ntasks-per-node=4 --cpus-per-task=2 --gres=gpu:4 is valid
    as written: the 2-CPU practice nodes cannot hold 4 tasks (Slurm rejects that even with
    --overcommit). The node size is the only thing changed, through the module's sizing constants
    while ``up`` writes the configuration; the daemons read it once at start."""
    need_tool("slurmctld", "Slurm's daemons (apt-get install slurmctld slurmd)")
    need(os.geteuid() == 0, "starting a second practice cluster needs root")
    root = Path(tempfile.mkdtemp(prefix="hpcw-deck-cluster-", dir="/var/tmp"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pc, "CPUS_PER_NODE", 8)
            mp.setattr(pc, "GPUS_PER_NODE", 4)
            st = pc.up(root, port=pc.DEFAULT_PORT + 200, install=False, image=False)
        need(st.running, f"the deck-sized cluster did not start: {st}")
        yield str(st.slurm_conf)
    finally:
        pc.down(root)
        shutil.rmtree(root, ignore_errors=True)


def _launchers(log: Path) -> dict[str, list[int]]:
    """Node name -> PIDs of the torchrun launchers the stand-in recorded."""
    found: dict[str, list[int]] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            node, pid = line.split()
            found.setdefault(node, []).append(int(pid))
    return found


def _run_deck_job(script: str, slurm_conf: str, tmp_path: Path, monkeypatch, *, expect: int,
                  settle: float = 8.0) -> tuple[slurm.Job, dict[str, list[int]], str]:
    """Submit with the stand-ins first on PATH; stop watching once each node has ``expect`` launchers
    and no new one appeared for ``settle`` seconds, or when the job ended. A job still running then is
    cancelled. Returns the job, the launchers per node and the final state."""
    log = tmp_path / "launchers.txt"
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    monkeypatch.setenv("USER", _user())
    monkeypatch.setenv("HPCW_LAUNCH_LOG", str(log))
    monkeypatch.setenv("PATH", f"{SHIMS}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    job = slurm.submit(script, cwd=tmp_path)
    deadline = time.monotonic() + JOB_TIMEOUT
    last, changed = None, time.monotonic()
    state = job.state()
    while state not in slurm.FINAL_STATES and time.monotonic() < deadline:
        now = _launchers(log)
        if now != last:
            last, changed = now, time.monotonic()
        enough = len(now) == len(pc.NODES) and all(len(p) >= expect for p in now.values())
        if (enough and time.monotonic() - changed > settle) or any(len(p) > expect for p in now.values()):
            break
        time.sleep(0.5)
        state = job.state()
    if state not in slurm.FINAL_STATES:
        job.cancel()
        state = job.wait(60)
    found = _launchers(log)
    # the launchers die with the job (port 29500 must be free for the next training job)
    gone_by = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pids in found.values() for pid in pids):
        assert time.monotonic() < gone_by, f"torchrun launchers of job {job.id} outlived it: {found}"
        time.sleep(0.5)
    return job, found, state


def test_deck_script_starts_four_launchers_per_node(deck_cluster, tmp_path, monkeypatch):
    """The deck's dist-ml-train script, run as written (partition, image and paths substituted; Apptainer
    is a stand-in that runs the command on the host, since Apptainer cannot be installed here): its bare
    ``srun`` inherits --ntasks-per-node=4, so each node starts 4 torchrun launchers (each of which would
    start 4 workers). The job is cancelled once the launchers are counted."""
    job, launchers, state = _run_deck_job(_deck_script(), deck_cluster, tmp_path, monkeypatch, expect=4)
    assert {node: len(pids) for node, pids in launchers.items()} == {"n1": 4, "n2": 4}, job.output()
    assert state in slurm.FINAL_STATES


def test_fixed_deck_script_starts_one_launcher_per_node(deck_cluster, tmp_path, monkeypatch):
    """The same script after ``fix_script`` (what ``hpcwidgets lint --fix`` writes) starts exactly one
    torchrun per node, whose 4 workers form a world of 8, and trains to the end."""
    fixed, findings = fix_script(_deck_script(), "local")
    assert {f.code for f in findings} >= {"HPC101", "HPC102"}
    # wait for the end: a correct launch trains to completion (only a 5th launcher would stop the watch)
    job, launchers, state = _run_deck_job(fixed, deck_cluster, tmp_path, monkeypatch, expect=1, settle=float("inf"))
    log = job.output()
    assert {node: len(pids) for node, pids in launchers.items()} == {"n1": 1, "n2": 1}, log
    assert state == "COMPLETED", log
    assert len(set(re.findall(r"rank=(\d+) world_size=8 ", log))) == 8, log


# ------------------------------------------------------------------------------------------------
# e. the learning-rate sweep

def test_array_sweep_trains_each_task_with_its_own_rate(on_cluster, tmp_path):
    """The array-sweep example: every task trains (really) with the learning rate its index picks."""
    job = slurm.submit(render(_with_epochs(examples("local")["array-sweep"])), cwd=tmp_path)
    state = job.wait(JOB_TIMEOUT)
    logs = sorted(tmp_path.glob(f"lr-sweep-{job.id}_*.out"))
    texts = {p.name: p.read_text() for p in logs}
    assert state == "COMPLETED", texts
    assert len(logs) == len(SWEEP_LEARNING_RATES), texts
    finals = {}
    for name, text in texts.items():
        task = int(name.rsplit("_", 1)[1].split(".")[0])
        announced = re.search(r"array task (\d+): lr=(\S+)", text)
        assert announced and int(announced.group(1)) == task, text
        assert announced.group(2) == SWEEP_LEARNING_RATES[task]
        target = re.search(r"wrote /mnt/1/(\d+)/metrics.json", text)
        assert target, text
        metrics = json.loads((_workdir() / target.group(1) / "metrics.json").read_text())
        assert metrics["lr"] == float(SWEEP_LEARNING_RATES[task]) and metrics["epochs"] == int(EPOCHS)
        assert metrics["losses"] == pytest.approx(_epoch_losses(text), abs=1e-4)
        finals[metrics["lr"]] = metrics["final_loss"]
    assert sorted(finals) == sorted(float(v) for v in SWEEP_LEARNING_RATES)
    assert len(set(finals.values())) == len(SWEEP_LEARNING_RATES), finals


# ------------------------------------------------------------------------------------------------
# f. the exit status of `hpcwidgets submit --wait`

@pytest.mark.parametrize("last_line, code, state", [("echo done", 0, "COMPLETED"), ("exit 1", 1, "FAILED")])
def test_submit_exit_status_follows_the_job(on_cluster, tmp_path, capsys, last_line, code, state):
    script = tmp_path / "job.sbatch"
    script.write_text(f"#!/bin/bash\n#SBATCH --partition={pc.PARTITION}\n#SBATCH --time=00:01:00\n"
                      f"#SBATCH --output=exit-%j.out\necho started on $SLURMD_NODENAME\n{last_line}\n")
    rc, job_id, got, out_path = _submit_cli(script, capsys)
    assert (rc, got) == (code, state)
    assert out_path == tmp_path / f"exit-{job_id}.out"
    assert out_path.read_text().startswith("started on n")


# ------------------------------------------------------------------------------------------------
# g. a step with more CPUs than the job: lint's HPC322 says srun refuses it, and srun does

def test_a_step_with_more_tasks_than_the_job_fails_as_lint_says(on_cluster, tmp_path, capsys):
    """The practice nodes have 2 CPUs (one thread a core); a job of one task (one CPU) cannot start srun -n 3, and
    the job that asks for the three tasks (two nodes) can. (srun -n 2 fails there too, and the local profile's
    threads_per_core = 1 lets lint say so: without it, a task of one CPU may hold a whole core of two threads.)"""
    from hpcwidgets.lint import lint
    head = (f"#!/bin/bash\n#SBATCH --partition={pc.PARTITION}\n#SBATCH --time=00:01:00\n#SBATCH --nodes=1\n"
            "#SBATCH --output=step-%j.out\n")
    bad = head + "#SBATCH --ntasks=1\nsrun -n 3 hostname\n"
    good = head.replace("--nodes=1", "--nodes=2") + "#SBATCH --ntasks=3\nsrun -n 3 hostname\n"
    local = load_profile("local")
    assert [f.code for f in lint(bad, local) if f.severity == "error"] == ["HPC322"]
    assert [f for f in lint(good, local) if f.severity == "error"] == []
    script = tmp_path / "job.sbatch"
    script.write_text(bad)
    _, _, _, out_path = _submit_cli(script, capsys)
    assert "More processors requested than permitted" in out_path.read_text()
    script.write_text(good)
    rc, _, state, out_path = _submit_cli(script, capsys)
    assert (rc, state) == (0, "COMPLETED")
    assert len(out_path.read_text().split()) == 3  # three tasks, three host names
