"""The exercises and lessons on a SingularityCE site that requires an account (session 21).

The site here is written by the tests, after a university cluster's public guide: its container program is
``singularity`` (no ``apptainer`` command), its module is listed under ``singularity``, every job names an account,
the default memory is 768M per CPU, and two GPU partitions of equal size are listed, the 2-GPU one first and the
8-GPU one the default. An answer written with ``apptainer`` must be refused there (lint's HPC414 says such a step
stops with 'apptainer: command not found'); the lessons' site-filled scripts must show only the mistake each one
teaches; the multi-node exercises must pick the partition the multi-node example picks; the Jupyter job from the
command line must ask for the memory the Jupyter example asks for.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import hpcwidgets as hw
from hpcwidgets import lessons
from hpcwidgets.cli import main
from hpcwidgets.examples import examples
from hpcwidgets.exercises import AnswerError, check_command, check_script, check_tunnel
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.render import render
from test_exercise_answers import run_solution

ROOT = Path(__file__).resolve().parents[1]

#: the site, shared with tests/test_lessons_g_s21.py
SITE_TOML = ROOT / "tests" / "data" / "profiles" / "lakes.toml"
SITE = SITE_TOML.read_text(encoding="utf-8")


@pytest.fixture()
def site(isolated_profiles) -> str:
    return str(SITE_TOML)


def _solutions() -> list[str]:
    return sorted(p.name.split("-")[0] for p in (ROOT / "solutions").glob("ex*.ipynb"))


# ------------------------------------------------------------------------------------------------
# 1 · the container program the site has
# ------------------------------------------------------------------------------------------------
WANT = hw.ApptainerRun(binary="singularity", action="exec", image="/x.sif", command=("python", "t.py"))


def test_check_command_refuses_apptainer_where_the_site_runs_singularity():
    with pytest.raises(AnswerError) as info:
        check_command("apptainer exec /x.sif python t.py", WANT)
    text = str(info.value)
    assert "singularity (its profile's apptainer_binary)" in text and "apptainer: command not found" in text, text
    assert "write `singularity exec …`" in text, text
    check_command("singularity exec /x.sif python t.py", WANT)


def test_singularity_is_right_where_the_site_runs_apptainer():
    # Apptainer installs singularity as a second name; the other way round there is none
    check_command("singularity exec /x.sif python t.py", WANT.replace(binary="apptainer"))


def test_the_program_inside_srun_is_judged_too():
    want = hw.Srun(mpi="pmix", nodes=2, ntasks_per_node=2, command=("singularity", "exec", "/x.sif", "/app"))
    with pytest.raises(AnswerError, match=r"apptainer exec: this site runs its images with singularity"):
        check_command("srun --mpi=pmix -N 2 --ntasks-per-node=2 apptainer exec /x.sif /app", want)
    check_command("srun --mpi=pmix -N 2 --ntasks-per-node=2 singularity exec /x.sif /app", want)


def _job(program: str, module: str = "singularity") -> str:
    return (f"#!/bin/bash\n#SBATCH --partition=spgpu\n#SBATCH --account=ws\n#SBATCH --gres=gpu:1\n#SBATCH --mem=40G\n"
            f"#SBATCH --time=00:30:00\nmodule load {module}\n{program} exec --nv /x.sif python train.py\n")


def test_check_script_with_the_profile_refuses_the_program_the_site_lacks(site):
    prof = load_profile(site)
    want = {"partition": "spgpu", "gpus_per_node": 1, "program": ("python", "train.py")}
    with pytest.raises(AnswerError) as info:
        check_script(_job("apptainer"), want, profile=prof, lint_codes=("HPC409",))
    assert "has no apptainer command" in str(info.value), str(info.value)
    # a module named for apptainer does not make the program appear (the profile lists none)
    with pytest.raises(AnswerError, match="has no apptainer command"):
        check_script(_job("apptainer", "apptainer"), want, profile=prof, lint_codes=("HPC409",))
    check_script(_job("singularity"), want, profile=prof, lint_codes=("HPC409",))
    # told once, by the linter, when the task asks for its finding
    with pytest.raises(AnswerError) as info:
        check_script(_job("apptainer"), want, profile=prof, lint_codes=("HPC409", "HPC414"))
    assert str(info.value).count("apptainer: command not found") == 1, str(info.value)


def test_check_script_leaves_the_practice_clusters_apptainer_alone(isolated_profiles):
    # local lists Apptainer as render-only: its exercises still write apptainer, the program its profile names
    local = load_profile("local")
    script = "#!/bin/bash\n#SBATCH --partition=debug\n#SBATCH --time=00:10:00\napptainer exec /x.sif python t.py\n"
    check_script(script, {"partition": "debug"}, profile=local)


_REGION = re.compile(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION\n?", re.S)


def _swap(value, swapped: list):
    """The answer key's value with the site's program replaced by apptainer (the name the site lacks)."""
    if isinstance(value, str) and "singularity " in value:
        swapped.append(value)
        return value.replace("singularity ", "apptainer ")
    if isinstance(value, hw.Workflow) and getattr(value.container, "binary", "") == "singularity":
        swapped.append(value)
        return value.replace(container=value.container.replace(binary="apptainer"))
    return value


def _run_with_apptainer(name: str, profile: str) -> list:
    """Run the solution notebook with every answer the key gives swapped by :func:`_swap` right after its region;
    the answers swapped (an AnswerError stops it at the first check that refuses one)."""
    notebook = json.loads(next((ROOT / "solutions").glob(f"{name}-*.ipynb")).read_text(encoding="utf-8"))
    swapped: list = []
    namespace = {"__name__": "__main__", "_swap": lambda v: _swap(v, swapped)}
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        if "parameters" in cell["metadata"].get("tags", []):
            src += f"\nprofile = {profile!r}\n"
        for region in _REGION.finditer(src):
            names = re.findall(r"(?m)^(\w+)(?:, \w+)* =", region.group(1))
            src = src.replace(region.group(0), region.group(0).rstrip("\n") + "\n"
                              + "".join(f"{n} = _swap({n})\n" for n in names), 1)
        exec(compile(src, name, "exec"), namespace)
    return swapped


@pytest.mark.parametrize("name", _solutions())
def test_every_exercise_refuses_an_apptainer_answer_on_the_singularity_site(name, site, capsys):
    """Each task whose answer key runs the site's program: the same answer with apptainer fails its check."""
    if name in ("ex06", "ex11"):   # ch-run, and ssh: no answer runs the site's container program
        assert _run_with_apptainer(name, site) == []
        return
    with pytest.raises(AnswerError) as info:
        _run_with_apptainer(name, site)
    assert "has no apptainer command" in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["ex02", "ex04", "ex05", "ex12"])
