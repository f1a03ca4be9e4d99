"""Every command and script in the workshop's source deck, rebuilt from models.

For each bash block of the deck this test names the models that produce it and asserts that their
rendering means the same as the deck's text: the same argument vectors after shell word splitting
(flag spellings such as ``--nproc_per_node`` normalised to the rendered ``--nproc-per-node``, the
order of options within one program ignored) and the same ``#SBATCH`` directives.

Where the deck is wrong, the test also builds the corrected version and asserts exactly what
differs, with the reason:

* the multi-node script starts 4 torchrun launchers per node (``--ntasks-per-node=4`` and
  ``--nproc_per_node=$SLURM_NTASKS_PER_NODE``: 16 workers fighting over 4 GPUs and one port) and
  points the rendezvous at ``$SLURM_STEP_NODELIST:29500``, a node *list*, not a host;
* the pulls use ``:latest`` tags, which change under you (not reproducible): pin a version.

Our scripts also start with ``set -eo pipefail`` … ``set -u`` (fail fast); those prologue lines
are left out of the comparison on purpose.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers import need

from hpcwidgets.render.command import command_line
from hpcwidgets.render.workflow import HEAD_NODE_LINE, render_workflow, step_text
from hpcwidgets.spec import ApptainerPull, ApptainerRun, Bind, SlurmJob, Srun, Torchrun
from hpcwidgets.spec.workflow import Workflow

DECK = Path(os.environ.get("HPCW_SOURCE_DECK", "/work/shared/seed/000_232e9879c9e13462.txt"))
PROLOGUE = (["set", "-eo", "pipefail"], ["set", "-u"])
PROGRAMS = {"srun", "apptainer", "singularity", "torchrun", "ch-run", "python", "python3"}
CONTAINER_ACTIONS = {"exec", "run", "shell", "test"}


# ------------------------------------------------------------------------------------------------
# reading shell text
# ------------------------------------------------------------------------------------------------
def deck_blocks() -> list[str]:
    need(DECK.is_file(), f"the source deck is not at {DECK} (set HPCW_SOURCE_DECK to its path)")
    text = DECK.read_text()
    blocks = []
    for m in re.finditer(r"^( *)```bash\n(.*?)^\1```", text, re.M | re.S):
        indent = len(m.group(1))
        blocks.append("\n".join(line[indent:] for line in m.group(2).splitlines()))
    return blocks


def read(text: str) -> tuple[list[str], list[list[str]]]:
    """``#SBATCH`` options and the commands (as word lists) of shell text; comments and the
    fail-fast prologue dropped, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    directives: list[str] = []
    commands: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("#SBATCH"):
            directives += shlex.split(line[len("#SBATCH"):], comments=True)
        elif line and not line.startswith("#"):
            words = shlex.split(line, comments=True)
            if words not in PROLOGUE:
                commands.append(words)
    return directives, commands


def _aliases() -> dict[str, str]:
    out = {}
    for model in (Torchrun, ApptainerRun, ApptainerPull, Srun, SlurmJob):
        for f in model.field_specs():
            for alias in f.info.aliases:
                if alias.startswith("--") and f.info.flag:
                    out[alias] = f.info.flag
    return out


ALIASES = _aliases()
SPACE_FLAGS = {f.info.flag for m in (ApptainerRun, ApptainerPull) for f in m.field_specs() if f.info.style == "space"}


def canon(word: str) -> str:
    name, eq, value = word.partition("=")
    return ALIASES.get(name, name) + eq + value


def layers(words: list[str]) -> list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """A command split into its layers: (program, subcommand, sorted options, positionals and arguments)."""
    out = []
    i = 0
    while i < len(words):
        prog, i = words[i], i + 1
        sub: tuple[str, ...] = ()
        if prog in ("apptainer", "singularity"):
            sub, i = (words[i],), i + 1
        opts = []
        while i < len(words) and words[i].startswith("-"):
            word = canon(words[i])
            if word in SPACE_FLAGS:
                word, i = f"{word} {words[i + 1]}", i + 1
            opts.append(word)
            i += 1
        if prog == "srun":
            out.append((prog, sub, tuple(sorted(opts)), ()))
            continue
        if sub and sub[0] in CONTAINER_ACTIONS and i < len(words):
            out.append((prog, sub, tuple(sorted(opts)), (words[i],)))
            i += 1
            continue
        out.append((prog, sub, tuple(sorted(opts)), tuple(words[i:])))
        break
    return out


def normal(command: list[str]) -> Any:
    return layers(command) if command and command[0] in PROGRAMS else tuple(command)


def same_meaning(deck_text: str, ours: str) -> None:
    d_dirs, d_cmds = read(deck_text)
    o_dirs, o_cmds = read(ours)
    assert sorted(o_dirs) == sorted(d_dirs), f"directives differ:\n deck {sorted(d_dirs)}\n ours {sorted(o_dirs)}"
    assert [normal(c) for c in o_cmds] == [normal(c) for c in d_cmds], f"--- deck ---\n{deck_text}\n--- ours ---\n{ours}"


