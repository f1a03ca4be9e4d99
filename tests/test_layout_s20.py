"""Session 20: a script read back and saved after an edit keeps its author's spelling and wrapping of the step.

- An option written with its value apart (``--nnodes 2``, ``--nproc_per_node $X``, ``srun --cpus-per-task 16``)
  keeps that spelling when its value is edited: only the value changes, on its own line.
- A step written one option per line keeps its other lines, their order and their indentation when one option is
  edited.
- A long step written on one line stays on one line when a word of it is edited.
- A script written as a workflow and read as a job alone (``hpcwidgets sbatch --from``) keeps its title comment when
  the job's name is edited: the job has no title, and the renderer's "Slurm job NAME" stands for no line as read.

Every script saved here is also read back, to check that it says what the edited model says, and checked by
``bash -n``.
"""

from __future__ import annotations

import difflib
import subprocess

import pytest

from hpcwidgets.cli import main
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.render import render


HEAD = """#!/bin/bash
#SBATCH --job-name=train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --time=01:00:00

head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
"""

APART_ONE_LINE = HEAD + "X=4\nsrun torchrun --nnodes 2 --nproc_per_node $X --rdzv_backend c10d " \
                        "--rdzv_endpoint $head:29500 train.py --epochs 10\n"

PER_LINE = HEAD + """srun \\
  --ntasks-per-node=1 \\
  --cpus-per-task=8 \\
  torchrun \\
    --nnodes=2 \\
    --nproc_per_node=4 \\
    --rdzv_backend=c10d \\
    --rdzv_endpoint=$head:29500 \\
    train.py \\
    --epochs 10 \\
    --lr 0.1
"""
PER_LINE_APART = PER_LINE.replace("--nnodes=2", "--nnodes 2").replace("--nproc_per_node=4", "--nproc_per_node 4") \
    .replace("--rdzv_backend=c10d", "--rdzv_backend c10d").replace("--rdzv_endpoint=", "--rdzv_endpoint ") \
    .replace("--cpus-per-task=8", "--cpus-per-task 8")

LONG = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n#SBATCH --time=01:00:00\n\n" + " ".join([
    "srun --ntasks-per-node=1 --cpus-per-task=16 apptainer exec --nv --bind /scratch/data:/data img.sif",
    "torchrun --standalone --nproc_per_node=4 train.py --epochs 10 --lr 0.1 --batch-size 256",
    "--data /data/imagenet --out /scratch/out --seed 7"]) + "\n"
LONG_APART = LONG.replace("--ntasks-per-node=1", "--ntasks-per-node 1") \
    .replace("--cpus-per-task=16", "--cpus-per-task 16").replace("--nproc_per_node=4", "--nproc_per_node 4")


