"""Lessons 02, 03 and 10 on a site without an ``apptainer`` command, the Jupyter example's memory and time by the
model's rules, and the nouns after the deck's counts (session 21).

* The lessons' hand-written scripts call the site's container program (``site.apptainer_binary``): on a
  SingularityCE site a script that calls ``apptainer`` gets lint's HPC414 on top of the mistake it teaches.
* The Jupyter example asks for the time and memory :meth:`JupyterJob.fit_time` / :meth:`JupyterJob.fit_mem` give,
  the rules ``hpcwidgets jupyter-job --profile`` follows, so the two agree on every site.
* A value marker's count in the deck's text is followed by its noun in the right number: a profile whose
  multi-node example has 1 node gets "1 node × 1 GPU", not "1 nodes × 1 GPUs".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hpcwidgets import slides
from hpcwidgets.cli import main
from hpcwidgets.examples import examples
from hpcwidgets.lessons import findings_shown
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.render import render

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DECK = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
VALUE = re.compile(r"<!-- hpcw: value [^>\n]*-->([^<\n]*)<!-- hpcw: end -->")

#: a SingularityCE site: no apptainer command, its module under singularity, an account on every job, 768M per CPU
#: (shared with tests/test_workshop_s21.py)
SINGULARITY_SITE = ROOT / "tests" / "data" / "profiles" / "lakes.toml"

#: one GPU node a job at most: the multi-node example runs on 1 node with 1 GPU
ONE_NODE_SITE = """\
name = "onebox"
description = "a site of the tests: jobs of one node with one GPU"
runtimes = ["apptainer"]
scratch = "/scratch/one/$USER"
gpu_vendor = "nvidia"

[[partitions]]
name = "gpu"
is_default = true
max_time = "1-00:00:00"
max_nodes = 1
cpus_per_node = 8
mem_per_node = "64G"
gpus_per_node = 1
"""


@pytest.fixture()
def creek(isolated_profiles) -> str:
    return str(SINGULARITY_SITE)


@pytest.fixture()
def onebox(tmp_path, monkeypatch, isolated_profiles) -> str:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "onebox.toml").write_text(ONE_NODE_SITE, encoding="utf-8")
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    return "onebox"


# ------------------------------------------------------------------------------------------------
# 1 · lessons 02, 03 and 10 call the site's container program
# ------------------------------------------------------------------------------------------------
def _cells(lesson: str) -> list[dict]:
    path = next(NOTEBOOKS.glob(f"{lesson}-*.ipynb"))
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _run(lesson: str, profile: str, *names: str) -> dict:
    """Run the lesson's code cells (not the parameters cell) up to the one that defines the last of ``names``."""
    namespace: dict = {"__name__": "__main__", "profile": profile}
    for i, cell in enumerate(_cells(lesson)):
        if cell["cell_type"] != "code" or "parameters" in cell["metadata"].get("tags", []):
            continue
        exec(compile("".join(cell["source"]), f"{lesson}:{i}", "exec"), namespace)
        if all(name in namespace for name in names):
            return namespace
    raise AssertionError(f"lesson {lesson} defines none of {names}")


def _codes(script: str, prof, *, info: bool = True) -> set[str]:
    return {f.code for f in findings_shown(lint(script, prof)) if info or f.severity != "info"}


# what each example teaches, whatever the site
TAUGHT = {
    ("02", "quick"): {"HPC206", "HPC207", "HPC208", "HPC209", "HPC210", "HPC212"},
    ("02", "wrong"): {"HPC203"},
    ("03", "broad"): {"HPC204", "HPC209"},
}


@pytest.mark.parametrize("name", ["generic", "local", "midway3", "SITE"])
@pytest.mark.parametrize("lesson, variable", sorted(TAUGHT))
def test_each_example_shows_only_its_mistake(lesson, variable, name, creek, capsys):
    profile = creek if name == "SITE" else name
    ns = _run(lesson, profile, variable)
    prof = load_profile(profile)
    assert ns[variable].startswith(f"#!/bin/bash\n{prof.apptainer_binary} "), ns[variable]
    assert _codes(ns[variable], prof) == TAUGHT[lesson, variable]
    assert not re.search(r"^line .* HPC414 ", capsys.readouterr().out, re.M)   # no row of a findings table


