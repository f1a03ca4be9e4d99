"""The lessons follow the vendor of the site's GPUs (session 22): 00, 02, 03, 05, 07, 08, 10 and 13.

Lessons 04 and 09 have their own tests (tests/test_lessons_amd_s22.py). The others used to write NVIDIA's flag by hand
(``nv=True``, ``apptainer exec --nv``), so on an AMD site each such cell printed ``--nv`` and lint reported HPC218 (the
other vendor's flag) in the lesson. Now:

* their code cells take the flag from the site (``**lessons.gpu_fields(site)``, ``lessons.container_exec(site)``,
  ``lessons.gpu_vendor(site)`` for the workflows) and the PyTorch image from ``lessons.site_image(site)``: on the AMD
  test site (SingularityCE only) they print ``singularity … --rocm`` and the ROCm image, never ``--nv``, and no script
  they write gets HPC218 or HPC414; on ``generic`` they print ``--nv`` as before;
* lesson 07's TensorFlow image is AMD's ROCm build on AMD sites (the CUDA build leaves AMD GPUs unused);
* lesson 02's ordering rule uses the site's flag, or another option on a site whose GPUs take none (Intel);
* prose that says what the flag does names both vendors' flags;
* the few cells that keep ``--nv`` on purpose (lesson 00's script from the slides, written for an NVIDIA cluster, and
  lesson 10's rule catalogue) use no site at all.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from helpers import NOTEBOOKS, cell_source, lesson_cells, run_lesson_in_process, run_lessons_with_papermill
from hpcwidgets import lessons
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.render import render
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.workflow import Workflow

ROOT = Path(__file__).resolve().parents[1]
AMD_SITE = ROOT / "tests" / "data" / "profiles" / "amd_lessons_s22.toml"
ROCM_IMAGE = "/scratch/proj_0042/containers/pytorch_rocm6.2.sif"

#: the lessons changed, with code cells to run
LESSONS = ("00", "02", "03", "05", "07", "08", "10")
#: cells that keep NVIDIA's flag on purpose and use no site: the slides' script (lesson 00, its prose says so) and the
#: rule catalogue's own examples (lesson 10)
PINNED = {"00": {"29e0c961", "91e58e30"}, "10": {"10-08"}}
#: prose that names --nv alone on purpose (lesson 00 introduces the slides' NVIDIA script)
PINNED_PROSE = {"00": {"f3c893c2"}}
#: a short CPU training run, the same on every site (it prints no command)
SKIP = ("07-10",)
#: the cells that print a GPU job's container command, per lesson
FLAG_CELLS = {
    "00": ("34f8f104",),
    "02": ("02-10", "02-12", "02-run-code", "02-15"),
    "03": ("03-04", "03-06"),
    "05": ("05-12", "05-14"),
    "07": ("07-04", "07-06"),
    "08": ("08-grid-code",),
}
#: the cells that print the site's PyTorch image
IMAGE_CELLS = {"00": "34f8f104", "02": "02-10", "03": "03-04", "05": "05-14", "07": "07-06"}

#: Intel GPUs take no flag
INTEL_SITE = Path(__file__).parent / "data" / "profiles" / "intel_s22.toml"


@pytest.fixture()
def workdir(tmp_path, monkeypatch, isolated_profiles) -> Path:
    """A folder like notebooks/ to run the lessons in: their figures are written there, not into the checkout."""
    shutil.copytree(NOTEBOOKS / "images", tmp_path / "images")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(lesson: str, profile: str) -> dict[str, tuple[str, dict]]:
    return {cid: (printed, names) for cid, printed, names in run_lesson_in_process(lesson, profile, skip=SKIP)}


def _scripts(names: dict) -> dict[str, str]:
    """The job scripts and container commands a cell set, as text."""
    out = {}
    for name, value in names.items():
        if isinstance(value, str) and value.startswith("#!"):
            out[name] = value
        elif isinstance(value, (ApptainerRun, Workflow)):
            out[name] = render(value)
    return out


def _rule_lines(printed: str, *codes: str) -> list[str]:
    return [line for line in printed.splitlines() if re.search(rf"\b({'|'.join(codes)})\b", line)]


# ------------------------------------------------------------------------------------------------
# 1 · the sources: no flag by hand, prose for both vendors
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lesson", LESSONS)
def test_no_code_cell_writes_nvidias_flag_by_hand(lesson):
    checked = 0
    for cell in lesson_cells(lesson):
        if cell["cell_type"] != "code" or cell.get("id") in PINNED.get(lesson, ()):
            continue
        source = re.sub(r"^\s*#.*$", "", cell_source(cell), flags=re.M)   # comments may name the flags they mean
        assert not re.search(r"--nv\b|\bnv=True|\bnvidia=True", source), (lesson, cell.get("id"), source)
        checked += 1
    assert checked > 3


@pytest.mark.parametrize("lesson", (*LESSONS, "13"))
def test_prose_on_the_gpu_flag_names_both_vendors(lesson):
    for cell in lesson_cells(lesson):
        text = cell_source(cell)
        if cell["cell_type"] == "markdown" and re.search(r"`[^`]*--nv\b", text) \
                and cell.get("id") not in PINNED_PROSE.get(lesson, ()):
            assert "--rocm" in text, (lesson, cell.get("id"), text)


@pytest.mark.parametrize("lesson", sorted(PINNED))
def test_the_cells_that_keep_nv_use_no_site(lesson):
    cells = {cell.get("id"): cell for cell in lesson_cells(lesson)}
    for cid in PINNED[lesson]:
        source = cell_source(cells[cid])
        assert not re.search(r"\b(site|profile)\b", source), (cid, source)
    for cid in PINNED_PROSE.get(lesson, ()):
        assert "NVIDIA" in cell_source(cells[cid]), cid


# ------------------------------------------------------------------------------------------------
# 2 · the lessons run in this process, for the AMD site and for generic
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lesson", LESSONS)
def test_the_lesson_follows_an_amd_site(lesson, workdir):
    amd = str(AMD_SITE)
    site = load_profile(amd)
    runs = _run(lesson, amd)
    sources = {cell.get("id"): cell_source(cell) for cell in lesson_cells(lesson)}
    for cid, (printed, names) in runs.items():
        if cid in PINNED.get(lesson, ()):
            continue
        assert not re.search(r"--nv\b", printed), (cid, printed)
        assert not _rule_lines(printed, "HPC218", "HPC414"), (cid, printed)
        # a cell that uses no site (lesson 00's quoting example) may run apptainer; none may use NVIDIA's flag
        unwanted = {"HPC218", "HPC414"} if re.search(r"\b(site|profile)\b", sources[cid]) else {"HPC218"}
        for name, script in _scripts(names).items():
            codes = {f.code for f in lint(script, site)}
            assert not codes & unwanted, (cid, name, codes, script)
    for cid in FLAG_CELLS.get(lesson, ()):
        printed = runs[cid][0]
        assert "--rocm" in printed, (cid, printed)
        # SingularityCE only: the commands run the site's program (a Charliecloud step shows ch-run)
        commands = [line for line in printed.splitlines() if re.match(r"\s*(srun\b.*)?\w+ (exec|run|shell) ", line)]
        assert all("apptainer" not in line for line in commands), (cid, printed)
    if lesson in IMAGE_CELLS:
        printed = runs[IMAGE_CELLS[lesson]][0]
        assert ROCM_IMAGE.removesuffix(".sif") in printed and "pytorch_24.05" not in printed, printed
    if lesson == "07":
        assert "docker://rocm/tensorflow:" in runs["07-04"][0] and "-gpu" not in runs["07-04"][0]
    if lesson == "10":
        on_purpose = runs["10-13"][1]["on_purpose"]
        assert f'singularity exec --rocm "$SCRATCH/images/pytorch_2.3.1-cpu.sif"' in on_purpose, on_purpose
        assert runs["10-13"][0].strip() == "HPC213 reported: False"


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_lesson_keeps_nv_on_an_nvidia_site(lesson, workdir):
    runs = _run(lesson, "generic")
    for cid in FLAG_CELLS.get(lesson, ()):
        printed = runs[cid][0]
        assert re.search(r"--nv\b", printed), (cid, printed)
        assert "--rocm" not in printed, (cid, printed)
    if lesson in IMAGE_CELLS:
        assert "$SCRATCH/images/pytorch_24.05" in runs[IMAGE_CELLS[lesson]][0]
    if lesson == "07":
        assert "docker://tensorflow/tensorflow:2.16.1-gpu" in runs["07-04"][0]
        assert '"$SCRATCH/images/tensorflow_2.16.1-gpu.sif"' in runs["07-04"][0]
    if lesson == "10":
        assert 'apptainer exec --nv "$SCRATCH/images/pytorch_2.3.1-cpu.sif"' in runs["10-13"][1]["on_purpose"]


def test_the_ordering_rule_on_the_sites_flag(workdir):
    """Lesson 02 shows the option after the image with the flag of the site's GPUs; lint names it (HPC203) and the
    fix puts it before the image. With ``run`` the flag goes to the runscript: HPC203 too, without a fix, saying what
    the container goes without on each vendor's GPUs (the prose says so)."""
    amd = _run("02", str(AMD_SITE))
    assert re.search(r"^line .* HPC203  --rocm comes after the image", amd["02-12"][0], re.M), amd["02-12"][0]
    assert f"singularity exec --rocm {ROCM_IMAGE} python train.py" in amd["02-12"][0]
    late = amd["02-run-code"][0].split("--rocm after the image, with run:")[1]
    assert re.search(r"^line .* HPC203  --rocm comes after the image .* ROCm libraries", late, re.M), late
    assert "[fix available]" not in late and "HPC201" not in late
    generic = _run("02", "generic")["02-run-code"][0].split("--nv after the image, with run:")[1]
    assert re.search(r"^line .* HPC203  --nv comes after the image .* without the GPUs", generic, re.M), generic
    assert "[fix available]" not in generic and "HPC201" not in generic