def _checked(reader, edited, out: str) -> str:
    """``out`` (the edited model saved), checked to pass ``bash -n`` and to read back as ``edited`` with ``reader``."""
    syntax = subprocess.run(["bash", "-n"], input=out, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr
    assert without_layout(reader(out)) == without_layout(edited)
    return out


def _saved(text: str, *, reader=parse_script, **layers) -> str:
    """``text`` read back, the fields of its layers changed (``launcher={"nnodes": "3"}``), saved and checked."""
    model = reader(text)
    if reader is parse_job:
        edited = model.replace(**layers)
    else:
        edited = model.replace(**{name: getattr(model, name).replace(**fields) for name, fields in layers.items()})
    return _checked(reader, edited, render(edited, validate=False))


def _changes(before: str, after: str) -> list[tuple[str, str]]:
    """The lines of ``before`` that ``after`` changes, paired with what each became (one for one)."""
    old, new = before.split("\n"), after.split("\n")
    pairs = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != "equal":
            assert tag == "replace" and i2 - i1 == j2 - j1, (old[i1:i2], new[j1:j2])
            pairs += zip(old[i1:i2], new[j1:j2])
    return pairs


def _from_cli(tmp_path, command: str, text: str, *sets: str) -> str:
    """``hpcwidgets COMMAND --from`` a file holding ``text`` with ``--set``s: the file written (exit status 0)."""
    source, out = tmp_path / "in.sh", tmp_path / "out.sh"
    source.write_text(text, encoding="utf-8")
    args = [command, "--from", str(source), "-o", str(out), "--force"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    return out.read_text(encoding="utf-8")


# --- 1. an option written with its value apart -------------------------------------------------------------------

def test_a_script_with_options_written_apart_reads_as_the_options():
    launcher = parse_script(APART_ONE_LINE).launcher
    assert (launcher.nnodes, launcher.nproc_per_node, launcher.rdzv_endpoint) == ("2", "$X", "$head:29500")
    assert render(parse_script(APART_ONE_LINE), validate=False) == APART_ONE_LINE


def test_the_value_of_an_option_written_apart_is_changed_in_its_place():
    out = _saved(APART_ONE_LINE, launcher={"nproc_per_node": "8"})
    assert out == APART_ONE_LINE.replace("--nproc_per_node $X", "--nproc_per_node 8")


def test_a_value_that_needs_quotes_is_quoted_as_a_word_of_its_own():
    out = _saved(APART_ONE_LINE, launcher={"rdzv_endpoint": "$head:29400", "nproc_per_node": "$Y"})
    assert _changes(APART_ONE_LINE, out) == [(
        APART_ONE_LINE.split("\n")[-2],
        APART_ONE_LINE.split("\n")[-2].replace("--nproc_per_node $X", '--nproc_per_node "$Y"')
        .replace("--rdzv_endpoint $head:29500", '--rdzv_endpoint "$head:29400"'))]


def test_the_job_nodes_edited_on_the_command_line_change_the_nnodes_written_apart(tmp_path):
    out = _from_cli(tmp_path, "workflow", APART_ONE_LINE, "job.nodes=3")
    assert _changes(APART_ONE_LINE, out) == [("#SBATCH --nodes=2", "#SBATCH --nodes=3"),
                                             (APART_ONE_LINE.split("\n")[-2],
                                              APART_ONE_LINE.split("\n")[-2].replace("--nnodes 2", "--nnodes 3"))]
    assert parse_script(out).launcher.nnodes == "3"


def test_an_srun_option_written_apart_is_changed_in_its_place():
    out = _saved(LONG_APART, srun={"cpus_per_task": 8})
    assert out == LONG_APART.replace("--cpus-per-task 16", "--cpus-per-task 8")


def test_an_option_written_with_its_value_after_an_equals_sign_stays_so():
    out = _saved(LONG, srun={"cpus_per_task": 8}, launcher={"nproc_per_node": "2"})
    assert out == LONG.replace("--cpus-per-task=16", "--cpus-per-task=8").replace("--nproc_per_node=4",
                                                                                  "--nproc_per_node=2")


# --- 2. a step written one option per line ---------------------------------------------------------------------

@pytest.mark.parametrize("layer, fields, old, new", [
    ("launcher", {"nproc_per_node": "2"}, "    --nproc_per_node=4 \\", "    --nproc_per_node=2 \\"),
    ("launcher", {"rdzv_backend": "etcd-v2"}, "    --rdzv_backend=c10d \\", "    --rdzv_backend=etcd-v2 \\"),
    ("srun", {"cpus_per_task": 4}, "  --cpus-per-task=8 \\", "  --cpus-per-task=4 \\"),
    ("launcher", {"args": ("--epochs", "20", "--lr", "0.1")}, "    --epochs 10 \\", "    --epochs 20 \\"),
])
def test_one_option_edited_changes_its_line_alone(layer, fields, old, new):
    out = _saved(PER_LINE, **{layer: fields})
    assert _changes(PER_LINE, out) == [(old, new)]


def test_the_job_nodes_edited_change_the_nnodes_line_alone_in_the_step(tmp_path):
    text = PER_LINE.replace("  --ntasks-per-node=1 \\\n", "")  # srun then starts one torchrun on each node
    out = _from_cli(tmp_path, "workflow", text, "job.nodes=3")
    assert _changes(text, out) == [("#SBATCH --nodes=2", "#SBATCH --nodes=3"),
                                   ("    --nnodes=2 \\", "    --nnodes=3 \\")]


@pytest.mark.parametrize("layer, fields, old, new", [
    ("launcher", {"nproc_per_node": "2"}, "    --nproc_per_node 4 \\", "    --nproc_per_node 2 \\"),
    ("launcher", {"nnodes": "1"}, "    --nnodes 2 \\", "    --nnodes 1 \\"),
    ("srun", {"cpus_per_task": 4}, "  --cpus-per-task 8 \\", "  --cpus-per-task 4 \\"),
])
def test_one_option_written_apart_edited_changes_its_line_alone(layer, fields, old, new):
    out = _saved(PER_LINE_APART, **{layer: fields})
    assert _changes(PER_LINE_APART, out) == [(old, new)]


def test_an_argument_added_to_a_step_of_one_option_a_line_goes_on_the_last_line():
    out = _saved(PER_LINE, launcher={"args": ("--epochs", "10", "--lr", "0.1", "--seed", "7")})
    assert _changes(PER_LINE, out) == [("    --lr 0.1", "    --lr 0.1 --seed 7")]


# --- 3. a long step on one line ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer, fields", [
    ("launcher", {"nproc_per_node": "2"}),
    ("launcher", {"args": ("--epochs", "10", "--lr", "0.01", "--batch-size", "256", "--data", "/data/imagenet",
                           "--out", "/scratch/out", "--seed", "7")}),
    ("launcher", {"args": ("--epochs", "10", "--lr", "0.1", "--batch-size", "256", "--data", "/data/imagenet",
                           "--out", "/scratch/out", "--seed", "7", "--resume")}),
    ("container", {"image": "other.sif"}),
    ("srun", {"cpus_per_task": 8}),
])
def test_a_word_edited_in_a_long_line_leaves_it_one_line(layer, fields):
    assert len(LONG.split("\n")[-2]) > 200
    out = _saved(LONG, **{layer: fields})
    changed = _changes(LONG, out)
    assert [old for old, _ in changed] == [LONG.split("\n")[-2]]
    assert "\\" not in changed[0][1]


