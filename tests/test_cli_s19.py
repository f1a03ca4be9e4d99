"""Session 19, E9: the words typed after a command's options reach the fields meant, and a step in a running
instance keeps its runtime.

- With ``--from``, trailing words left out keep the saved ones (argparse's empty REMAINDER emptied them).
- A field given by ``--set`` (``image=…``) takes no operand: the words go on to the next positional field and the
  rest to the trailing words, for every command whose operands are fields; words nothing is left to take are refused.
- The Workflow form's Container switch refuses another runtime for a step that runs ``apptainer exec
  instance://NAME`` (:func:`hpcwidgets.spec.workflow.refused_edit`), as the image is refused there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.workflow import refused_edit
from hpcwidgets.parse import parse_script
from hpcwidgets.widgets import WorkflowBuilder
from test_cli_s18 import run  # the CLI run that also asserts no traceback


@pytest.fixture
def saved(capsys, tmp_path: Path) -> str:
    """An apptainer exec model saved with --format json."""
    code, out, _ = run(capsys, "apptainer", "exec", "--nv", "--format", "json", "img.sif", "python", "train.py",
                       "--epochs", "3")
    assert code == 0 and json.loads(out)["command"] == ["python", "train.py", "--epochs", "3"]
    path = tmp_path / "saved.json"
    path.write_text(out)
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# --from: trailing words left out keep the saved ones

@pytest.mark.parametrize("argv, written", [
    ((), "apptainer exec --nv img.sif python train.py --epochs 3"),
    (("--cleanenv",), "apptainer exec --cleanenv --nv img.sif python train.py --epochs 3"),
    (("other.sif",), "apptainer exec --nv other.sif python train.py --epochs 3"),  # a new image, the same program
    (("other.sif", "python", "eval.py"), "apptainer exec --nv other.sif python eval.py"),  # typed words replace
    (("--set", "command=python eval.py"), "apptainer exec --nv img.sif python eval.py"),
])
def test_words_left_out_keep_the_saved_command(capsys, saved, argv, written):
    code, out, err = run(capsys, "apptainer", "exec", "--from", saved, *argv)
    assert (code, out.strip()) == (0, written), err


def test_an_empty_set_still_empties_the_saved_command(capsys, saved):
    code, out, err = run(capsys, "apptainer", "exec", "--from", saved, "--set", "command=")
    assert code == 2 and out == "" and "exec needs a command" in err


def test_a_saved_torchrun_keeps_its_arguments(capsys, tmp_path):
    code, out, _ = run(capsys, "torchrun", "--standalone", "--format", "json", "train.py", "--epochs", "3")
    path = tmp_path / "t.json"
    path.write_text(out)
    code, out, err = run(capsys, "torchrun", "--from", str(path), "--nproc-per-node", "2")
    assert code == 0 and out.strip().endswith("train.py --epochs 3"), err


def test_without_from_an_exec_without_a_command_is_still_refused(capsys):
    code, out, err = run(capsys, "apptainer", "exec", "img.sif")
    assert code == 2 and "exec needs a command" in err


# ---------------------------------------------------------------------------------------------------------------
# --set of an operand's field: the words go on to the next field

@pytest.mark.parametrize("argv, written", [
    (("apptainer", "exec", "--set", "image=new.sif", "python", "train.py"), "apptainer exec new.sif python train.py"),
    (("apptainer", "exec", "--set", "image=new.sif", "--nv", "python", "train.py", "-v"),
     "apptainer exec --nv new.sif python train.py -v"),
    (("apptainer", "run", "--set", "image=new.sif", "--", "--lr", "0.1"), "apptainer run new.sif --lr 0.1"),
    (("charliecloud", "run", "--set", "image=/var/tmp/img", "--", "python", "train.py"),
     "ch-run /var/tmp/img -- python train.py"),
    (("apptainer", "instance", "start", "--set", "image=db.sif", "db"), "apptainer instance start db.sif db"),
    (("apptainer", "instance", "start", "--set", "name=db", "db.sif"), "apptainer instance start db.sif db"),
    (("apptainer", "pull", "--set", "dest=a.sif", "docker://alpine:3.20"), "apptainer pull a.sif docker://alpine:3.20"),
    (("charliecloud", "convert", "--set", "output=/var/tmp/t.sqfs", "trainer"), "ch-convert trainer /var/tmp/t.sqfs"),
    (("torchrun", "--set", "script=train.py", "--", "--epochs", "3"), "torchrun train.py --epochs 3"),
    (("apptainer", "exec", "--set", "command=python train.py", "img.sif"), "apptainer exec img.sif python train.py"),
    # operands without any --set of theirs go where they always did
    (("apptainer", "exec", "--set", "nv=true", "img.sif", "python", "train.py"),
     "apptainer exec --nv img.sif python train.py"),
])
def test_a_field_given_by_set_takes_no_word(capsys, argv, written):
    code, out, err = run(capsys, *argv)
    assert code in (0, 1) and out.strip() == written, err  # 1: lint's findings about the command


def test_with_from_a_set_image_leaves_the_words_to_the_command(capsys, saved):
    code, out, err = run(capsys, "apptainer", "exec", "--from", saved, "--set", "image=new.sif", "python", "t.py")
    assert (code, out.strip()) == (0, "apptainer exec --nv new.sif python t.py"), err


@pytest.mark.parametrize("argv, words, took", [
    (("apptainer", "inspect", "--set", "image=a.sif", "b.sif"), "b.sif: no operand is left for this word: IMAGE "
                                                                 "is given", "takes no other operand"),
    (("apptainer", "exec", "--set", "command=python t.py", "img.sif", "extra", "more"),
     "extra more: no operand is left for these words: COMMAND is given", "IMAGE took the words before"),
    (("apptainer", "pull", "--set", "dest=a.sif", "--set", "source=docker://x", "b.sif"),
     "DEST and SOURCE are given", "takes no other operand"),
])
def test_words_no_field_is_left_to_take_are_refused(capsys, argv, words, took):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    said = " ".join(err.split())
    assert words in said and took in said and "drop" in said


# ---------------------------------------------------------------------------------------------------------------
# the Workflow form's Container switch for a step in a running instance

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"
INSTANCE = (HEAD + "apptainer instance start --nv old.sif srv\napptainer exec instance://srv python serve.py\n"
            "apptainer instance stop srv\n")
PLAIN = HEAD + "apptainer exec --nv img.sif python train.py\n"


@pytest.mark.parametrize("runtime, instead", [
    ("charliecloud", "charliecloud here would run the step in a fresh container of its own"),
    ("none", "no container here would run the step on the host"),
])
def test_the_model_refuses_another_runtime_for_a_step_in_an_instance(runtime, instead):
    why = refused_edit(parse_script(INSTANCE), "container.runtime", runtime)
    assert "running instance srv" in why and instead in why and "edit the script's instance lines" in why


@pytest.mark.parametrize("text, runtime", [
    (INSTANCE, "apptainer"),
    (INSTANCE, "singularity"),   # Apptainer's old name for its own program
    (PLAIN, "charliecloud"),     # a step in an image of its own may move
    (PLAIN, "none"),
])
def test_the_model_takes_a_runtime_that_keeps_the_step_where_it_runs(text, runtime):
    assert refused_edit(parse_script(text), "container.runtime", runtime) is None


@pytest.mark.parametrize("runtime", ["charliecloud", "none"])
def test_the_form_puts_the_container_switch_back_and_says_why(runtime):
    b = WorkflowBuilder.from_script(INSTANCE)
    switch = b.controls["container.runtime"]
    spec = b.spec
    switch.value = runtime
    assert switch.value == "apptainer" and b.spec == spec and b.text == INSTANCE
    [said] = [f.message for f in b.findings if getattr(f, "field", "") == "container.runtime" and f.severity == "error"]
    assert said == "Container was not changed: " + refused_edit(spec, "container.runtime", runtime)
    assert "container.runtime" in b.invalid_fields and "hpcw-status-error" not in b.status.value
    b.controls["job.time"].value = "02:00:00"  # the next edit is taken; the refusal is no longer news
    assert "#SBATCH --time=02:00:00" in b.text and not [f for f in b.findings if getattr(f, "field", "") == "container.runtime"]


def test_the_form_still_switches_the_runtime_of_a_step_in_an_image():
    b = WorkflowBuilder.from_script(PLAIN)
    b.controls["container.runtime"].value = "charliecloud"
    assert isinstance(b.spec.container, ChRun)  # the form then says ch-run cannot read img.sif, at the Image
    assert not [f for f in b.findings if getattr(f, "field", "") == "container.runtime"]
    b.controls["container.runtime"].value = "apptainer"
    assert b.text == PLAIN


def test_the_form_still_switches_srun_and_torchrun_of_a_step_in_an_instance():
    b = WorkflowBuilder.from_script(INSTANCE)
    b.controls["srun.enabled"].value = True
    assert "srun" in b.text and "apptainer exec instance://srv python serve.py" in b.text


# ---------------------------------------------------------------------------------------------------------------
# the command line's whole container layer for a step in a running instance (spec.workflow.moved_out_of_instance)

@pytest.mark.parametrize("argv, said", [
    (("--container", "ch-run /img"), "charliecloud here would run the step in a fresh container"),
    (("--container", ""), "no container here would run the step on the host"),
    (("--container", "apptainer exec other.sif"), "a fresh container of other.sif"),
    (("--set", "container="), "no container here would run the step on the host"),
    (("--set", "container=ch-run /img"), "charliecloud here would run the step in a fresh container"),
])
def test_a_container_layer_that_takes_the_step_out_of_its_instance_is_refused(capsys, tmp_path, argv, said):
    path = tmp_path / "inst.sh"
    path.write_text(INSTANCE)
    code, out, err = run(capsys, "workflow", "--from", str(path), *argv)
    assert code == 2 and out == "" and said in err and "running instance srv" in err


@pytest.mark.parametrize("argv", [("--container", "apptainer exec instance://srv"),
                                  ("--container", "singularity exec instance://srv"),
                                  ("--set", "job.time=02:00:00")])
def test_a_container_layer_that_keeps_the_step_in_its_instance_is_taken(capsys, tmp_path, argv):
    path = tmp_path / "inst.sh"
    path.write_text(INSTANCE)
    code, out, _ = run(capsys, "workflow", "--from", str(path), *argv)
    assert code == 0 and "exec instance://srv python serve.py" in out


def test_a_new_container_layer_for_a_step_in_an_image_is_still_taken(capsys, tmp_path):
    path = tmp_path / "img.sh"
    path.write_text(HEAD + "apptainer exec old.sif python train.py\n")
    code, out, _ = run(capsys, "workflow", "--from", str(path), "--container", "apptainer exec --nv new.sif")
    assert code in (0, 1) and "new.sif python train.py" in out
