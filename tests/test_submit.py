"""Submitting and following jobs: pure helpers, then real jobs on the practice cluster."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.errors import RunError
from hpcwidgets.run import practice_cluster as pc
from hpcwidgets.run import slurm
from hpcwidgets.run.slurm import (FINAL_STATES, Job, explain_sbatch_error, normalize_state, option_value,
                                  parse_scontrol, resolve_output_pattern, script_directives)


# --------------------------------------------------------------------------------------------------- pure

@pytest.mark.parametrize("text,state", [
    ("COMPLETED", "COMPLETED"),
    ("  running\n", "RUNNING"),
    ("CANCELLED by 0", "CANCELLED"),
    ("CANCELLED+", "CANCELLED"),
    ("OUT_OF_ME+", "OUT_OF_MEMORY"),
    ("OOM", "OUT_OF_MEMORY"),
    ("CD", "COMPLETED"),
    ("PD", "PENDING"),
    ("TO", "TIMEOUT"),
    ("NODE_FAIL", "NODE_FAIL"),
    ("", "UNKNOWN"),
    ("SOMETHING_NEW", "SOMETHING_NEW"),
])
def test_normalize_state(text, state):
    assert normalize_state(text) == state


def test_final_states_are_normalised_names():
    assert {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"} <= FINAL_STATES
    assert "RUNNING" not in FINAL_STATES and "PENDING" not in FINAL_STATES
    assert all(normalize_state(s) == s for s in FINAL_STATES)


# expected strings below are what Slurm 22.05 itself wrote on the practice cluster for the same patterns
@pytest.mark.parametrize("pattern,kwargs,expected", [
    ("slurm-%j.out", dict(job_id=42), "slurm-42.out"),
    ("out-%j-%x-%A-%a-%u-%N-%n-%s-%t-%%-%5j.txt",
     dict(job_id=14, job_name="myname", user="root", node="vm"),
     "out-14-myname-14-4294967294-root-vm-0-batch-0-%-00014.txt"),
    ("arr-%j-%A-%a-%3a.txt", dict(job_id=17, array_job_id=15, array_task_id=1), "arr-17-15-1-001.txt"),
    ("back\\slash-%j.txt", dict(job_id=16), "backslash-%j.txt"),
    ("logs/%x.%j", dict(job_id=7, job_name="train", cwd="/scratch/me"), "/scratch/me/logs/train.7"),
    ("/abs/%j.out", dict(job_id=7, cwd="/elsewhere"), "/abs/7.out"),
    ("%q-%j", dict(job_id=3), "%q-3"),
    ("100%%-%x", dict(job_id=3, job_name="a b"), "100%-a b"),
])
def test_resolve_output_pattern(pattern, kwargs, expected):
    assert resolve_output_pattern(pattern, **kwargs) == expected


def test_script_directives_stop_at_the_first_command():
    script = ("#!/bin/bash\n"
              "# a comment\n"
              "\n"
              "#SBATCH -J 'my job'   # trailing comment\n"
              "#SBATCH --output=logs/%x-%j.out\n"
              "#SBATCHX --ignored\n"
              "module load x\n"
              "#SBATCH --time=5\n")
    words = script_directives(script)
    assert words == ["-J", "my job", "--output=logs/%x-%j.out"]
    assert option_value(words, "--job-name", "-J") == "my job"
    assert option_value(words, "--output", "-o") == "logs/%x-%j.out"
    assert option_value(words, "--time", "-t") is None


def test_option_value_forms_and_last_wins():
    assert option_value(["-oA", "--output", "B"], "--output", "-o") == "B"
    assert option_value(["--output=A", "-o", "C"], "--output", "-o") == "C"
    assert option_value(["-pdebug"], "--partition", "-p") == "debug"
    assert option_value(["--parsable"], "--partition", "-p") is None


@pytest.mark.parametrize("stderr,needle", [
    ("sbatch: error: Batch job submission failed: Requested node configuration is not available",
     "more GPUs/CPUs/memory per node than any node in partition debug has"),
    ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)",
     "shorten -t/--time"),
    ("sbatch: error: Batch job submission failed: Node count specification invalid", "lower -N"),
    ("sbatch: error: invalid partition specified: nope", "sinfo -s"),
    ("sbatch: error: Invalid generic resource (gres) specification", "gpu:N"),
    ("sbatch: error: This does not look like a batch script.", "#!/bin/bash"),
    ("sbatch: error: Batch script contains DOS line breaks (\\r\\n)", "dos2unix"),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
     "practice-cluster up"),
])
def test_explain_sbatch_error(stderr, needle):
    assert needle in explain_sbatch_error(stderr, "debug")


def test_explain_unknown_error_is_empty():
    assert explain_sbatch_error("sbatch: error: something nobody has seen") == ""


def test_parse_scontrol_keeps_spaces_in_paths():
    text = ("JobId=5 JobName=x y\n   JobState=RUNNING Reason=None\n   NodeList=n[1-2]\n"
            "   WorkDir=/tmp/a b\n   StdOut=/tmp/a b/slurm-5.out\n")
    rec = parse_scontrol(text)
    assert rec["JobId"] == "5" and rec["JobState"] == "RUNNING" and rec["NodeList"] == "n[1-2]"
    assert rec["StdOut"] == "/tmp/a b/slurm-5.out" and rec["WorkDir"] == "/tmp/a b"


def test_missing_script_path_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="no job script at"):
        slurm.submit(str(tmp_path / "nope.sh"))


def test_missing_slurm_conf_fails_fast(tmp_path):
    missing = str(tmp_path / "slurm.conf")
    with pytest.raises(RunError, match="does not exist"):
        Job("1", env={"SLURM_CONF": missing}).state()
    assert slurm.available(env={"SLURM_CONF": missing}) is False


def test_log_directories_follow_chdir_and_skip_patterns(tmp_path):
    text = script("echo hi", directives=("-o logs/%x-%j.out", "--error=/abs/err/%j.err"))
    assert slurm.log_directories(text, tmp_path) == [str(tmp_path / "logs"), "/abs/err"]
    moved = script("echo hi", directives=("-D run", "--output=./out/%j.out"))
    assert slurm.log_directories(moved, tmp_path) == [str(tmp_path / "run" / "out")]
    # unknown before the job has an id, or no directory at all: nothing to create
    assert slurm.log_directories(script("x", directives=("-o %j/log.out", "-e err-%j.txt")), tmp_path) == []
    assert slurm.log_directories(script("x"), tmp_path) == []
    # sbatch stops reading directives at the first command; so does this
    assert slurm.log_directories("#!/bin/bash\necho x\n#SBATCH -o late/%j.out\n", tmp_path) == []


def test_a_log_directory_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "logs").write_text("not a directory")
    with pytest.raises(RunError, match="is a file"):
        slurm._make_log_directories(script("x", directives=("-o logs/%j.out",)), tmp_path)


def test_job_id_is_a_string():
    assert Job(12).id == "12"  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- stand-in sbatch

def fake_sbatch(tmp_path: Path, printed: str, status: int = 0) -> dict[str, str]:
    """An environment whose ``sbatch`` prints ``printed`` and exits with ``status`` (no Slurm is touched)."""
    folder = tmp_path / "fakeslurm"
    folder.mkdir(exist_ok=True)
    (folder / "printed.txt").write_text(printed)
    sbatch = folder / "sbatch"
    sbatch.write_text(f"#!/bin/sh\ncat > /dev/null\ncat '{folder}/printed.txt'\nexit {status}\n")
    sbatch.chmod(0o755)
    conf = folder / "slurm.conf"
    conf.write_text("ClusterName=fake\n")
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}", "SLURM_CONF": str(conf)}


@pytest.mark.parametrize("printed,job_id", [
    ("123\n", "123"),
    ("123;cluster1\n", "123"),
    ("Submitted batch job 123\n", "123"),
    ("Submitted batch job 77 on cluster c2\n", "77"),
    ("NOTE: jobs on gpu are charged 4x\n123\n", "123"),             # a site wrapper's notice before the id
    ("123\nRemember: you have 3 jobs queued\n", "123"),              # … and after it
    ("NOTE: job 3 of your 10 allowed\nSubmitted batch job 456\n", "456"),
    ("Your job was queued.\n", ""),
    ("NOTE: job 3 of your 10 allowed\n", ""),                       # a number in a notice is not the id
    ("", ""),
])
def test_read_job_id_from_what_sbatch_printed(printed, job_id):
    assert slurm.read_job_id(printed) == job_id


def test_submit_reads_the_human_form_and_a_wrappers_lines(tmp_path):
    for printed in ("Submitted batch job 123\n", "NOTE: jobs on gpu are charged 4x\n123\n"):
        job = slurm.submit(script("echo hi"), env=fake_sbatch(tmp_path, printed), cwd=tmp_path)
        assert job.id == "123" and job.missing_id_message == ""


def test_an_accepted_job_without_a_readable_id_is_not_an_error(tmp_path):
    job = slurm.submit(script("echo hi"), env=fake_sbatch(tmp_path, "Your job was queued.\n"), cwd=tmp_path)
    assert job.id == ""
    assert "sbatch accepted the job" in job.missing_id_message
    assert "'Your job was queued.'" in job.missing_id_message and "squeue -u $USER" in job.missing_id_message
    with pytest.raises(RunError, match="squeue -u"):  # such a job cannot be followed, and says why
        job.state()


def test_cli_submit_prints_the_id_of_a_human_form(tmp_path, monkeypatch, capsys):
    from hpcwidgets.cli import main
    for name, value in fake_sbatch(tmp_path, "Submitted batch job 123\n").items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "job.sh"
    path.write_text(script("echo hi"))
    assert main(["submit", str(path)]) == 0
    assert capsys.readouterr().out == "123\n"


def test_cli_submit_without_a_readable_id_says_it_was_submitted(tmp_path, monkeypatch, capsys):
    from hpcwidgets.cli import main
    from hpcwidgets.cli.submit import ID_UNREAD
    for name, value in fake_sbatch(tmp_path, "Your job was queued.\n").items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "job.sh"
    path.write_text(script("echo hi"))
    assert ID_UNREAD not in (1, 2), "1 is 'did not complete' and 2 'failed'; this job was submitted"
    assert main(["submit", str(path)]) == ID_UNREAD
    out = capsys.readouterr()
    assert out.out == ""
    assert "submitted, but the job id is unknown" in out.err and "squeue -u $USER" in out.err
    assert "rejected" not in out.err


# --------------------------------------------------------------------------------------------------- real

@pytest.fixture(scope="session")
def cluster():
    """A reachable Slurm: the one SLURM_CONF or the running practice cluster names, else start the latter."""
    if not slurm.available():
        can = os.geteuid() == 0 and shutil.which("apt-get") is not None
        need(can, "no reachable Slurm and cannot start the practice cluster (needs root and apt-get)")
        pc.up()
    need(slurm.available(), "Slurm is not reachable even after starting the practice cluster")
    partitions = slurm._run(["sinfo", "-h", "-o", "%P"]).stdout.split()
    need("debug*" in partitions, f"the reachable Slurm is not the practice cluster (partitions: {partitions})")
    return True


def script(*body: str, directives: tuple[str, ...] = ()) -> str:
    return "\n".join(["#!/bin/bash", *[f"#SBATCH {d}" for d in directives], *body]) + "\n"


def wait_until_running(job: Job, limit: float = 60.0) -> str:
    deadline = time.monotonic() + limit
    state = job.state()
    while state == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = job.state()
    return state


@pytest.mark.real
def test_trivial_job_completes_with_its_output(cluster, tmp_path):
    job = slurm.submit(script('echo "hello from job $SLURM_JOB_ID"', directives=("-t 1",)), cwd=tmp_path)
    assert job.wait(timeout=120) == "COMPLETED"
    assert job.output(tail=1) == f"hello from job {job.id}\n"
    assert job.output_path() == tmp_path / f"slurm-{job.id}.out"
    info = job.info()
    assert info.state == "COMPLETED" and info.nodes in ("n1", "n2") and info.exit_code == "0:0"
    assert info.elapsed.count(":") == 2


@pytest.mark.real
def test_submit_from_a_path_and_the_output_pattern_fallback(cluster, tmp_path):
    path = tmp_path / "named job.sh"
    path.write_text(script("echo from-file", directives=("--output=%x-%j-%u.log",)))
    job = slurm.submit(path, cwd=tmp_path)
    assert job.wait(timeout=120) == "COMPLETED"
    real = job.output_path()  # from scontrol
    assert real.exists() and real.read_text() == "from-file\n"
    # once Slurm forgets the job, the path is computed from the script: it must be the same file
    assert Path(job._resolve(None, None)) == real
    assert real.name.startswith(f"named job.sh-{job.id}-")


@pytest.mark.real
def test_a_missing_log_directory_is_created_before_submission(cluster, tmp_path):
    text = script("echo logged", directives=("-t 1", "--output=logs/%j.out"))
    # sbatch alone accepts the job, which then fails at launch without any log (what HPC509 warns about)
    bare = slurm.submit(text, cwd=tmp_path, make_log_dirs=False)
    assert bare.created_dirs == () and bare.wait(timeout=120) == "FAILED"
    assert not (tmp_path / "logs").exists()
    job = slurm.submit(text, cwd=tmp_path)
    assert job.created_dirs == (str(tmp_path / "logs"),)
    assert job.wait(timeout=120) == "COMPLETED"
    assert (tmp_path / "logs" / f"{job.id}.out").read_text() == "logged\n"


@pytest.mark.real
def test_job_sees_the_two_gpus_it_asked_for(cluster, tmp_path):
    job = slurm.submit(script('echo "CVD=$CUDA_VISIBLE_DEVICES"', directives=("--gres=gpu:2",)), cwd=tmp_path)
    assert job.wait(timeout=120) == "COMPLETED"
    line = job.output().strip()
    assert line.startswith("CVD=")
    assert len(line[len("CVD="):].split(",")) == 2, line


@pytest.mark.real
def test_more_gpus_than_a_node_has_is_rejected_with_the_fix(cluster, tmp_path):
    with pytest.raises(RunError) as err:
        slurm.submit(script("echo never", directives=("--gres=gpu:3",)), cwd=tmp_path)
    text = str(err.value)
    assert "more GPUs/CPUs/memory per node than any node in partition debug has" in text
    assert "Requested node configuration is not available" in text  # sbatch's own words follow
    assert err.value.returncode != 0 and err.value.argv[0] == "sbatch"


@pytest.mark.real
def test_time_over_the_partition_limit_is_rejected(cluster, tmp_path):
    with pytest.raises(RunError, match="shorten -t/--time"):
        slurm.submit(script("echo never", directives=("-t 2:00:00",)), cwd=tmp_path)


@pytest.mark.real
def test_two_node_job_runs_on_n1_and_n2(cluster, tmp_path):
    body = ('srun hostname',
            'srun bash -c \'echo "node=$SLURMD_NODENAME"\'',
            'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            'getent hosts "$head" >/dev/null && echo "head=$head resolves"')
    job = slurm.submit(script(*body, directives=("-N 2", "--ntasks-per-node=1")), cwd=tmp_path)
    assert job.wait(timeout=120) == "COMPLETED"
    out = job.output()
    nodes = sorted(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("node="))
    assert nodes == ["n1", "n2"], out
    assert "head=n1 resolves" in out
    assert job.info().nodes == "n[1-2]"


@pytest.mark.real
def test_cancel_a_sleeping_job(cluster, tmp_path):
    job = slurm.submit(script("sleep 300", directives=("-t 2",)), cwd=tmp_path)   # gone in 2 min whatever happens
    assert wait_until_running(job) == "RUNNING"
    job.cancel()
    assert job.wait(timeout=120) == "CANCELLED"


@pytest.mark.real
def test_test_only_accepts_and_rejects(cluster, tmp_path):
    answer = slurm.test_only(script("echo hi", directives=("-N 2",)), cwd=tmp_path)
    assert "to start at" in answer and "partition debug" in answer
    with pytest.raises(RunError, match="more GPUs/CPUs/memory per node") as err:
        slurm.test_only(script("echo hi", directives=("-c 3",)), cwd=tmp_path)
    assert "sbatch said:" in str(err.value)


@pytest.mark.real
def test_unknown_job_is_an_error(cluster):
    with pytest.raises(RunError, match="does not know job 999999"):
        Job("999999").state()


@pytest.mark.real
def test_burst_of_fifty_jobs_is_fully_accounted_for(cluster, tmp_path):
    jobs = [slurm.submit(script(f"echo burst-{i}"), cwd=tmp_path) for i in range(50)]
    assert len({j.id for j in jobs}) == 50
    finals = {j.id: j.wait(timeout=300, poll=0.5) for j in jobs}
    assert set(finals.values()) == {"COMPLETED"}, finals
    for i, job in enumerate(jobs):
        assert job.output() == f"burst-{i}\n"
    # the job completion log (sacct -c) lists every one of them as well
    proc = slurm._run(["sacct", "-c", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(finals)])
    logged = dict(line.split("|", 1) for line in proc.stdout.splitlines() if line.strip())
    assert set(logged) == set(finals)
    assert {normalize_state(s) for s in logged.values()} == {"COMPLETED"}


@pytest.mark.real
def test_available_and_env(cluster):
    assert slurm.available()
    st = pc.status()
    if not os.environ.get("SLURM_CONF") and st.running:
        # nothing configured by hand: the package's commands find the practice cluster by themselves
        assert pc.client_env()["SLURM_CONF"] == str(st.slurm_conf)