@pytest.mark.parametrize("layer, fields", [("launcher", {"nproc_per_node": "2"}), ("srun", {"cpus_per_task": 8})])
def test_an_option_written_apart_edited_in_a_long_line_leaves_it_one_line(layer, fields):
    out = _saved(LONG_APART, **{layer: fields})
    assert [old for old, _ in _changes(LONG_APART, out)] == [LONG_APART.split("\n")[-2]]


def test_another_word_edited_in_a_long_line_with_options_written_apart_leaves_it_one_line():
    out = _saved(LONG_APART, container={"image": "other.sif"})
    assert out == LONG_APART.replace(" img.sif ", " other.sif ")


# --- a workflow's script read as a job alone: its title comment stays --------------------------------------------

TITLED = """#!/bin/bash
#SBATCH --job-name=demo
#SBATCH --time=01:00:00

# Train the model on one GPU
# Generated by hpcwidgets 0.1.0; check it with: hpcwidgets lint <this file>
set -eo pipefail

export DATA=/scratch/data

mkdir -p out

srun python train.py
"""


def test_the_job_name_edited_in_a_job_read_alone_changes_its_directive_alone():
    out = _saved(TITLED, reader=parse_job, job_name="renamed")
    assert _changes(TITLED, out) == [("#SBATCH --job-name=demo", "#SBATCH --job-name=renamed")]


def test_the_job_name_edited_on_the_command_line_keeps_the_scripts_own_lines(tmp_path):
    out = _from_cli(tmp_path, "sbatch", TITLED, "job_name=renamed", "time=02:00:00")
    assert _changes(TITLED, out) == [("#SBATCH --job-name=demo", "#SBATCH --job-name=renamed"),
                                     ("#SBATCH --time=01:00:00", "#SBATCH --time=02:00:00")]


def test_a_name_edited_with_a_directive_and_a_command_added_reads_back_as_edited():
    job = parse_job(TITLED)
    edited = job.replace(job_name="renamed", partition="gpu", commands=(*job.commands, "echo done"))
    out = _checked(parse_job, edited, render(edited, validate=False))
    assert "# Train the model on one GPU\n# Generated by" in out and "--partition=gpu" in out
    assert "Slurm job" not in out and out.endswith("srun python train.py\n\necho done\n")


def test_a_title_that_is_the_jobs_own_follows_its_name():
    text = TITLED.replace("# Train the model on one GPU", "# Slurm job demo")
    out = _saved(text, reader=parse_job, job_name="renamed")
    assert _changes(text, out) == [("#SBATCH --job-name=demo", "#SBATCH --job-name=renamed"),
                                   ("# Slurm job demo", "# Slurm job renamed")]


def test_read_as_a_workflow_the_title_is_still_edited_in_its_place():
    model = parse_script(TITLED)
    assert model.title == "Train the model on one GPU"
    edited = model.replace(title="Train it on two GPUs", job=model.job.replace(job_name="renamed"))
    out = _checked(parse_script, edited, render(edited, validate=False))
    assert _changes(TITLED, out) == [("#SBATCH --job-name=demo", "#SBATCH --job-name=renamed"),
                                     ("# Train the model on one GPU", "# Train it on two GPUs")]
