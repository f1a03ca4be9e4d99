"""Session 21: a title that states the job's counts stays true wherever the job is edited, and a step in a running
instance is refused an image in words that quote the script's own lines.

The title's rule is the model's (:func:`hpcwidgets.spec.workflow.follow`), so the workflow form and ``hpcwidgets
workflow --set`` both apply it, as they apply torchrun's counts and the container's GPU flag.
"""

from __future__ import annotations

import pytest

from hpcwidgets.cli import load_model_file, main
from hpcwidgets.parse import parse_script
from hpcwidgets.spec.slurm import SlurmJob
from hpcwidgets.spec.workflow import Workflow, follow, followed, refused_edit, title_counts

pytest.importorskip("ipywidgets")
from hpcwidgets.widgets import WorkflowBuilder  # noqa: E402


def two_by_four(title: str) -> Workflow:
    return Workflow.multi_node("train.py", nodes=2, gpus_per_node=4, image="i.sif", title=title)


def edited(wf: Workflow, **job: object) -> Workflow:
    """``wf`` with its job's fields changed and what follows them applied, as an edit in the form or by --set."""
    return followed(wf, wf.replace(job=wf.job.replace(**job)))


def title_line(text: str, words: str) -> str:
    return next(line for line in text.split("\n") if line.startswith("# ") and words in line)


# ------------------------------------------------------------------------------------------------
# 1. the model's rule

def test_follow_gives_the_title_with_the_new_node_count_and_torchruns():
    wf = two_by_four("Distributed training on 2 nodes × 4 GPUs")
    after = wf.replace(job=wf.job.replace(nodes=4))
    assert follow(wf, after) == {"launcher.nnodes": "4", "title": "Distributed training on 4 nodes × 4 GPUs"}
    assert follow(wf, after, ["title"]) == {"launcher.nnodes": "4"}, "a title given with the edit is kept"


@pytest.mark.parametrize("title, now", [
    # the GPUs on each node, as torchrun's --nproc-per-node counts them: by the words around the count, or by the
    # count alone when only the job's GPUs per node match it
    ("Train on 2 nodes × 4 GPUs", "Train on 3 nodes × 2 GPUs"),
    ("Train on 2 nodes x 4 GPUs", "Train on 3 nodes x 2 GPUs"),
    ("Train on 2 nodes with 4 GPUs each", "Train on 3 nodes with 2 GPUs each"),
    ("Train on 2 nodes, 4 GPUs per node", "Train on 3 nodes, 2 GPUs per node"),
    ("Train on 2 nodes with 4 GPUs", "Train on 3 nodes with 2 GPUs"),
    # the GPUs in all
    ("Train on 8 GPUs", "Train on 6 GPUs"),
    # numbers that were not the job's stay as written
    ("Train on 5 nodes, 3 GPUs", "Train on 5 nodes, 3 GPUs"),
    ("Reproduce the 2 nodes of the paper's 16 GPUs", "Reproduce the 3 nodes of the paper's 16 GPUs"),
])
def test_a_gpu_count_is_read_as_the_title_says_it(title, now):
    wf = edited(two_by_four(title), nodes=3, gpus_per_node=2)
    assert wf.title == now
    assert (wf.launcher.nnodes, wf.launcher.nproc_per_node) == ("3", "2")


def test_a_single_node_title_counts_its_gpus():
    wf = Workflow.single_node("train.py", image="i.sif", gpus_per_node=1, title="Train on one GPU in a container")
    assert edited(wf, gpus_per_node=2).title == "Train on 2 GPUs in a container"
    assert edited(edited(wf, gpus_per_node=2), gpus_per_node=1).title == "Train on 1 GPU in a container"
    assert edited(wf, gpus_per_node=0).title == wf.title, "no GPUs: the title is not made to say 0 GPUs"


def test_a_count_typed_over_passes_through_empty_and_the_title_still_follows():
    """In a form, replacing 2 by 3 with the keyboard passes through an empty Nodes field: the job's count is unset
    for one refresh. torchrun's --nnodes kept the last one, and stands in for it."""
    wf = two_by_four("Distributed training on 2 nodes × 4 GPUs")
    blank = edited(wf, nodes=None)
    assert blank.title == wf.title and blank.launcher.nnodes == "2"
    three = edited(blank, nodes=3)
    assert three.title == "Distributed training on 3 nodes × 4 GPUs" and three.launcher.nnodes == "3"
    # the same for the GPUs per node, which --nproc-per-node kept
    blank = edited(wf, gpus_per_node=None)
    assert edited(blank, gpus_per_node=2).title == "Distributed training on 2 nodes × 2 GPUs"


def test_without_a_launcher_an_unset_count_gives_the_title_nothing_to_follow():
    wf = Workflow.single_node("train.py", image="i.sif", nodes=2, title="Two copies on 2 nodes")
    assert wf.launcher is None
    assert edited(wf, nodes=4).title == "Two copies on 4 nodes"
    assert edited(edited(wf, nodes=None), nodes=4).title == "Two copies on 2 nodes"


