import pytest

from hpcwidgets.render.command import argv
from hpcwidgets.render.script import directive_lines, render_job
from hpcwidgets.spec import SlurmJob, Srun


def test_directives_follow_field_order_and_gres():
    job = SlurmJob(job_name="ml-training", partition="gpu", cpus_per_task=4, mem="16G", gpus_per_node=1)
    assert directive_lines(job) == ["--job-name=ml-training", "--partition=gpu", "--cpus-per-task=4",
                                    "--gres=gpu:1", "--mem=16G"]
    typed = SlurmJob(gpus_per_node=4, gpu_type="a100", gpu_flag="gpus-per-node")
    assert directive_lines(typed) == ["--gpus-per-node=a100:4"]
    assert SlurmJob(gpus_per_node=2, gpu_type="v100").gres() == "gpu:v100:2"


def test_directive_values_with_spaces_are_quoted_for_sbatch():
    assert directive_lines(SlurmJob(constraint="a100 | h100")) == ['--constraint="a100 | h100"']


@pytest.mark.parametrize("flag", ["gres", "gpus-per-node"])
def test_a_line_break_in_the_gpu_type_cannot_start_a_command(flag):
    # an invalid model still renders in a form's preview: the GPU directive is one line like every other
    job = SlurmJob(gpus_per_node=1, gpu_type="a100\ntouch /tmp/pwned", gpu_flag=flag, commands=("true",))
    assert job.problems()
    script = render_job(job)
    assert not any(line.startswith("touch") for line in script.splitlines())
    assert f'#SBATCH --{flag}="' in script


@pytest.mark.parametrize("kwargs,field,text", [
    ({"time": "1.5h"}, "time", "D-H:M:S"),
    ({"mem": "16GiB"}, "mem", "write 16G"),
    ({"mem": "16G", "mem_per_cpu": "2G"}, "mem_per_cpu", "exclude each other"),
    ({"cpus_per_task": 4, "cpus_per_gpu": 2}, "cpus_per_gpu", "cannot be combined"),
    ({"array": "0-15/4"}, "array", "0-15%4"),
    ({"gpus_per_node": -1}, "gpus_per_node", "at least 0"),
    ({"output": "$SCRATCH/%j.out"}, "output", "not expanded"),
    ({"job_name": "my\njob"}, "job_name", "line break"),
    ({"nodes": 2, "ntasks_per_node": 1, "ntasks": 4}, "ntasks", "do not fit"),
    ({"gpu_type": "a100"}, "gpu_type", "needs GPUs per node"),
    ({"mail_type": "END,SOMETIMES"}, "mail_type", "SOMETIMES"),
])
def test_problems(kwargs, field, text):
    problems = SlurmJob(**kwargs).problems()
    assert any(p.field == field and text in p.message for p in problems), problems


def test_a_job_name_with_spaces_is_advice_not_a_problem():
    """sbatch takes it (a script read back must render), but output patterns with %x get a space: HPC306 warns."""
    job = SlurmJob(job_name="my job")
    assert job.problems() == [] and [p.field for p in job.advice()] == ["job_name"]
    assert "spaces" in job.advice()[0].message


def test_valid_job_has_no_problems_and_gpu_count():
    job = SlurmJob(nodes=2, ntasks_per_node=1, gpus_per_node=4, time="2-00:00:00", mem="0", array="0-15:4%2")
    assert job.problems() == []
    assert job.gpus_on_each_node == 4
    assert SlurmJob(nodes=2, gpus=8).gpus_on_each_node == 4


def test_render_job_is_a_fail_fast_script():
    text = render_job(SlurmJob(job_name="t", modules=("apptainer",), commands=("srun hostname",)))
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1] == "#SBATCH --job-name=t"
    assert lines.index("set -eo pipefail") < lines.index("module load apptainer") < lines.index("set -u")
    assert lines[-1] == "srun hostname"


def test_srun_argv():
    assert argv(Srun(ntasks_per_node=1, cpus_per_task=8, mpi="pmix", extra=("--exclusive",))) == \
        ["srun", "--ntasks-per-node=1", "--cpus-per-task=8", "--mpi=pmix", "--exclusive"]
    assert Srun(extra=("exclusive",)).problems()[0].field == "extra"


