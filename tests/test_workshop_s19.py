"""Checking the workshop for another site (session 19): ``workshop check --profile SITE`` gives the site to the
exercises too, and ``slides check --profile SITE`` names the modules the deck loads that the site's profile does
not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcwidgets import slides
from hpcwidgets.cli import main
from hpcwidgets.exercises import runner

SITE = """\
name = "{name}"
description = "a site of the tests"
login_host = "login.example.edu"
gpu_vendor = "nvidia"
default_partition = "cpu"
{gpu}
{modules}

[[partitions]]
name = "cpu"
max_time = "1-00:00:00"
{gpu_partition}
"""
GPU_PARTITION = """
[[partitions]]
name = "gpu"
max_time = "1-00:00:00"
gpus_per_node = 4
"""


def _site(folder: Path, name: str = "mysite", *, modules: str = 'apptainer = "apptainer/1.3.4"\ncuda = "cuda/11.8"',
          gpus: bool = True) -> Path:
    """A small site profile file: CPU and (with ``gpus``) GPU partitions, and ``modules`` as its [modules] table
    ("" for a site that lists none)."""
    path = folder / f"{name}.toml"
    path.write_text(SITE.format(name=name, gpu='default_gpu_partition = "gpu"' if gpus else "",
                                modules=f"[modules]\n{modules}" if modules else "",
                                gpu_partition=GPU_PARTITION if gpus else ""), encoding="utf-8")
    return path


def _notebook(path: Path, *sources: str) -> Path:
    """An exercise notebook: the first source is its parameters cell; a source starting with %% md is markdown."""
    cells = []
    for i, src in enumerate(sources):
        markdown = src.startswith("%% md\n")
        cells.append({"cell_type": "markdown" if markdown else "code", "id": f"c{i}",
                      "metadata": {"tags": ["parameters"]} if i == 0 else {},
                      "source": src.removeprefix("%% md\n"),
                      **({} if markdown else {"execution_count": None, "outputs": []})})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}))
    return path


TASK = 'raise NotImplementedError("Exercise: write the job")'
SETUP = 'import hpcwidgets as hw\nprof = hw.load_profile(profile)\npart = prof.default(gpu=True)\nprint(prof.name, part.name)'


# ------------------------------------------------------------------------------------------------
# workshop check --profile: the exercises
# ------------------------------------------------------------------------------------------------
def test_each_exercise_with_a_profile_parameter_runs_for_each_site(tmp_path):
    ex = _notebook(tmp_path / "exercises" / "ex01-job.ipynb", 'profile: str = "generic"  # the site\ncpus = 2',
                   SETUP, TASK)
    plain = _notebook(tmp_path / "exercises" / "ex02-plain.ipynb", "cpus = 2", TASK)
    tasks = runner.plan(tmp_path, kinds=["exercise"], profiles=("midway3", "local"))
    assert [(t.notebook, t.label()) for t in tasks] == [
        (ex, "profile=midway3"), (ex, "profile=local"), (plain, "(defaults)")]
    assert [t.note for t in tasks] == ["", "", "ex02-plain takes no profile parameter: it ran with its defaults, "
                                               "not for midway3, local"]
    # without a site, every exercise runs once with its defaults, as before
    assert [(t.label(), t.note) for t in runner.plan(tmp_path, kinds=["exercise"])] == [("(defaults)", "")] * 2


def test_the_profile_default_is_read_as_python_from_the_parameters_cell(tmp_path):
    # papermill's own reader (inspect_notebook) skips a line holding a second "=", and with it the rest of the cell
    nb = _notebook(tmp_path / "a.ipynb", 'package = "scikit-learn==1.5.0"\nprofile = "local"  # where = here', TASK)
    assert runner.profile_default(nb) == "local"
    computed = _notebook(tmp_path / "b.ipynb", 'import os\nprofile = os.environ.get("SITE", "generic")', TASK)
    assert runner.profile_default(computed) == ""
    # a profile set elsewhere is not a parameter papermill replaces
    elsewhere = _notebook(tmp_path / "c.ipynb", "cpus = 2", 'profile = "generic"', TASK)
    assert runner.profile_default(elsewhere) is None


@pytest.mark.parametrize("cell", [
    "from hpcwidgets.run import slurm\njob = slurm.submit('job.sh')",
    "from hpcwidgets import lessons\nresult = lessons.run_job(script)",
    "!sbatch job.sh",
    "%%bash\ncd work\nsbatch job.sh",
    "!cd work && sbatch job.sh",
    "import subprocess\nsubprocess.run(['sbatch', 'job.sh'], check=True)",
    "import os\nos.system('hpcwidgets submit job.sh')",
])
def test_a_job_submitted_before_the_first_task_is_seen(tmp_path, cell):
    nb = _notebook(tmp_path / "ex.ipynb", 'profile = "local"', cell, TASK)
    assert runner.submits_before_task(nb)


@pytest.mark.parametrize("cells", [
    ('print("submit the script there with sbatch")', TASK),         # words about sbatch submit nothing
    ("%% md\n`sbatch job.sh` sends the job", TASK),                  # nor does a markdown cell
    (TASK, "from hpcwidgets.run import slurm\nslurm.submit('job.sh')"),  # after the first task: never run
    (f"x = 1\n{TASK}\n!sbatch job.sh",),                               # the task's raise ends the run
])
def test_what_is_not_a_submission_before_the_first_task(tmp_path, cells):
    nb = _notebook(tmp_path / "ex.ipynb", 'profile = "local"', *cells)
    assert not runner.submits_before_task(nb)


def test_an_exercise_that_submits_keeps_its_default_where_the_site_cannot_run(tmp_path, monkeypatch):
    ex = _notebook(tmp_path / "exercises" / "ex07-submit.ipynb", 'profile = "local"',
                   "from hpcwidgets.run import slurm\nslurm.submit('probe.sh')", TASK)
    asked: list[str] = []

    def blocked(profile):
        asked.append(profile)
        return "" if profile == "here" else "no Slurm answers here"
    monkeypatch.setattr(runner, "site_jobs_blocked", blocked)
    tasks = runner.plan(tmp_path, kinds=["exercise"], profiles=("mysite", "here", "other"))
    assert asked == ["mysite", "here", "other"]
    assert [(t.notebook, t.params) for t in tasks] == [(ex, {"profile": "here"}), (ex, {"profile": "local"})]
    kept = tasks[1]
    assert kept.label() == "profile=local (its default)"
    assert kept.note == ("ex07-submit submits a job before its first task, and these sites' jobs cannot run here: "
                         "mysite (no Slurm answers here); other (no Slurm answers here); it ran with its default "
                         "profile, local, instead")
    # an exercise that submits nothing before its task is never held back, and Slurm is not even asked
    asked.clear()
    _notebook(ex, 'profile = "local"', SETUP, TASK)
    assert [t.params for t in runner.plan(tmp_path, kinds=["exercise"], profiles=("mysite",))] == [
        {"profile": "mysite"}]
    assert asked == []


def test_where_a_sites_jobs_can_run_is_what_the_lessons_decide(monkeypatch):
    from hpcwidgets import lessons
    answers = {
        "nowhere": lessons.Target("nowhere", False, False, "no Slurm answers here (start the practice cluster)"),
        "mysite": lessons.Target("local", True, True, "real jobs run on the practice cluster"),
        "here": lessons.Target("here", True, False, "ch-run is not installed here"),
    }
    seen = []

    def target(profile, *, site_jobs=False):
        seen.append(site_jobs)
        return answers[profile]
    monkeypatch.setattr(lessons, "practice_target", target)
    assert runner.site_jobs_blocked("nowhere") == "no Slurm answers here (start the practice cluster)"
    assert runner.site_jobs_blocked("mysite") == ("the Slurm here has the partitions of profile 'local', not those "
                                                  "of 'mysite'")
    assert runner.site_jobs_blocked("here") == ""  # its Slurm answers: the container is the notebook's business
    assert seen == [True] * 3


def test_the_cli_gives_the_notebooks_a_profile_path_they_can_open(tmp_path, monkeypatch, capsys, isolated_profiles):
    """Every run works in a temporary directory of its own: a relative .toml path would name nothing there."""
    _notebook(tmp_path / "ws" / "exercises" / "ex01-job.ipynb", 'profile = "generic"', SETUP, TASK)
    _notebook(tmp_path / "ws" / "exercises" / "ex02-plain.ipynb", "cpus = 2", TASK)
    (tmp_path / "sites").mkdir()
    _site(tmp_path / "sites")
    monkeypatch.chdir(tmp_path)
    ran: list[runner.Task] = []

    def run_all(tasks, **_):
        ran.extend(tasks)
        return [runner.Outcome(t, True, 0.1) for t in tasks]
    monkeypatch.setattr(runner, "run_all", run_all)
    assert main(["workshop", "check", "--root", "ws", "--profile", "sites/mysite.toml"]) == 0
    site = str(tmp_path / "sites" / "mysite.toml")
    assert [t.params for t in ran] == [{"profile": site}, {}]
    out, err = capsys.readouterr()
    assert f"profile={site}" in out and "(defaults)" in out
    assert f"note: ex02-plain takes no profile parameter: it ran with its defaults, not for {site}" in err


@pytest.mark.slow
def test_the_check_runs_an_exercise_against_the_site(tmp_path, isolated_profiles, capsys):
    """The exercise's set-up runs with the site's profile: a site without GPUs fails where it asks for the GPU
    partition, which the default profile has, and the table says which profile each run had."""
    _notebook(tmp_path / "ws" / "exercises" / "ex01-job.ipynb", 'profile = "generic"', SETUP, TASK)
    gpu_site = _site(tmp_path, "gpusite")
    cpu_site = _site(tmp_path, "cpusite", gpus=False)
    code = main(["workshop", "check", "--root", str(tmp_path / "ws"), "--jobs", "2",
                 "--profile", str(gpu_site), "--profile", str(cpu_site)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "1 passed, 1 failed" in out
    assert f"✗ exercise {tmp_path / 'ws' / 'exercises' / 'ex01-job.ipynb'} [profile={cpu_site}]" in out
    assert "AttributeError: 'NoneType' object has no attribute 'name' (an exercise may only stop at an unsolved " \
           "task's NotImplementedError)" in out  # no GPU partition: prof.default(gpu=True) is None


# ------------------------------------------------------------------------------------------------
# slides check --profile: module names
# ------------------------------------------------------------------------------------------------
DECK = """\
---
marp: true
---

