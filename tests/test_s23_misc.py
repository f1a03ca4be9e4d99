"""Small leftovers: the render-only message names how the job really stops (in the batch shell and under srun),
tests/data/profiles/README.md lists every test site in that folder, and the instructor's guide states numbers the
lessons, exercises and deck bear out."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.widgets.builder import WorkflowBuilder, render_only_message

from helpers import need, need_tool, sbatch_and_wait

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "tests" / "data" / "profiles"
GUIDE = ROOT / "slides" / "INSTRUCTOR.md"

JOB = """#!/bin/bash
#SBATCH --partition=debug
#SBATCH --time=00:10:00
srun apptainer exec /var/tmp/hpcw-images/trainer.sif python train.py
"""


def quoted(message: str) -> list[str]:
    """The error texts a message quotes ('…')."""
    return re.findall(r"'([^']+)'", message)


# --- 1. the render-only message: both ways the job stops ---------------------------------------------------------

def test_the_message_names_the_batch_shells_error_and_sruns():
    local = load_profile("local")
    msg = local.render_only_message("apptainer")
    assert quoted(msg) == ["apptainer: command not found", "execve(): apptainer: No such file or directory"], msg
    assert "the batch shell says 'apptainer: command not found'" in msg
    assert "a step srun starts fails with 'execve(): apptainer: No such file or directory'" in msg
    assert "after its wait in the queue" in msg and msg.endswith("(ch-run runs its images)")


def test_a_path_is_no_such_file_both_ways_and_singularity_is_named_as_written():
    local = load_profile("local")
    by_path = local.render_only_message("/usr/bin/apptainer")
    assert quoted(by_path) == ["/usr/bin/apptainer: No such file or directory",
                               "execve(): /usr/bin/apptainer: No such file or directory"], by_path
    assert "command not found" not in by_path, "bash does not search PATH for a name with a slash"
    second = local.render_only_message("singularity")
    assert quoted(second) == ["singularity: command not found",
                              "execve(): singularity: No such file or directory"], second


def test_lint_and_the_form_carry_the_same_words():
    local = load_profile("local")
    (f,) = [f for f in lint(JOB, local) if f.code == "HPC416"]
    assert "execve(): apptainer: No such file or directory" in f.message and "command not found" in f.message
    b = WorkflowBuilder(profile=local, submit=False)
    b.controls["container.runtime"].value = "apptainer"
    (said,) = [f for f in b.findings if f.code == "PROFILE"]
    assert said.message == render_only_message(local, b.spec)
    assert "execve(): apptainer: No such file or directory" in said.message
    assert said.message.endswith("choose Container = charliecloud (the runtime it runs)")


def test_nothing_is_said_where_the_cluster_runs_the_runtime():
    assert load_profile("generic").render_only_message("apptainer") == ""
    assert load_profile("local").render_only_message("ch-run") == ""


@pytest.mark.real
def test_the_practice_cluster_says_what_the_message_quotes(tmp_path: Path):
    """Each error the message quotes is one the practice cluster prints, for a job that calls apptainer in its
    batch shell and through srun (Apptainer is render-only there: not installed)."""
    from hpcwidgets.run import practice_cluster as pc
    need_tool("sbatch", "Slurm's client programs (apt-get install slurm-client)")
    need(shutil.which("apptainer") is None, "apptainer is installed here: the practice cluster would run it")
    st = pc.status()
    need(st.running, "the practice cluster is not up (run: sudo hpcwidgets practice-cluster up)")
    env = {**os.environ, "SLURM_CONF": str(st.slurm_conf)}
    log = tmp_path / "slurm.out"
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --time=00:02:00\n"
                      f"#SBATCH --output={log}\n"
                      "apptainer exec x.sif true\necho \"shell status $?\"\n"
                      "srun apptainer exec x.sif true\necho \"srun status $?\"\n")
    sbatch_and_wait(script, env)
    text = log.read_text()
    for said in quoted(load_profile("local").render_only_message("apptainer")):
        assert said in text, (said, text)
    assert "shell status 127" in text and "srun status 2" in text, text


# --- 2. the README of the test sites ------------------------------------------------------------------------------

def test_the_readme_lists_every_test_site_in_the_folder():
    readme = (PROFILES / "README.md").read_text(encoding="utf-8")
    sites = sorted(p.relative_to(PROFILES).as_posix() for p in PROFILES.rglob("*.toml"))
    assert sites, "no test sites found"
    for site in sites:
        name = site.rsplit("/", 1)[-1]
        assert f"`{name}`" in readme, f"tests/data/profiles/README.md does not list {site}"
    listed = set(re.findall(r"`([\w.-]+\.toml)`", readme))
    assert listed <= {s.rsplit("/", 1)[-1] for s in sites}, f"listed but missing: {listed}"


def test_each_top_level_site_has_its_own_row_naming_the_tests_that_load_it():
    readme = (PROFILES / "README.md").read_text(encoding="utf-8")
    for path in sorted(PROFILES.glob("*.toml")):
        (row,) = [line for line in readme.splitlines() if line.startswith(f"| `{path.name}` |")]
        tests = re.findall(r"`(test_\w+\.py)`", row)
        assert tests, row
        for name in tests:
            assert path.name in (ROOT / "tests" / name).read_text(encoding="utf-8"), (path.name, name)
        load_profile(str(path))  # each one loads


# --- 3. the instructor's guide -------------------------------------------------------------------------------------

def _stated_minutes(notebook: Path) -> int:
    """The minutes a notebook's own **Time** line states (all of them: "15 minutes of reading, 5 of …")."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    text = "".join("".join(c["source"]) for c in cells[:3] if c["cell_type"] == "markdown")
    line = re.search(r"\*\*Time(?::\*\*|\*\*:)([^\n]*)", text)
    assert line, f"{notebook.name} states no time"
    return sum(int(n) for n in re.findall(r"(\d+) minutes", line.group(1)))