def test_every_modelled_directive_is_an_sbatch_option_of_the_right_kind():
    from hpcwidgets.spec.slurm import sbatch_option
    for f in SlurmJob.field_specs():
        if f.info.role == "option" and f.info.flag:
            expected = "optional" if f.base_type is bool else "value"  # --exclusive[=user|mcs]
            assert {s: sbatch_option(s) for s in f.info.spellings} == dict.fromkeys(f.info.spellings, expected)
    assert sbatch_option("--gres") == sbatch_option("--gpus-per-node") == "value"
    assert sbatch_option("--ntask-per-node") == ""


# --- Slurm's text forms in count fields (each checked with `sbatch --test-only`, Slurm 22.05) -----------------

@pytest.mark.parametrize("kwargs,line", [
    ({"nodes": "2-4"}, "--nodes=2-4"),
    ({"nodes": "1-1"}, "--nodes=1-1"),
    ({"gpus": "a100:4"}, "--gpus=a100:4"),
    ({"gpus": "a100:2,v100:2"}, "--gpus=a100:2,v100:2"),
])
def test_node_ranges_and_typed_gpu_counts_are_valid_and_render_unchanged(kwargs, line):
    job = SlurmJob(**kwargs)
    assert job.problems() == []
    assert directive_lines(job) == [line]


@pytest.mark.parametrize("kwargs,field,text", [
    ({"nodes": "4-2"}, "nodes", "write 2-4"),           # sbatch: Maximum node count 2 is less than minimum node count 4
    ({"nodes": "2-"}, "nodes", "MIN-MAX"),              # sbatch: Maximum node count -1 is less than minimum node count 2
    ({"nodes": "1-2:1"}, "nodes", "MIN-MAX"),           # sbatch: "2:1" is not a valid node count
    ({"nodes": "1,2"}, "nodes", "MIN-MAX"),             # sbatch: "1,2" is not a valid node count
    ({"nodes": "0-2"}, "nodes", "start at 1"),
    ({"nodes": "two"}, "nodes", "MIN-MAX"),
    ({"gpus": "a100:"}, "gpus", "TYPE:COUNT"),          # sbatch: Invalid generic resource (gres) specification
    ({"gpus": ":2"}, "gpus", "TYPE:COUNT"),             # sbatch: Invalid generic resource (gres) specification
    ({"gpus": "2-4"}, "gpus", "TYPE:COUNT"),            # sbatch: Invalid Trackable RESource (TRES) specification
    ({"gpus": "a100:0"}, "gpus", "count of 1 or more"),
    ({"gpus": "a100:3", "gpus_per_node": 2}, "gpus", "whole number of nodes"),
])
def test_malformed_count_text_names_the_forms(kwargs, field, text):
    problems = SlurmJob(**kwargs).problems()
    assert [p.field for p in problems].count(field) == 1, problems   # one message, not the generic one as well
    assert any(p.field == field and text in p.message for p in problems), problems


@pytest.mark.parametrize("value,ok", [
    ("$SLURM_CPUS_PER_TASK", True), ("${SLURM_CPUS_PER_TASK}", True), ("${SLURM_CPUS_PER_TASK:-1}", True),
    ("$(nproc)", False), ("four", False), ("2-4", False),
])
def test_srun_counts_may_be_variables_the_shell_expands(value, ok):
    problems = Srun(cpus_per_task=value).problems()
    assert (problems == []) is ok, problems
    if not ok:
        assert len(problems) == 1 and "a variable ($SLURM_CPUS_PER_TASK)" in problems[0].message


def test_a_variable_is_no_count_on_an_sbatch_line():
    # #SBATCH lines are never expanded: sbatch reads "$N" as it stands and refuses it
    problems = SlurmJob(nodes="$N").problems()
    assert [p.field for p in problems] == ["nodes"] and "MIN-MAX" in problems[0].message


def test_the_generic_whole_number_check_still_applies_to_other_int_fields():
    assert [p.field for p in SlurmJob(ntasks="2-4", nodes=0).problems()] == ["nodes", "ntasks"]