def test_on_the_singularity_site_the_scripts_call_singularity_and_the_fix_keeps_it(creek, capsys):
    ns = _run("02", creek, "fixed")
    assert "singularity exec --nv" in ns["fixed"] and "apptainer" not in ns["fixed"], ns["fixed"]
    assert [f.code for f in ns["applied"]] == ["HPC203"]
    printed = capsys.readouterr().out
    assert "HPC207" in printed and "SINGULARITY_CACHEDIR" in printed, printed   # the cache of the site's program
    assert not re.search(r"^line .* HPC414 ", printed, re.M), printed


def test_lesson_10s_messy_script_has_the_same_container_mistakes_on_every_site(creek, capsys):
    """The messy script's container line (line 9) shows the same mistakes on the generic site and on a
    SingularityCE site: the missing --nv, the home bind, the module not loaded (HPC409, for the site's program),
    the home mount advice; never HPC414."""
    def line9(profile: str) -> tuple[set[str], str]:
        ns = _run("10", profile, "messy")
        found = [f for f in lint(ns["messy"], load_profile(profile)) if f.line == 9]
        return {f.code for f in found}, " ".join(f.message for f in found)

    generic, _ = line9("generic")
    site, said = line9(creek)
    assert generic == site == {"HPC201", "HPC204", "HPC409", "HPC209"}, (generic, site)
    assert "module load singularity" in said, said
    capsys.readouterr()


def test_lesson_10s_silenced_finding_is_one_that_fires_without_the_comment(creek, capsys):
    for profile in ("generic", creek):
        ns = _run("10", profile, "on_purpose")
        prof = load_profile(profile)
        assert f"\n{prof.apptainer_binary} exec --nv" in ns["on_purpose"]
        assert "HPC213" not in _codes(ns["on_purpose"], prof)
        loud = ns["on_purpose"].replace("  # hpcw: disable=HPC213", "")
        assert "HPC213" in _codes(loud, prof) and "HPC414" not in _codes(loud, prof)
    capsys.readouterr()


@pytest.mark.parametrize("lesson", ["02", "03", "10"])
def test_no_script_of_the_lesson_writes_the_program_by_hand(lesson):
    """A script line of a code cell starts with the site's program (``{site.apptainer_binary}``), not ``apptainer``."""
    for cell in _cells(lesson):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert not re.search(r"^(?:srun\s+)?apptainer\s", source, re.M), source


# ------------------------------------------------------------------------------------------------
# 2 · the Jupyter example asks for what `jupyter-job --profile` asks for
# ------------------------------------------------------------------------------------------------
def _site(tmp_path: Path, name: str, partition: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\ndescription = "a site of the tests"\nlogin_host = "login.example.edu"\n'
                    f'runtimes = ["apptainer"]\n\n[[partitions]]\nname = "p"\nis_default = true\n{partition}',
                    encoding="utf-8")
    return str(path)


def _sbatch(script: str, option: str) -> str:
    found = re.search(rf"^#SBATCH --{option}=(\S+)$", script, re.M)
    return found.group(1) if found else ""