def module_line(name: str) -> str:
    return f"module load {name}"


# ------------------------------------------------------------------------------------------------
# the models for every block, in deck order
# ------------------------------------------------------------------------------------------------
PULL_PYTORCH = ApptainerPull(source="docker://pytorch/pytorch:latest")
PULL_TF = ApptainerPull(source="docker://tensorflow/tensorflow:latest-gpu")
PINNED = {PULL_PYTORCH: "docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime",
          PULL_TF: "docker://tensorflow/tensorflow:2.16.1-gpu"}

SINGLE_NODE = Workflow(
    job=SlurmJob(job_name="ml-training", gpus_per_node=1, partition="gpu", cpus_per_task=4, mem="16G",
                 modules=("apptainer",),
                 setup=("CONTAINER_IMAGE=/path/to/pytorch_latest.sif", "SCRIPT_DIR=/path/to/your/scripts",
                        "DATA_DIR=/path/to/your/data", "OUTPUT_DIR=/path/to/your/output", 'mkdir -p "$OUTPUT_DIR"')),
    container=ApptainerRun(action="run", nv=True, image="$CONTAINER_IMAGE",
                           binds=(Bind("$SCRIPT_DIR", "/scripts"), Bind("$DATA_DIR", "/data"), Bind("$OUTPUT_DIR", "/output"))),
    program=("python", "/scripts/train.py", "--data_dir", "/data", "--output_dir", "/output"))

MULTI_NODE_JOB = dict(job_name="dist-ml-train", partition="gpu-multi", modules=("apptainer",),
                      setup=("CONTAINER_IMAGE=/path/to/your/ml_container.sif",))
MULTI_NODE_CONTAINER = ApptainerRun(action="run", image="$CONTAINER_IMAGE", binds=(Bind("/path/to/data", "/data"),))
MULTI_NODE_AS_WRITTEN = Workflow(
    job=SlurmJob(nodes=2, ntasks_per_node=4, gpus_per_node=4, cpus_per_task=2, **MULTI_NODE_JOB),
    srun=Srun(),
    container=MULTI_NODE_CONTAINER.replace(nv=True),
    launcher=Torchrun(nnodes="$SLURM_NNODES", nproc_per_node="$SLURM_NTASKS_PER_NODE", rdzv_id="$SLURM_JOB_ID",
                      rdzv_backend="c10d", rdzv_endpoint="$SLURM_STEP_NODELIST:29500",
                      script="/path/to/your/distributed_train.py"))


def multi_node_corrected() -> Workflow:
    """The same job built the correct way: 8 CPUs per node as before, one torchrun per node."""
    w = Workflow.multi_node("/path/to/your/distributed_train.py", nodes=2, gpus_per_node=4, cpus_per_task=8,
                            container=MULTI_NODE_CONTAINER, **MULTI_NODE_JOB)
    return w.replace(launcher=w.launcher.replace(nnodes="$SLURM_NNODES"))  # the deck's (correct) node count


#: block index → (what the block shows, the rendering of its models)
BLOCKS: list[tuple[str, Callable[[], str]]] = [
    ("load the module, pull PyTorch", lambda: "\n".join([module_line("apptainer"), command_line(PULL_PYTORCH)])),
    ("interactive shell with GPUs", lambda: command_line(ApptainerRun(action="shell", nv=True, image="pytorch_latest.sif"))),
    ("run a Python script", lambda: command_line(ApptainerRun(nv=True, image="pytorch_latest.sif",
                                                              command=("python", "my_script.py")))),
    ("bind data directories", lambda: "\n".join([
        command_line(ApptainerRun(action="run", nv=True, binds=(Bind("/path/on/host", "/path/in/container"),),
                                  image="pytorch_latest.sif")),
        command_line(ApptainerRun(action="run", nv=True, binds=(Bind("$PWD", "/mnt"),), image="pytorch_latest.sif"))])),
    ("TensorFlow pull and training", lambda: "\n".join([
        command_line(PULL_TF),
        step_text(Workflow(container=ApptainerRun(nv=True, image=PULL_TF.default_dest()),
                           program=("python", "/path/to/your/train.py", "--data", "/path/to/data")))])),
    ("PyTorch multi-GPU with torchrun", lambda: step_text(Workflow(
        container=ApptainerRun(nv=True, image=PULL_PYTORCH.default_dest()),
        launcher=Torchrun(nproc_per_node="4", script="/path/to/your/distributed_train.py")))),
    ("single-node sbatch script", lambda: render_workflow(SINGLE_NODE)),
    ("multi-node sbatch script, as written", lambda: render_workflow(MULTI_NODE_AS_WRITTEN)),
]