def test_the_guides_totals_are_the_lessons_and_exercises_own_times():
    guide = GUIDE.read_text(encoding="utf-8")
    flat = " ".join(guide.split())
    lessons = sorted(p for p in (ROOT / "notebooks").glob("[01][0-9]-*.ipynb") if not p.name.startswith("00-"))
    exercises = sorted((ROOT / "exercises").glob("ex[0-9][0-9]-*.ipynb"))
    assert [p.name[:2] for p in lessons] == [f"{n:02d}" for n in range(1, 14)], "lessons 01-13"
    lesson_min, exercise_min = sum(map(_stated_minutes, lessons)), sum(map(_stated_minutes, exercises))
    assert f"lessons 01–13 take about four hours ({lesson_min} min)" in flat
    count = {12: "twelve"}.get(len(exercises), str(len(exercises)))
    assert f"the {count} exercises about two and a half ({exercise_min} min)" in flat
    for ex in re.findall(r"`(?:exercises/)?(ex\d\d)`", guide):
        assert any(p.name.startswith(ex + "-") for p in exercises), ex


def test_the_timing_tables_slides_are_the_decks_sections():
    from hpcwidgets import slides
    deck = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
    pages = re.split(r"\n---\n", deck)[1:]  # the front matter comes first
    assert len(pages) == slides.count_slides(deck)
    starts = {int(m.group(1)): i for i, page in enumerate(pages, 1)
              for m in [re.search(r"^# (\d) · ", page, re.M)] if m}
    rows = re.findall(r"^\| [\d–]+ \| (\d) · [^|]+\| (\d+)–(\d+) \|", GUIDE.read_text(encoding="utf-8"), re.M)
    assert [int(n) for n, _, _ in rows] == sorted(starts) == list(range(1, 10))
    ends = {n: (starts[n + 1] - 1 if n + 1 in starts else len(pages)) for n in starts}
    for n, first, last in rows:
        assert (int(first), int(last)) == (starts[int(n)], ends[int(n)]), f"section {n}"
