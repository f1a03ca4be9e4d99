"""Lessons 04 and 09 on an AMD GPU site with SingularityCE only (session 22).

* The lessons' hand-written GPU jobs start their container with the site's program and the flag of the site's GPUs
  (:func:`hpcwidgets.lessons.container_exec`, :func:`~hpcwidgets.lessons.gpu_fields`): ``singularity exec --rocm`` on
  the AMD test site, ``apptainer exec --nv`` on the shipped NVIDIA profiles. So lint shows no HPC218 (the other
  vendor's flag) and no HPC414 (a program the site does not have) beside the mistake an example teaches.
* The image they run is the site's example image (:func:`~hpcwidgets.lessons.site_image`): the profile's
  ``examples.image`` when it is a SIF file (a ROCm build on the AMD site).
* Lesson 04's first example (GPUs without the flag) teaches HPC201 on NVIDIA sites; on the AMD site lint leaves it
  alone, as the lesson's prose says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import run_lessons_with_papermill
from hpcwidgets import lessons
from hpcwidgets.lessons import findings_shown
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: 8 AMD GPUs per node, singularity only, an account on every job, a ROCm image as the example image
AMD_SITE = ROOT / "tests" / "data" / "profiles" / "amd_lessons_s22.toml"
ROCM_IMAGE = "/scratch/proj_0042/containers/pytorch_rocm6.2.sif"

#: an NVIDIA site whose default GPU partition has AMD GPUs of its own: the lessons' GPU job gets AMD's
MIXED_SITE = """\
name = "twovendors"
description = "a site of the tests: NVIDIA by default, the default GPU partition AMD"
runtimes = ["apptainer"]
gpu_vendor = "nvidia"
default_gpu_partition = "amdgpu"

[[partitions]]
name = "cpu"
is_default = true
max_time = "1-00:00:00"
cpus_per_node = 64
mem_per_node = "256G"

[[partitions]]
name = "nvgpu"
max_time = "1-00:00:00"
cpus_per_node = 32
mem_per_node = "256G"
gpus_per_node = 4

