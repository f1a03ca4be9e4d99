"""The lessons for a site without GPUs.

* :func:`hpcwidgets.lessons.job_head` writes a job that fits the site: no GPU request where no partition has GPUs,
  so lesson 02's example of a flag after the image shows that mistake and not HPC407 (GPUs on a partition without
  them);
* lesson 04, about GPUs, writes its examples for the generic profile there (:func:`~hpcwidgets.lessons.gpu_site`)
  and says so, so each example still teaches the rule it is about.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import run_lesson_in_process
from hpcwidgets import lessons
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile

CPU_SITE = Path(__file__).parent / "data" / "profiles" / "cpu_only_s25.toml"


@pytest.fixture()
def cpu_site():
    return load_profile(str(CPU_SITE))


def test_gpu_site_falls_back_to_the_generic_profile_and_says_so(cpu_site, capsys):
    assert not lessons.has_gpus(cpu_site)
    chosen = lessons.gpu_site(cpu_site)
    assert chosen.name == "generic" and lessons.has_gpus(chosen)
    assert "cpu_only_s25 has no GPU partition" in capsys.readouterr().out
    generic = load_profile("generic")
    assert lessons.gpu_site(generic) is generic and capsys.readouterr().out == ""


def test_job_head_asks_for_no_gpus_where_the_site_has_none(cpu_site):
    head = lessons.job_head(cpu_site, gpus=1)
    assert "--gres" not in head and "#SBATCH --partition=compute" in head
    assert not [f for f in lint(head + "apptainer exec img.sif python train.py\n", cpu_site) if f.code == "HPC407"]
    assert "#SBATCH --gres=gpu:1" in lessons.job_head(load_profile("generic"), gpus=1)


def test_site_job_asks_for_no_gpus_where_the_site_has_none_as_job_head(cpu_site):
    from hpcwidgets.render import render
    job = lessons.site_job(cpu_site, gpus=1, job_name="leak", time="00:30:00")
    assert not job.gpus_per_node and job.partition == "compute"
    text = render(job)
    assert "gpu" not in text
    assert not [f for f in lint(text, cpu_site) if f.code == "HPC407"]
    generic = render(lessons.site_job(load_profile("generic"), gpus=1))
    assert "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n" in generic


@pytest.mark.parametrize("lesson", ["02", "04"])
def test_lessons_show_no_gpu_request_the_site_refuses(lesson, tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    monkeypatch.chdir(tmp_path)
    runs = run_lesson_in_process(lesson, str(CPU_SITE))
    printed = "".join(out for _, out, _ in runs)
    assert not re.search(r"\bHPC407\b", printed), printed
    if lesson == "04":
        out = dict((cid, text) for cid, text, _ in runs)
        assert "cpu_only_s25 has no GPU partition" in out["04-02"]
        assert "Site profile: generic; GPU vendor: nvidia; GPU flag: --nv" in out["04-02"]
        assert "HPC201" in out["04-04"]   # the GPUs without --nv: the mistake the example teaches