## Load the runtime

Load it like any other software: `module load apptainer` (or `ml singularity` on older sites).

```bash
module load apptainer
module load cuda/12.1 fftw
ml singularity -cuda
module load $MY_MODULE
apptainer exec image.sif python train.py
```

<!-- hpcw: expect HPC208 -->
```bash
#!/bin/bash
#SBATCH --time=01:00:00
module load apptainer/1.3.4
apptainer pull image.sif docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime
```

```text
module load not-a-shell-block
```
"""


def test_modules_the_profile_does_not_name_are_reported_with_the_nearest(tmp_path):
    site = _site(tmp_path)
    found = slides.unknown_modules(DECK, str(site))
    near_apptainer = "(nearest: apptainer/1.3.4); write the site's module, or add it to the profile's [modules] if " \
                     "the site has it"
    assert found == [
        f"workshop.md:7: the deck loads module apptainer, which profile mysite does not name {near_apptainer}",
        f"workshop.md:7: the deck loads module singularity, which profile mysite does not name {near_apptainer}",
        f"workshop.md:10: the deck loads module apptainer, which profile mysite does not name {near_apptainer}",
        "workshop.md:11: the deck loads module cuda/12.1, which profile mysite does not name (nearest: cuda/11.8); "
        "write the site's module, or add it to the profile's [modules] if the site has it",
        "workshop.md:11: the deck loads module fftw, which profile mysite does not name (its modules: "
        "apptainer/1.3.4, cuda/11.8); write the site's module, or add it to the profile's [modules] if the site "
        "has it",
        # ml … -cuda unloads cuda (ml(1)); $MY_MODULE is known only when the job runs; the expect block's
        # apptainer/1.3.4 is the site's; a text block is not typed
        f"workshop.md:12: the deck loads module singularity, which profile mysite does not name {near_apptainer}",
    ]


def test_a_module_of_the_same_purpose_is_the_nearest_whatever_its_name(tmp_path):
    site = _site(tmp_path, modules='apptainer = "singularityce/4.1"\ncuda = "nvhpc/23.1"')
    found = slides.unknown_modules("```bash\nmodule load apptainer cuda\n```\n", str(site))
    assert [problem.split("(")[1].split(")")[0] for problem in found] == [
        "nearest: singularityce/4.1", "nearest: nvhpc/23.1"]


def test_no_module_report_without_a_profile_or_modules_to_compare_with(tmp_path):
    assert slides.unknown_modules(DECK) == []                                    # the deck as shipped
    assert slides.unknown_modules(DECK, str(_site(tmp_path, "bare", modules=""))) == []  # programs on PATH
    known = _site(tmp_path, "known", modules='apptainer = "apptainer"\ncuda = "cuda/12.1"\nfftw = "fftw"\n'
                                             'singularity = "singularity"')
    assert slides.unknown_modules(DECK, str(known)) == [
        "workshop.md:21: the deck loads module apptainer/1.3.4, which profile known does not name (nearest: "
        "apptainer); write the site's module, or add it to the profile's [modules] if the site has it"]


def test_a_block_pinned_to_a_profile_is_compared_with_that_profile(tmp_path):
    pinned = _site(tmp_path, "pinned", modules='apptainer = "apptainer"')
    deck = f"<!-- hpcw: profile={pinned} -->\n```bash\nmodule load apptainer\n```\n"
    assert slides.unknown_modules(deck, str(_site(tmp_path))) == []
    assert len(slides.unknown_modules(deck.replace("<!-- hpcw: profile=" + str(pinned) + " -->\n", ""),
                                      str(_site(tmp_path)))) == 1


def test_slides_check_fails_for_a_site_that_names_the_module_otherwise(tmp_path, capsys):
    deck_dir = tmp_path / "deck"
    deck_dir.mkdir()
    (deck_dir / slides.DECK_NAME).write_text("## Load it\n\n```bash\nmodule load apptainer\n"
                                             "apptainer exec image.sif python train.py\n```\n", encoding="utf-8")
    assert slides.main(["check", "--slides-dir", str(deck_dir), "--profile", "generic"]) == 0
    capsys.readouterr()
    assert slides.main(["check", "--slides-dir", str(deck_dir), "--profile", str(_site(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "workshop.md:4: the deck loads module apptainer, which profile mysite does not name (nearest: " \
           "apptainer/1.3.4)" in err


def test_the_shipped_deck_loads_only_modules_its_profiles_name():
    text = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
    for profile in ("generic", "midway3", "local"):
        assert slides.unknown_modules(text, profile) == [], profile