[[partitions]]
name = "amdgpu"
max_time = "1-00:00:00"
cpus_per_node = 64
mem_per_node = "512G"
gpus_per_node = 8
gpu_vendor = "amd"
"""

#: Intel GPUs take no flag
INTEL_SITE = Path(__file__).parent / "data" / "profiles" / "intel_s22.toml"


@pytest.fixture()
def amd(isolated_profiles) -> str:
    return str(AMD_SITE)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------------
# 1 · the helpers: the site's GPU flag, container command and image
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, vendor, flag, start", [
    ("generic", "nvidia", "--nv", "apptainer exec --nv"),
    ("local", "nvidia", "--nv", "apptainer exec --nv"),
    ("midway3", "nvidia", "--nv", "apptainer exec --nv"),
    ("AMD", "amd", "--rocm", "singularity exec --rocm"),
])
def test_the_gpu_flag_and_the_container_command_follow_the_site(name, vendor, flag, start, amd):
    site = load_profile(amd if name == "AMD" else name)
    assert lessons.gpu_vendor(site) == vendor
    assert lessons.gpu_flag(site) == flag
    assert lessons.gpu_fields(site) == {flag.lstrip("-"): True}
    assert lessons.container_exec(site) == start
    assert lessons.container_exec(site, "run") == start.replace(" exec ", " run ")


def test_a_partition_of_its_own_vendor_decides_the_flag(tmp_path, isolated_profiles):
    """The lessons' GPU job runs on the default GPU partition: its AMD GPUs win over the profile's NVIDIA, as in lint."""
    site = load_profile(_write(tmp_path, "twovendors", MIXED_SITE))
    assert lessons.gpu_vendor(site) == "amd" and lessons.container_exec(site) == "apptainer exec --rocm"
    script = lessons.job_head(site, gpus=1) + f'{lessons.container_exec(site)} "{lessons.site_image(site)}" python t.py\n'
    assert "#SBATCH --partition=amdgpu" in script
    codes = {f.code for f in lint(script, site)}
    assert not codes & {"HPC201", "HPC218"}, codes
    # the other flag on that partition is the mistake HPC218 names
    assert "HPC218" in {f.code for f in lint(script.replace("--rocm", "--nv"), site)}


def test_intel_gpus_take_no_flag(tmp_path, isolated_profiles):
    site = load_profile(str(INTEL_SITE))
    assert (lessons.gpu_vendor(site), lessons.gpu_flag(site), lessons.gpu_fields(site)) == ("intel", "", {})
    assert lessons.container_exec(site) == "apptainer exec"
    assert lessons.site_image(site) == "/scratch/img/pytorch_2.3.1.sif"   # no vendor build: the examples' stand-in


def test_the_image_is_the_sites_example_image(amd, tmp_path):
    assert lessons.site_image(load_profile(amd)) == ROCM_IMAGE
    assert lessons.site_image(load_profile("generic")) == load_profile("generic").examples.image
    # the practice cluster's example image is a Charliecloud directory: Apptainer's commands show the SIF beside it
    local = load_profile("local")
    assert not local.examples.image.endswith(".sif")
    assert lessons.site_image(local) == f"{local.image_dir}/pytorch_24.05.sif"
    # a profile that names only where its image comes from: the file apptainer pull makes of it
    text = AMD_SITE.read_text(encoding="utf-8").replace(f'image = "{ROCM_IMAGE}"',
                                                        'image_source = "docker://rocm/pytorch:rocm6.1_ubuntu22.04"')
    site = load_profile(_write(tmp_path, "sourced", text.replace('name = "amd_lessons_s22"', 'name = "sourced"')))
    assert lessons.site_image(site) == "/scratch/proj_0042/containers/pytorch_rocm6.1_ubuntu22.04.sif"


# ------------------------------------------------------------------------------------------------
# 2 · the lessons' scripts, run in this process cell by cell
# ------------------------------------------------------------------------------------------------
def _cells(lesson: str) -> list[dict]:
    path = next(NOTEBOOKS.glob(f"{lesson}-*.ipynb"))
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _run_cells(lesson: str, profile: str, ids: tuple[str, ...]) -> dict:
    """Run the code cells ``ids`` of the lesson, in order, with ``profile`` (and no real jobs)."""
    namespace: dict = {"__name__": "__main__", "profile": profile, "run_jobs": False, "site_jobs": False}
    cells = {cell.get("id"): cell for cell in _cells(lesson)}
    for cid in ids:
        assert cells[cid]["cell_type"] == "code", cid
        exec(compile("".join(cells[cid]["source"]), f"{lesson}:{cid}", "exec"), namespace)
    return namespace


LESSON_04 = ("04-02", "04-04", "04-06", "04-08", "04-10")
LESSON_09 = ("09-02", "09-accelerate-code", "93413e02", "checkpoint-before-the-limit-lint")

#: the example scripts of lesson 09 and their findings, the same on every site (the checkpoint cell shows only the
#: signal rules' findings of its scripts: the one it ends with asks for no CPUs per task, HPC136, on every site)
TAUGHT_09 = {"per_gpu": {"HPC101", "HPC502"}, "per_node": set(), "from_inside": {"HPC214"}, "ds_per_node": set(),
             "until_it_ends": {"HPC136"}}


def _codes(script: str, prof) -> set[str]:
    return {f.code for f in findings_shown(lint(script, prof))}


@pytest.mark.parametrize("name", ["generic", "local", "AMD"])
def test_lesson_09s_scripts_show_only_their_mistakes(name, amd, capsys):
    profile = amd if name == "AMD" else name
    ns = _run_cells("09", profile, LESSON_09)
    prof = load_profile(profile)
    start = lessons.container_exec(prof)
    for variable, taught in TAUGHT_09.items():
        script = ns[variable]
        assert f'{start} "{lessons.site_image(prof)}"' in script, (variable, script)
        codes = _codes(script, prof)
        assert codes - {"HPC209", "HPC123", "HPC529", "HPC530", "HPC511"} == taught, (variable, codes)
        assert not codes & {"HPC218", "HPC414"}, (variable, codes)
    capsys.readouterr()


def test_lesson_09s_corrected_jobs_on_the_amd_site(amd, capsys):
    ns = _run_cells("09", amd, LESSON_09)
    for variable in ("per_node", "ds_per_node", "until_it_ends"):
        script = ns[variable]
        assert f'singularity exec --rocm "{ROCM_IMAGE}"' in script, script
        assert not re.search(r"\bapptainer\b|--nv\b", script), script
    # the checkpoint examples still teach what they teach on this site
    printed = capsys.readouterr().out
    for code in ("HPC123", "HPC530", "HPC529"):
        assert re.search(rf"^line .* {code} ", printed, re.M), printed


@pytest.mark.parametrize("name", ["generic", "midway3", "AMD"])
def test_lesson_04s_examples_show_only_their_mistakes(name, amd, capsys):
    profile = amd if name == "AMD" else name
    prof = load_profile(profile)
    ns = _run_cells("04", profile, LESSON_04)
    nvidia = lessons.gpu_vendor(prof) == "nvidia"
    # GPUs without the flag: HPC201 on NVIDIA GPUs; lint leaves AMD's alone (ROCm images bring their libraries)
    assert _codes(ns["no_flag"], prof) == ({"HPC201", "HPC209"} if nvidia else {"HPC209"})
    assert _codes(ns["cpu_image"], prof) == {"HPC213", "HPC209"}
    assert _codes(ns["script"], prof) == {"HPC209"}
    assert ns["image"] == lessons.site_image(prof)
    for model in (ns["leaky"], *ns["fixes"].values()):
        assert model.binary == prof.apptainer_binary
        assert (model.nv, model.rocm) == (nvidia, not nvidia), model
    capsys.readouterr()


@pytest.mark.parametrize("lesson", ["04", "09"])
def test_no_gpu_job_of_the_lesson_writes_the_flag_or_the_image_by_hand(lesson):
    """Outside the deck's own script (lesson 09 shows it as it was written), no code cell writes ``--nv``,
    ``nv=True``, a bare ``apptainer`` command or the NVIDIA image's file name."""
    for cell in _cells(lesson):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or source.startswith('deck = """#!/bin/bash'):
            continue
        source = re.sub(r"^\s*#.*$", "", source, flags=re.M)   # comments may name the commands they stand for
        assert not re.search(r"exec --nv|\bnv=True|pytorch_24\.05|^(?:srun\s+)?apptainer\s|[\"' ]apptainer exec",
                             source, re.M), source