def test_every_bash_block_is_listed():
    assert len(deck_blocks()) == len(BLOCKS), "the deck's bash blocks changed: give each one its models here"


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[b[0] for b in BLOCKS])
def test_block_is_rebuilt_by_models(index):
    deck = deck_blocks()[index]
    _, build = BLOCKS[index]
    same_meaning(deck, build())


def test_every_deck_command_is_covered():
    """No command of the deck is left out: each block's command count matches the models'."""
    for (what, build), deck in zip(BLOCKS, deck_blocks()):
        assert len(read(build())[1]) == len(read(deck)[1]), what


def test_models_are_valid_where_the_deck_is_right():
    assert SINGLE_NODE.problems() == []
    assert ApptainerRun(action="run", nv=True, binds=(Bind("$PWD", "/mnt"),), image="pytorch_latest.sif").problems() == []


def test_deck_file_names_follow_from_the_pull():
    # "This creates a .sif file (e.g., pytorch_latest.sif)"; the TensorFlow slide runs tensorflow_latest-gpu.sif
    assert PULL_PYTORCH.default_dest() == "pytorch_latest.sif"
    assert PULL_TF.default_dest() == "tensorflow_latest-gpu.sif"


# ------------------------------------------------------------------------------------------------
# where the deck is wrong: the corrected versions and exactly what differs
# ------------------------------------------------------------------------------------------------
def test_latest_tags_are_pinned_in_the_corrected_pulls():
    """A :latest tag names whatever was pushed last: the job is not reproducible. Pin a version tag."""
    for deck_pull, pinned in PINNED.items():
        fixed = deck_pull.replace(source=pinned)
        deck_words, fixed_words = read(command_line(deck_pull))[1][0], read(command_line(fixed))[1][0]
        changed = [(a, b) for a, b in zip(deck_words, fixed_words) if a != b]
        assert len(deck_words) == len(fixed_words) and changed == [(deck_pull.source, pinned)]
        assert ":latest" in deck_pull.source or ":latest-" in deck_pull.source
        assert "latest" not in fixed.default_dest()


def test_multi_node_as_written_is_flagged_by_the_model():
    messages = [p.message for p in MULTI_NODE_AS_WRITTEN.problems()]
    assert any("is a node list, not one host" in m for m in messages)


def test_multi_node_corrected_differs_exactly_where_the_deck_is_wrong():
    deck_dirs, deck_cmds = read(deck_blocks()[7])
    fixed_text = render_workflow(multi_node_corrected())
    fixed_dirs, fixed_cmds = read(fixed_text)

    # 1. directives: one task (one torchrun) per node, holding all 8 CPUs the deck's 4 tasks × 2 had
    assert set(deck_dirs) - set(fixed_dirs) == {"--ntasks-per-node=4", "--cpus-per-task=2"}
    assert set(fixed_dirs) - set(deck_dirs) == {"--ntasks-per-node=1", "--cpus-per-task=8"}

    # 2. a new host-side line before the step: the head node, resolved outside the container
    assert HEAD_NODE_LINE in fixed_text
    head = shlex.split(HEAD_NODE_LINE)
    assert [c for c in fixed_cmds if c not in deck_cmds and c != head] != []  # the step itself changed too
    assert head in fixed_cmds and head not in deck_cmds
    assert fixed_cmds.index(head) == len(fixed_cmds) - 2

    # 3. the step, layer by layer
    deck_step, fixed_step = layers(deck_cmds[-1]), layers(fixed_cmds[-1])
    assert [lay[0] for lay in deck_step] == [lay[0] for lay in fixed_step] == ["srun", "apptainer", "torchrun"]
    (_, _, d_srun, _), (_, _, f_srun, _) = deck_step[0], fixed_step[0]
    # srun: one task per node; --cpus-per-task again because srun of Slurm 22.05-23.02 does not inherit it
    assert d_srun == () and set(f_srun) == {"--ntasks-per-node=1", "--cpus-per-task=8"}
    assert deck_step[1] == fixed_step[1]  # the container layer is unchanged
    d_tr, f_tr = set(deck_step[2][2]), set(fixed_step[2][2])
    # torchrun: one worker per GPU (4), and the rendezvous at one host, the head node
    assert d_tr - f_tr == {"--nproc-per-node=$SLURM_NTASKS_PER_NODE", "--rdzv-endpoint=$SLURM_STEP_NODELIST:29500"}
    assert f_tr - d_tr == {"--nproc-per-node=4", "--rdzv-endpoint=$head_node:29500"}
    assert deck_step[2][3] == fixed_step[2][3]  # same training script

    # 4. nothing else: the other commands (module, CONTAINER_IMAGE=…) are the deck's
    assert [c for c in fixed_cmds[:-1] if c != head] == deck_cmds[:-1]
    assert multi_node_corrected().problems() == []
