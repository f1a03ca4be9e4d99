"""Values the command line took with exit status 0 though Slurm or torchrun refuse or misread them (session 31's
follow-up of the command-line audit): a rendezvous endpoint torchrun cannot parse, a time longer than Slurm can count
or with blanks around it, a count beyond 32 bits, an empty --from or example name."""

from __future__ import annotations

import json

import pytest

from hpcwidgets.cli import main
from hpcwidgets.spec import SlurmJob, Torchrun
from hpcwidgets.spec.slurm import MAX_COUNT
from hpcwidgets.spec.units import UNLIMITED, parse_time


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def endpoint_problems(endpoint: str, nnodes: str = "2") -> list[str]:
    launch = Torchrun(script="train.py", nnodes=nnodes, nproc_per_node="4", rdzv_backend="c10d",
                      rdzv_endpoint=endpoint, rdzv_id="$SLURM_JOB_ID")
    return [p.message for p in launch.problems() if p.field == "rdzv_endpoint"]


@pytest.mark.parametrize(("endpoint", "says"), [
    ("head:99999", "above 65535"),
    ("head:abc", "'abc', is not a number"),
    ("head:", "names no port"),
    (":29500", "names no host"),
    ("head:0", "cannot know"),
    ("a b:29500", "no host name or address torchrun takes"),
])
def test_an_endpoint_torchrun_refuses_is_refused_with_the_fix(endpoint, says):
    [message] = endpoint_problems(endpoint)
    assert says in message and "$head_node:29500" in message


@pytest.mark.parametrize("endpoint", [
    "$head_node:29500", "${MASTER_ADDR}:${MASTER_PORT}", "n1", "n1:29500", "10.0.0.1:29500", "[::1]:29500", "[::1]",
    "$(hostname):29500", "head:$PORT", "node-01.cluster.local:29400",
])
def test_an_endpoint_torchrun_takes_or_the_job_fills_in_passes(endpoint):
    assert endpoint_problems(endpoint) == []


def test_port_0_is_only_wrong_when_other_nodes_must_find_it():
    assert endpoint_problems("localhost:0", nnodes="1") == []
    assert endpoint_problems("localhost:0", nnodes="2") != []


def test_the_command_line_refuses_a_bad_endpoint_with_exit_2(capsys):
    code, out, err = run(capsys, "torchrun", "--nnodes", "2", "--nproc-per-node", "4", "--rdzv-backend", "c10d",
                         "--rdzv-endpoint", "head:99999", "train.py")
    assert code == 2 and out == "" and "--rdzv-endpoint" in err and "65535" in err


def test_a_time_slurm_cannot_count_is_refused():
    assert parse_time("24855-03:14:07") == 2**31 - 1
    with pytest.raises(ValueError, match="longer than Slurm can count"):
        parse_time("24855-03:14:08")
    with pytest.raises(ValueError, match="UNLIMITED"):
        parse_time("99999999:00:00")
    assert parse_time("UNLIMITED") == UNLIMITED


@pytest.mark.parametrize("time", [" 01:00:00", "01:00:00 ", "\t90"])
def test_a_time_with_blanks_around_it_is_refused_with_the_trimmed_value(time):
    [problem] = [p for p in SlurmJob(time=time).problems() if "blanks around it" in p.message]
    assert problem.field == "time" and repr(time.strip()) in problem.message


@pytest.mark.parametrize("field", ["nodes", "ntasks", "ntasks_per_node", "cpus_per_task", "gpus_per_node", "gpus",
                                   "gpus_per_task", "cpus_per_gpu"])
def test_a_count_beyond_32_bits_is_refused(field):
    assert not [p for p in SlurmJob(**{field: MAX_COUNT}).problems() if p.field == field]
    [problem] = [p for p in SlurmJob(**{field: MAX_COUNT + 1}).problems() if p.field == field]
    assert f"at most {MAX_COUNT}" in problem.message


def test_the_command_line_refuses_a_huge_node_count(capsys):
    code, out, err = run(capsys, "sbatch", "--nodes", "99999999999")
    assert code == 2 and out == "" and "--nodes" in err and str(MAX_COUNT) in err


@pytest.mark.parametrize("argv", [["workflow", "--from", ""], ["sbatch", "--from", ""], ["convert", "--from", ""]])
def test_an_empty_from_is_an_error_not_an_absent_option(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and "empty file name" in err and "Traceback" not in err


def test_an_empty_example_name_is_no_example(capsys):
    code, out, err = run(capsys, "examples", "")
    assert code == 2 and out == "" and "no example named ''" in err and "single-gpu" in err


def test_a_control_character_a_file_holds_is_reported_as_replaced_not_as_kept(tmp_path, capsys):
    model = tmp_path / "job.json"
    model.write_text(json.dumps({"kind": "slurm.job", "job_name": "a\u0000b", "time": "01:00:00"}))
    code, out, err = run(capsys, "sbatch", "--from", str(model))
    assert code == 1 and '--job-name="a b"' in out
    assert "NUL" in err and "a space for each control character" in err and "written back as it was" not in err


def test_without_a_profile_srun_gets_the_jobs_cpus_again(capsys):
    code, out, err = run(capsys, "workflow", "--set", "job.cpus_per_task=8", "--set", "job.time=01:00:00",
                         "--srun", "srun", "--program", "python t.py")
    assert code == 0 and "srun --cpus-per-task=8 python t.py" in out and "HPC309" not in err


def test_a_script_read_with_from_keeps_its_srun_line(tmp_path, capsys):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --cpus-per-task=8\n#SBATCH --time=01:00:00\nsrun python t.py\n")
    code, out, err = run(capsys, "workflow", "--from", str(script))
    assert "srun python t.py" in out and "HPC309" in err  # the person's line, reported, not rewritten


def test_a_key_given_twice_in_a_json_model_is_refused_naming_both_values(tmp_path, capsys):
    model = tmp_path / "job.json"
    model.write_text('{"kind": "slurm.job", "job_name": "a", "job_name": "b"}')
    code, out, err = run(capsys, "sbatch", "--from", str(model))
    assert code == 2 and out == ""
    assert f"{model}: the key 'job_name' is given twice" in err and '"a", then "b"' in err
    assert "not a saved model" not in err  # it is one: the message is about the key


def test_lint_explain_with_no_rule_says_so(capsys):
    code, out, err = run(capsys, "lint", "--explain", "")
    assert code == 2 and out == "" and "--explain was given no rule" in err and "--list-rules" in err


def test_gpus_asked_for_twice_in_one_gres_says_so():
    from hpcwidgets.lint import lint
    text = "#!/bin/bash\n#SBATCH --gres=gpu:a100:2,gpu:a100:2\n#SBATCH --time=01:00:00\nsrun python t.py\n"
    [finding] = [f for f in lint(text) if f.code == "HPC399"]
    assert "asks for GPUs twice (gpu:a100:2 and gpu:a100:2)" in finding.message
    two_types = text.replace("gpu:a100:2,gpu:a100:2", "gpu:a100:2,gpu:v100:1")
    assert [f for f in lint(two_types) if f.code == "HPC399"] == []