# ------------------------------------------------------------------------------------------------
# 3 · the whole lessons, run by papermill for the AMD site
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_lessons_04_and_09_run_for_the_amd_site(amd, tmp_path):
    runs = run_lessons_with_papermill(["04", "09"], amd, tmp_path)
    everything = "".join(text for cells in runs.values() for text in cells.values())
    assert not re.search(r"^line .* (HPC218|HPC414) ", everything, re.M), everything
    assert "Site profile: amd_lessons_s22; GPU vendor: amd; GPU flag: --rocm" in runs["04"]["04-02"]
    # lesson 04's three fixes and lesson 09's corrected jobs start their containers the site's way
    fixes = runs["04"]["04-10"]
    assert fixes.count("singularity exec") == 3 and fixes.count("--rocm") == 3 and ROCM_IMAGE in fixes, fixes
    for cid in ("09-accelerate-code", "93413e02", "checkpoint-before-the-limit-lint"):
        # the scripts' lines, not the findings' (HPC214's advice names apptainer exec on every site)
        shown = [line for line in runs["09"][cid].splitlines() if " exec " in line and not line.startswith("line ")]
        assert shown and all(f'singularity exec --rocm "{ROCM_IMAGE}"' in line for line in shown), runs["09"][cid]
    assert "--nv" not in runs["04"]["04-10"] + runs["09"]["09-accelerate-code"] + runs["09"]["93413e02"]