def test_node_range_counts_with_its_least_nodes_and_fits_tasks_in_its_most():
    job = SlurmJob(nodes="2-4", gpus="a100:8")
    assert job.node_count == 2 and job.gpus_on_each_node == 4
    assert SlurmJob(nodes=2, gpus="a100:8").gpus_on_each_node == 4
    assert SlurmJob(nodes="1-2", gpus="a100:2,v100:2").gpus_on_each_node == 4
    # sbatch --nodes=1-2 --ntasks=4 --ntasks-per-node=2: accepted; --ntasks=6: more than 2 nodes × 2 can hold
    assert SlurmJob(nodes="1-2", ntasks=4, ntasks_per_node=2).problems() == []
    problems = SlurmJob(nodes="1-2", ntasks=6, ntasks_per_node=2).problems()
    assert [p.field for p in problems] == ["ntasks"] and "at most 2 nodes (1-2)" in problems[0].message


# --- other generic resources (--gres items besides the GPUs) ----------------------------------------------

def test_other_gres_share_the_gres_directive_gpus_first():
    job = SlurmJob(gpus_per_node=2, gpu_type="v100x", other_gres=("lscratch:200",))
    assert job.problems() == []
    assert directive_lines(job) == ["--gres=gpu:v100x:2,lscratch:200"]
    assert directive_lines(SlurmJob(other_gres=("lscratch:200", "mps:50"))) == ["--gres=lscratch:200,mps:50"]
    per_node = SlurmJob(gpus_per_node=4, gpu_type="a100", gpu_flag="gpus-per-node", other_gres=("lscratch:10",))
    assert directive_lines(per_node) == ["--gpus-per-node=a100:4", "--gres=lscratch:10"]


def test_other_gres_is_a_declared_field_forms_cli_and_json_know():
    f = SlurmJob.field_spec("other_gres")
    assert f.is_tuple and f.base_type is str and f.info.label and f.info.help
    job = SlurmJob(gpus_per_node=1, other_gres=("lscratch:200",))
    assert SlurmJob.from_json(job.to_json()) == job


@pytest.mark.parametrize("item,text", [
    ("gpu:2", "GPUs per node"),
    ("", "not a generic resource"),
    ("lscratch 200", "not a generic resource"),
    ("lscratch:$SIZE", "not read by the shell"),
])
def test_other_gres_problems(item, text):
    problems = SlurmJob(other_gres=(item,)).problems()
    assert any(p.field == "other_gres" and text in p.message for p in problems), problems


@pytest.mark.parametrize("shell,fail_fast,ok", [
    ("/bin/bash", "strict", True), ("/bin/bash -l", "strict", True), ("/usr/bin/env bash", "errexit", True),
    ("/bin/sh", "off", True),                  # a read-back sh script keeps its own shell and options
    ("/bin/sh", "strict", False),              # the prologue's set -o pipefail is bash
    ("bash", "strict", False), ("", "strict", False), ("/bin/bash\nrm -rf ~", "strict", False),
])
def test_the_shell_line_is_an_absolute_program_and_bash_when_the_prologue_needs_it(shell, fail_fast, ok):
    problems = SlurmJob(shell=shell, fail_fast=fail_fast).problems()
    assert (problems == []) is ok, problems
    assert all(p.field == "shell" for p in problems)


@pytest.mark.parametrize("value,shown", [("$HOME/logs/%j.out", "so $HOME is not"), ("${SCRATCH}/x", "so ${SCRATCH} is"),
                                         ("$(pwd)/x", "so $(…) is"), ("a$", "so $ is")])
def test_a_variable_in_a_directive_is_named_in_the_message(value, shown):
    assert shown in SlurmJob(output=value).problems()[0].message


@pytest.mark.parametrize("field", ["partition", "account", "constraint", "output", "error", "chdir", "mail_user"])
@pytest.mark.parametrize("control", ["\n", "\t", "\r"])
def test_a_directive_value_with_a_control_character_is_a_problem_not_a_silent_space(field, control):
    job = SlurmJob(**{field: f"a{control}b"})
    assert [p.field for p in job.problems()] == [field]
    assert "line break" in job.problems()[0].message
    # without the problem the directive would say "a b": not the value the form holds, nor one it loads back
    assert directive_lines(job) == [f'--{field.replace("_", "-")}="a b"']


def test_a_module_name_starting_with_a_dash_is_a_problem():
    problems = SlurmJob(modules=("--force",)).problems()
    assert [p.field for p in problems] == ["modules"]
    assert "reads it as one of its options" in problems[0].message
    assert SlurmJob(modules=("cuda/12.1", "py-torch@2.3")).problems() == []
