"""The exercises on a site that charges jobs to an account and runs SingularityCE (session 20).

The site here is written by the tests: its GPU partition names its own account and QOS, the site rejects a job
without an account, its container program is ``singularity`` (which reads ``SINGULARITY_CACHEDIR`` only) and the
module that provides it is listed under the purpose ``singularity``. Every answer key must pass there, the batch
answers must carry what the profile's entry for the partition names, and the checks must refuse answers that
leave it out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hpcwidgets as hw
from hpcwidgets.cli import main
from hpcwidgets.exercises import AnswerError
from hpcwidgets.render import render
from test_exercise_answers import run_solution

ROOT = Path(__file__).resolve().parents[1]

SITE = """\
name = "chargedsite"
description = "a site of the tests: project accounts, SingularityCE"
login_host = "login.charged.example.edu"
runtimes = ["singularity"]
apptainer_binary = "singularity"
scratch = "/scratch/proj/$USER"
image_dir = "/scratch/proj/$USER/images"
cache_dir = "/scratch/proj/$USER/.singularity/cache"
gpu_vendor = "nvidia"
default_partition = "cpu"
default_gpu_partition = "gpu"
account = "proj"
account_required = true

[modules]
singularity = "singularity/4.1.5"

[[partitions]]
name = "cpu"
max_time = "1-00:00:00"
cpus_per_node = 48
mem_per_node = "180G"
is_default = true

[[partitions]]
name = "gpu"
max_time = "1-00:00:00"
max_nodes = 8
cpus_per_node = 48
mem_per_node = "180G"
gpus_per_node = 4
gpu_types = ["a100"]
account = "proj_gpu"
qos = "qos_gpu"
"""

#: the exercises that write a batch job, with the name of their answer and how to read it as a script
BATCH = {"ex07": "script", "ex08": "sweep", "ex09": "job", "ex10": "fixed"}


@pytest.fixture()
def site(tmp_path, isolated_profiles) -> str:
    path = tmp_path / "chargedsite.toml"
    path.write_text(SITE, encoding="utf-8")
    return str(path)


def _script(answer) -> str:
    return answer if isinstance(answer, str) else render(answer)


@pytest.mark.parametrize("name", sorted(p.name.split("-")[0] for p in (ROOT / "solutions").glob("ex*.ipynb")))
def test_every_answer_key_passes_on_the_site(name, site):
    namespace, printed, _ = run_solution(name, profile=site)
    assert namespace["prof"].name == "chargedsite"
    assert "✓" in printed


@pytest.mark.parametrize("name", sorted(BATCH))
def test_the_batch_answers_carry_the_partitions_account_qos_and_module(name, site):
    namespace, printed, _ = run_solution(name, profile=site)
    script = _script(namespace[BATCH[name]])
    assert "#SBATCH --account=proj_gpu" in script   # the partition's own, not the profile's top-level "proj"
    assert "#SBATCH --qos=qos_gpu" in script
    assert "module load singularity/4.1.5" in script   # the module listed for singularity, the site's program
    assert "proj_gpu" in printed   # the set-up cell shows the learner where the account comes from


@pytest.mark.parametrize("name", sorted(BATCH))
def test_a_site_without_an_account_gets_no_account_line(name, isolated_profiles):
    namespace, _, _ = run_solution(name, profile="generic")
    assert "--account" not in _script(namespace[BATCH[name]])


NO_ACCOUNT = {
    "ex07": 'script = f"""#!/bin/bash\n#SBATCH --partition={part.name}\n#SBATCH --qos=qos_gpu\n#SBATCH --gres=gpu:1\n'
            '#SBATCH --cpus-per-task={cpus}\n#SBATCH --mem={mem}\n#SBATCH --time={time}\nmodule load {module}\n'
            '{prof.apptainer_binary} exec {gpu_flag} {image} python train.py\n"""',
    "ex08": 'sweep = hw.Workflow.sweep("lr", learning_rates, "train.py", container=container, gpus_per_node=1, '
            'gpu_vendor=prof.gpu_vendor, partition=part.name, qos="qos_gpu", time="00:20:00", job_name="lr-sweep", '
            'modules=modules)',
    "ex09": 'job = hw.Workflow.multi_node("ddp_train.py", nodes=nodes, gpus_per_node=gpus, container=container, '
            'gpu_vendor=prof.gpu_vendor, partition=part.name, qos="qos_gpu", time="01:00:00", modules=modules)',
}


@pytest.mark.parametrize("name", sorted(NO_ACCOUNT))
def test_an_answer_without_the_account_is_refused_with_the_account_to_add(name, site):
    with pytest.raises(AnswerError) as info:
        run_solution(name, NO_ACCOUNT[name], profile=site)
    assert "HPC408" in str(info.value) and "--account=proj_gpu" in str(info.value), str(info.value)


def test_an_answer_without_the_qos_of_the_partition_is_refused(site):
    answer = NO_ACCOUNT["ex08"].replace('qos="qos_gpu"', 'account="proj_gpu"')
    with pytest.raises(AnswerError, match="#SBATCH --qos is \\(not set\\); the task asks for qos_gpu"):
        run_solution("ex08", answer, profile=site)


def test_ex10s_slide_script_keeps_the_account_and_fixing_it_keeps_it_too(site):
    namespace, _, _ = run_solution("ex10", profile=site)
    assert "#SBATCH --account=proj_gpu" in namespace["broken"]
    assert "#SBATCH --account=proj_gpu" in namespace["fixed"]


def test_the_pull_sets_the_variable_singularity_reads(site):
    namespace, printed, _ = run_solution("ex01", profile=site)
    assert namespace["answer"].startswith("SINGULARITY_CACHEDIR=/scratch/proj/$USER/.singularity/cache singularity pull ")
    assert "APPTAINER_CACHEDIR" not in namespace["answer"]
    assert "Program:          singularity (it reads SINGULARITY_CACHEDIR)" in printed
    # the variable Apptainer reads is no answer here: SingularityCE ignores it
    wrong = f'answer = "APPTAINER_CACHEDIR={{prof.cache_dir}} singularity pull --dir {{prof.image_dir}} {{sif_name}} {{image_source}}"'
    with pytest.raises(AnswerError, match="singularity reads SINGULARITY_CACHEDIR"):
        run_solution("ex01", wrong, profile=site)


def test_the_pull_on_an_apptainer_site_still_sets_apptainer_cachedir(isolated_profiles):
    namespace, _, _ = run_solution("ex01", profile="generic")
    assert namespace["answer"].startswith("APPTAINER_CACHEDIR=$SCRATCH/.apptainer/cache apptainer pull ")


def _exercise_text(name: str) -> str:
    path = next((ROOT / "exercises").glob(f"{name}-*.ipynb"))
    return "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"])


def test_the_exercises_say_which_cache_variable_and_where_the_account_comes_from():
    ex01 = _exercise_text("ex01")
    hint = next(line for line in ex01.splitlines() if line.startswith("raise NotImplementedError(\"Exercise:"))
    assert "APPTAINER_CACHEDIR" in hint and "SINGULARITY_CACHEDIR" in hint
    for name in BATCH:
        text = _exercise_text(name)
        assert "prof.job_fields(part)" in text and "account" in text, name


@pytest.mark.slow
def test_the_workshop_check_passes_for_the_site(site, capsys):
    """The check the auditor ran, for the single-GPU job and the pull (solutions and exercises)."""
    code = main(["workshop", "check", "--root", str(ROOT), "--jobs", "2", "--only", "ex0[17]*", "--profile", site])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 passed, 0 failed" in out, out