def test_the_task_names_the_sites_program(name, site):
    _, printed, markdown = run_solution(name, profile=site)
    assert "singularity" in printed, printed   # the set-up cell prints the program the site has
    tasks = "".join(part.split("\n## ")[0] for part in markdown.split("## Task")[1:])   # the tasks' own text
    assert "`apptainer exec`" not in tasks and "has no `apptainer` command" in tasks, tasks


# ------------------------------------------------------------------------------------------------
# 2 · the lessons' scripts fit the site
# ------------------------------------------------------------------------------------------------
def test_the_head_carries_account_memory_module_and_program(site):
    prof = load_profile(site)
    head = lessons.job_head(prof, gpus=1)
    assert "#SBATCH --partition=spgpu\n#SBATCH --account=ws\n" in head, head
    assert "#SBATCH --mem=46G\n" in head and head.endswith("module load singularity\n"), head   # 372G / 8 GPUs
    no_flag = head + f"{prof.apptainer_binary} exec /x.sif python train.py\n"
    assert {f.code for f in lint(no_flag, prof) if f.severity != "info"} == {"HPC201"}
    fixed = no_flag.replace("exec ", "exec --nv ")
    assert {f.code for f in lint(fixed, prof) if f.severity != "info"} == set()
    # a memory the lesson sets is kept; the generic site (no small default) gets no --mem
    assert "--mem=46G" not in lessons.job_head(prof, "--mem=10G", gpus=1)
    assert "--mem" not in lessons.job_head(load_profile("generic"), gpus=1)