def test_the_rule_reads_counts_that_are_no_plain_number_as_unknown():
    before, after = SlurmJob(nodes=2, gpus_per_node=4), SlurmJob(nodes="2-4", gpus_per_node=4)
    # a range is no plain number, but the title can state it (session 31): the count is Slurm's pick in it
    assert title_counts("Train on 2 nodes", before, after) == "Train on 2-4 nodes"
    assert title_counts("Train on 3 nodes", before, after) == "Train on 3 nodes"  # not the job's count: as written
    total = SlurmJob(nodes=2, gpus=8), SlurmJob(nodes=2, gpus=16)
    assert title_counts("Train on 8 GPUs", *total) == "Train on 16 GPUs"


# ------------------------------------------------------------------------------------------------
# 2. the form and the command line

def test_the_forms_nodes_field_keeps_the_title_true():
    wf = two_by_four("Distributed training on 2 nodes × 4 GPUs")
    b = WorkflowBuilder(wf, submit=False)
    b.controls["job.nodes"].value = "4"
    assert title_line(b.text, "training") == "# Distributed training on 4 nodes × 4 GPUs"
    assert b.controls["title"].value == "Distributed training on 4 nodes × 4 GPUs"
    assert "--nnodes=4" in b.text
    # typed over with the keyboard: through an empty field
    b.controls["job.nodes"].value = ""
    b.controls["job.nodes"].value = "3"
    assert title_line(b.text, "training") == "# Distributed training on 3 nodes × 4 GPUs"
    b.controls["job.gpus_per_node"].value = "2"
    assert title_line(b.text, "training") == "# Distributed training on 3 nodes × 2 GPUs"
    assert b.form.key_for("title") not in b._user_set, "a title the form keeps true is not one typed by hand"
    b.controls["job.nodes"].value = "2"  # and so it follows the next edit too
    assert title_line(b.text, "training") == "# Distributed training on 2 nodes × 2 GPUs"


def test_a_title_typed_in_the_form_is_kept_as_typed():
    b = WorkflowBuilder(two_by_four("Distributed training on 2 nodes"), submit=False)
    b.controls["title"].value = "My run on 2 nodes"
    b.controls["job.nodes"].value = "5"
    assert title_line(b.text, "My run") == "# My run on 2 nodes" and "--nnodes=5" in b.text


def test_the_form_and_the_command_line_give_the_same_title(tmp_path, capsys):
    saved = tmp_path / "job.json"
    assert main(["examples", "multi-node-torchrun", "--format", "json", "-o", str(saved)]) == 0
    out = tmp_path / "out.sh"
    code = main(["workflow", "--from", str(saved), "--set", "job.nodes=3", "-o", str(out)])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    text = out.read_text()
    assert title_line(text, "training").startswith("# Distributed training on 3 nodes:")

    b = WorkflowBuilder(load_model_file(str(saved), Workflow), submit=False)
    b.controls["job.nodes"].value = "3"
    assert title_line(b.text, "training") == title_line(text, "training")


# ------------------------------------------------------------------------------------------------
# 3. a step in a running instance: the refusal quotes the lines the script has

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


@pytest.mark.parametrize("start, step, stop", [
    ("singularity instance start --nv old.sif srv", "apptainer exec instance://srv python serve.py",
     "singularity instance stop srv"),
    ("apptainer instance run --nv old.sif srv", "singularity run instance://srv", "apptainer instance stop srv"),
    ("/opt/apptainer/bin/apptainer instance start old.sif srv", "apptainer exec instance://srv python serve.py",
     "apptainer instance stop srv"),
])
def test_the_refusal_quotes_the_line_that_starts_the_instance_as_written(start, step, stop):
    wf = parse_script(HEAD + f"{start}\n{step}\n{stop}\n")
    started = start.split(" --nv")[0].rsplit(" old.sif", 1)[0]  # "singularity instance start"
    step_words = " ".join(step.split()[:3])
    why = refused_edit(wf, "container.image", "new.sif")
    assert f"'{started} … IMAGE srv'" in why and f"change it on that {started} line" in why
    assert f"({step_words})" in why
    other = "apptainer" if started.startswith("singularity") else "singularity"
    assert f"{other} instance" not in why, "no line the script does not have"
    why = refused_edit(wf, "container.runtime", "none")
    assert f"its '{started} … IMAGE srv' line starts" in why and f"({started}, {step_words}, instance stop)" in why


def test_the_line_is_the_last_that_starts_this_instance():
    wf = parse_script(HEAD + "apptainer instance run a.sif srv\napptainer instance stop srv\n"
                             "singularity instance start b.sif srv\napptainer instance run c.sif srv2\n"
                             "apptainer exec instance://srv python serve.py\n")
    assert "'singularity instance start … IMAGE srv'" in refused_edit(wf, "container.image", "new.sif")


def test_a_step_whose_instance_no_line_starts_is_refused_without_quoting_one():
    wf = parse_script(HEAD + "apptainer exec instance://srv python serve.py\n")
    why = refused_edit(wf, "container.image", "new.sif")
    assert "no line before the step starts it by that name" in why and "instance start line" not in why
    why = refused_edit(wf, "container.runtime", "charliecloud")
    assert "no line before the step starts it" in why and "edit its line (apptainer exec instance://srv)" in why
    assert refused_edit(wf, "container.image", "instance://other") is None