def test_a_site_whose_gpus_take_no_flag(tmp_path, workdir):
    """Intel GPUs: the commands get no GPU flag, and the ordering rule is shown with another option."""
    runs = _run("02", str(INTEL_SITE))
    assert 'apptainer exec /scratch/img/pytorch_2.3.1.sif python my_script.py' in runs["02-10"][0].replace(" \\\n  ", " ")
    assert not re.search(r"--nv\b|--rocm", runs["02-10"][0])
    assert re.search(r"^line .* HPC203  --cleanenv comes after the image", runs["02-12"][0], re.M), runs["02-12"][0]


# ------------------------------------------------------------------------------------------------
# 3 · the whole lessons, run by papermill for the AMD site
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_lessons_run_for_the_amd_site(tmp_path, isolated_profiles):
    runs = run_lessons_with_papermill(list(LESSONS), str(AMD_SITE), tmp_path)
    for lesson, cells in runs.items():
        for cid, printed in cells.items():
            if cid in PINNED.get(lesson, ()):
                continue
            assert not re.search(r"--nv\b", printed), (lesson, cid, printed)
            assert not _rule_lines(printed, "HPC218", "HPC414"), (lesson, cid, printed)
        for cid in FLAG_CELLS.get(lesson, ()):
            assert "--rocm" in cells[cid], (lesson, cid, cells[cid])


@pytest.mark.parametrize("name, source, dest", [
    ("generic", "docker://nvcr.io/nvidia/pytorch:24.05-py3", "pytorch_24.05.sif"),
    (str(AMD_SITE), "docker://rocm/", "pytorch_rocm6.2.sif"),
])
def test_the_pull_of_lesson_02_fetches_the_image_the_later_cells_run(name, source, dest):
    """lessons.site_pull writes the file site_image names, from the site's image source (a ROCm build on AMD)."""
    site = load_profile(name)
    pull = lessons.site_pull(site)
    assert str(pull.source).startswith(source)
    assert f"{pull.dir}/{pull.dest}" == lessons.site_image(site) and pull.dest == dest
    assert pull.binary == site.apptainer_binary
    pull_cell = next(c for c in lesson_cells("02") if c.get("id") == "02-06")
    assert "pull = lessons.site_pull(site)" in cell_source(pull_cell)