def _run_cells(path: Path, profile: str, upto: int) -> dict:
    namespace: dict = {"__name__": "__main__", "profile": profile}
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for i, cell in enumerate(cells[: upto + 1]):
        if cell["cell_type"] == "code" and "parameters" not in cell["metadata"].get("tags", []):
            exec(compile("".join(cell["source"]), f"{path.name}:{i}", "exec"), namespace)
    return namespace


def test_lesson00s_multi_node_pattern_lints_clean_on_the_site(site, capsys):
    ns = _run_cells(ROOT / "notebooks" / "00-quickstart.ipynb", site, 4)
    script = render(ns["wf"])
    assert "#SBATCH --partition=spgpu" in script and "#SBATCH --account=ws" in script, script
    assert "module load singularity" in script and "singularity exec --nv" in script, script
    assert re.search(r"#SBATCH --mem=\d+G", script), script
    assert [f.format() for f in lint(script, load_profile(site)) if f.severity != "info"] == []
    assert ns["job"].partition == examples(load_profile(site))["multi-node-torchrun"].model.job.partition


def test_lesson04s_examples_show_only_their_mistake_on_the_site(site, capsys):
    ns = _run_cells(ROOT / "notebooks" / "04-gpus-and-environment.ipynb", site, 8)
    prof = load_profile(site)
    assert {f.code for f in lint(ns["no_flag"], prof) if f.severity != "info"} == {"HPC201"}
    assert {f.code for f in lint(ns["cpu_image"], prof) if f.severity != "info"} == {"HPC213"}
    assert {f.code for f in lint(ns["script"], prof)} == {"HPC209"}


def test_site_job_caps_the_time_at_the_partitions_limit(isolated_profiles):
    local = load_profile("local")
    part = local.default(gpu=True) or local.default()
    job = lessons.site_job(local, part=part, time="04:00:00")
    assert job.time == part.max_time and not [p for p in hw.lint(f"{render(job)}true\n", local)
                                              if p.code == "HPC402"]


# ------------------------------------------------------------------------------------------------
# 3 · one multi-node partition for examples, lessons and exercises
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["generic", "local", "midway3", "SITE"])
def test_the_multi_node_partition_is_the_examples(name, site):
    prof = load_profile(site if name == "SITE" else name)
    assert lessons.multi_node_partition(prof).name == examples(prof)["multi-node-torchrun"].model.job.partition


@pytest.mark.parametrize("name", ["ex09", "ex10"])
def test_the_multi_node_exercises_use_the_default_8_gpu_partition(name, site):
    namespace, _, _ = run_solution(name, profile=site)
    assert namespace["part"].name == "spgpu" and namespace["gpus"] == 8


# ------------------------------------------------------------------------------------------------
# 4 · the tunnel's user
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, note", [
    ("ssh -N -L 8888:n1:23456 lakes.example.edu", "names no user"),
    ("ssh -N -L 8888:n1:23456 $USER@lakes.example.edu", "names $USER"),
    ("ssh -N -J lakes.example.edu -L 8888:localhost:23456 n1", "names no user"),
    ("ssh -N -L 8888:n1:23456 jdoe@lakes.example.edu", ""),
    ("ssh -N -L 8888:n1:23456 -l jdoe lakes.example.edu", ""),
    ("ssh -N -J jdoe@lakes.example.edu -L 8888:localhost:23456 jdoe@n1", ""),
])
def test_a_tunnel_without_the_cluster_user_passes_with_a_note(answer, note, capsys):
    check_tunnel(answer, node="n1", port=23456, login_host="lakes.example.edu", local_port=8888)
    out = capsys.readouterr().out
    assert out.startswith("✓")
    assert (note in out and "your laptop's user" in out) if note else "note:" not in out, out


