"""What the lessons, exercises and slides tell learners: staging data in a folder of the
job's own that the job removes, real jobs only where the lesson says, what a profile without Apptainer says about its
module, a 4-GPU job with CPUs for its workers, and the deck agreeing with the lessons."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import hpcwidgets as hw
from hpcwidgets import lessons

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DECK = (ROOT / "slides" / "workshop.md").read_text(encoding="utf-8")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _outputs(cell: dict) -> str:
    return "".join(_text(o.get("text", "")) for o in cell.get("outputs", []))


def _staged_script(tmp_path: Path, nodes: int = 1) -> str:
    """The staging lines of a generic job whose node-local disk is ``tmp_path/node``, as a script whose step fails."""
    site = hw.load_profile("generic").replace(node_local=str(tmp_path / "node"))
    name = "single-gpu" if nodes == 1 else "multi-node-torchrun"
    staged = lessons.stage_to_node_local(lessons.example(name, "generic"), str(tmp_path / "d.tar"), site)
    return "set -eo pipefail\nset -u\n" + "\n".join(staged.job.setup[-4:]) + "\nfalse  # the step fails\n"


@pytest.mark.parametrize("job_id", ["101", "102"])
def test_each_job_stages_into_its_own_folder_and_removes_it_even_when_it_fails(tmp_path, job_id):
    data = tmp_path / "src"
    data.mkdir()
    (data / "x.npz").write_bytes(b"x")
    subprocess.run(["tar", "-cf", str(tmp_path / "d.tar"), "-C", str(data), "x.npz"], check=True)
    other = tmp_path / "node" / "999" / "data"   # another job of the same user on this node
    other.mkdir(parents=True)
    script = _staged_script(tmp_path).replace("\nfalse", '\nls "$job_local/data" > "$HOME/seen"\nfalse')
    proc = subprocess.run(["bash", "-c", script], env={"SLURM_JOB_ID": job_id, "HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert (tmp_path / "seen").read_text() == "x.npz\n", "the step did not find the staged copy"
    assert not (tmp_path / "node" / job_id).exists(), "the trap did not remove the job's folder"
    assert other.is_dir(), "a job removed another job's folder"


def test_a_job_on_several_nodes_removes_the_copy_on_each_node(tmp_path):
    script = _staged_script(tmp_path, nodes=2)
    trap = next(line for line in script.splitlines() if line.startswith("trap "))
    assert trap == """trap 'srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 rm -rf "$job_local"' EXIT"""


def test_the_lesson_and_the_charliecloud_slide_stage_the_same_way():
    lesson = "\n".join(_outputs(c) for c in _cells(NOTEBOOKS / "10-best-practices-and-security.ipynb"))
    assert "$SLURM_JOB_ID" in lesson and """trap 'rm -rf "$job_local"' EXIT""" in lesson
    slide = DECK[DECK.index("## Charliecloud in a GPU job"):]
    slide = slide[:slide.index("\n---\n")]
    assert "tmp=/scratch/local/$USER/$SLURM_JOB_ID" in slide and """trap 'rm -rf "$tmp"' EXIT""" in slide


def test_real_jobs_go_to_the_practice_cluster_unless_the_site_is_asked_for(monkeypatch):
    import hpcwidgets.run.slurm as run_slurm
    monkeypatch.setattr(run_slurm, "available", lambda env=None: True)
    monkeypatch.setattr(lessons, "_partitions", lambda: set(hw.load_profile("midway3").slurm_partition_names()))
    monkeypatch.setattr(lessons.shutil, "which", lambda name: "/usr/bin/" + name)
    held = lessons.practice_target("midway3")
    assert not held.ok and "site_jobs = True" in held.reason
    asked = lessons.practice_target("midway3", site_jobs=True)
    assert asked.ok and asked.profile == "midway3"


@pytest.mark.parametrize("name", ["08-slurm-single-node", "09-distributed-training"])
def test_lessons_that_submit_default_to_the_practice_cluster_and_say_so_first(name):
    cells = _cells(NOTEBOOKS / f"{name}.ipynb")
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    assert re.search(r"^site_jobs = False$", _text(params["source"]), re.M)
    first = next(i for i, c in enumerate(cells) if "run_example(" in _text(c["source"]))
    assert cells[first - 1]["cell_type"] == "markdown" and "site_jobs = True" in _text(cells[first - 1]["source"])


def test_a_runtime_the_profile_only_renders_is_not_said_to_be_on_path():
    local = hw.load_profile("local")
    assert "not installed" in lessons.module_note(local) and "PATH" not in lessons.module_note(local)
    assert lessons.module_note(hw.load_profile("midway3")) == hw.load_profile("midway3").module("apptainer")


def test_the_single_node_four_gpu_job_asks_for_cpus_for_its_workers():
    shown = [_outputs(c) for c in _cells(NOTEBOOKS / "07-pytorch-and-tensorflow.ipynb") if "--gres=gpu:4" in _outputs(c)]
    assert shown and all("#SBATCH --cpus-per-task=32" in text for text in shown)


def test_no_material_promises_mount_points_every_image_has():
    texts = [DECK] + [p.read_text(encoding="utf-8") for p in (ROOT / "solutions").glob("ex06-*.ipynb")]
    assert not [t for t in texts if "always do" in t]


def test_the_node_list_rendezvous_slide_says_what_torchrun_does():
    bullet = next(line for line in DECK.splitlines() if line.startswith("- `$SLURM_STEP_NODELIST` is a **list**"))
    assert "time limit" not in bullet and "dot-separated list of labels" in bullet