@pytest.mark.parametrize("partition, mem, time", [
    ('cpus_per_node = 4\nmem_per_node = "6G"\n', "3G", "02:00:00"),                           # half a small node
    ('cpus_per_node = 8\nmem_per_node = "64G"\nmax_mem_per_job = "3G"\nmax_time = "00:30:00"\n', "3G", "00:30:00"),
    ('cpus_per_node = 8\nmem_per_node = "64G"\n', "8G", "02:00:00"),                           # the default 8G
    ("cpus_per_node = 8\n", "", "02:00:00"),                                                   # memory unknown
])
def test_the_jupyter_example_and_the_command_ask_for_the_same(partition, mem, time, tmp_path, isolated_profiles,
                                                              capsys):
    site = _site(tmp_path, "lab", partition)
    example = examples(load_profile(site))["jupyter"].render()
    assert main(["jupyter-job", "--profile", site]) == 0, capsys.readouterr().err
    command = capsys.readouterr().out
    for option, want in (("mem", mem), ("time", time)):
        assert _sbatch(example, option) == _sbatch(command, option) == want, (option, example, command)


# ------------------------------------------------------------------------------------------------
# 3 · the deck's nouns follow its counts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noun, count, want", [
    ("nodes", "1", "node"), ("node", "2", "nodes"), ("GPUs", "1", "GPU"), ("GPU", "8", "GPUs"), ("CPUs", "1", "CPU"),
    ("workers", "1", "worker"), ("processes", "1", "process"), ("node", "0", "nodes"),
    ("each", "1", "each"), ("nodes", "gpu", "nodes"),   # a word that is no count's noun, a value that is no count
])
def test_count_noun(noun, count, want):
    assert slides.count_noun(noun, count) == want


def test_a_one_node_site_reads_1_node_and_1_gpu(onebox):
    assert slides.example_values("multi-node-torchrun", onebox)["nodes"] == "1"
    synced = slides.sync_text(DECK, onebox)
    plain = VALUE.sub(r"\1", synced)
    assert "## 1 node × 1 GPU: the directives (generated)" in plain
    assert "## 1 node × 1 GPU: the launch (generated)" in plain
    assert "![w:1100 1 node, 1 GPU each](diagrams/multi-node-topology.svg)" in plain
    assert "shared by its 1 worker (data loaders)" in plain
    assert not re.search(r"\b1 (?:nodes|GPUs|workers)\b", plain)
    assert slides.stale_values(synced, onebox) == []
    # the built deck keeps the words sync wrote
    assert "## 1 node × 1 GPU: the launch (generated)" in slides.strip_markers(synced)
    # and back to the deck's own site: the shipped deck, plurals and all
    assert slides.sync_text(synced) == DECK


def test_a_noun_that_does_not_follow_the_count_is_reported_and_synced(onebox):
    synced = slides.sync_text(DECK, onebox)
    wrong = synced.replace("1<!-- hpcw: end --> node ×", "1<!-- hpcw: end --> nodes ×", 1)
    assert wrong != synced
    problems = slides.stale_values(wrong, onebox)
    assert len(problems) == 1, problems
    assert "the text says '1 nodes': write '1 node'" in problems[0]
    assert "sync --profile onebox" in problems[0]
    assert slides.sync_text(wrong, onebox) == synced
    # on the deck's own site the shipped plurals agree
    assert slides.stale_values(DECK) == []


def test_only_a_count_noun_after_a_count_changes(onebox):
    text = ("<!-- hpcw: value multi-node-torchrun nodes -->2<!-- hpcw: end --> nodesets, "
            "<!-- hpcw: value multi-node-torchrun nodes -->2<!-- hpcw: end -->  nodes, "
            "<!-- hpcw: value multi-node-torchrun partition -->gpu<!-- hpcw: end --> nodes, "
            "<!-- hpcw: value multi-node-torchrun gpus-per-node -->4<!-- hpcw: end --> GPUs\n")
    assert slides.fill_values(text, onebox) == (
        "<!-- hpcw: value multi-node-torchrun nodes -->1<!-- hpcw: end --> nodesets, "      # another word
        "<!-- hpcw: value multi-node-torchrun nodes -->1<!-- hpcw: end -->  nodes, "        # not right after it
        "<!-- hpcw: value multi-node-torchrun partition -->gpu<!-- hpcw: end --> nodes, "   # not a count
        "<!-- hpcw: value multi-node-torchrun gpus-per-node -->1<!-- hpcw: end --> GPU\n")