def test_ex11s_answer_key_names_a_user(site):
    namespace, printed, markdown = run_solution("ex11", profile=site)
    assert namespace["tunnel"].endswith(f" {namespace['user']}@lakes.example.edu")
    assert "note:" not in printed and "laptop's user name" in markdown


# ------------------------------------------------------------------------------------------------
# 5 · the Jupyter job's memory
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["generic", "local", "midway3", "SITE"])
def test_the_jupyter_job_asks_for_the_examples_memory(name, site):
    prof = load_profile(site if name == "SITE" else name)
    assert hw.JupyterJob.for_profile(prof).job.mem == examples(prof)["jupyter"].model.job.mem


def test_jupyter_job_on_the_command_line_has_the_memory_and_no_hpc413(site, tmp_path, capsys):
    out = tmp_path / "lab.sbatch"
    assert main(["jupyter-job", "--profile", site, "-o", str(out)]) == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert "#SBATCH --mem=8G" in text
    assert not [f for f in lint(text, load_profile(site)) if f.code == "HPC413"]
    capsys.readouterr()
    # a memory per CPU typed on the command line is the request: no --mem beside it
    assert main(["jupyter-job", "--profile", site, "--set", "job.mem_per_cpu=4G"]) == 0
    typed = capsys.readouterr().out
    assert "#SBATCH --mem-per-cpu=4G" in typed and "#SBATCH --mem=" not in typed


def test_the_jupyter_memory_follows_the_partition_chosen_on_the_command_line(tmp_path, isolated_profiles, capsys):
    small = SITE.replace('name = "lakes"', 'name = "small"').replace(
        'mem_per_node = "180G"\ndef_mem_per_cpu = "768M"\n\n[[partitions]]\nname = "gpu"',
        'mem_per_node = "180G"\ndef_mem_per_cpu = "768M"\n\n[[partitions]]\nname = "tiny"\nmax_time = "01:00:00"\n'
        'cpus_per_node = 4\nmem_per_node = "6G"\n\n[[partitions]]\nname = "gpu"')
    path = tmp_path / "small.toml"
    path.write_text(small, encoding="utf-8")
    assert main(["jupyter-job", "--profile", str(path), "--set", "job.partition=tiny"]) == 0
    assert "#SBATCH --mem=3G" in capsys.readouterr().out   # half of the tiny node's 6G


# ------------------------------------------------------------------------------------------------
# 6 · the practice cluster's render-only Apptainer in the lessons' findings tables
# ------------------------------------------------------------------------------------------------
def test_the_findings_table_leaves_out_render_only_hpc416_with_a_note(isolated_profiles, capsys):
    local = load_profile("local")
    script = lessons.job_head(local, gpus=1) + "apptainer exec /x.sif python train.py\n"
    found = lint(script, local)
    assert "HPC416" in {f.code for f in found} and "HPC414" not in {f.code for f in found}
    lessons.findings_table(found)
    out = capsys.readouterr().out
    assert "HPC201" in out and "HPC416" not in out.split("(not shown")[0], out
    assert out.rstrip().endswith("(not shown: HPC416, a container runtime this cluster's profile lists as "
                                 "render-only: its commands are shown and checked here, not run)"), out


def test_the_findings_table_keeps_hpc414_for_a_program_the_site_lacks(site, capsys):
    prof = load_profile(site)
    found = lint(_job("apptainer"), prof)
    lessons.findings_table(found)
    out = capsys.readouterr().out
    assert "HPC414" in out and "not shown" not in out, out
