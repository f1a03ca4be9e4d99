"""Session 19, E1: edits a model would not write or would misplace are refused by the model's own rule
(:func:`hpcwidgets.spec.workflow.refused_edit`), which the command line and the forms both ask: a workflow's
``job.commands``, a title for a script read back without hpcwidgets' header, an image for a step that runs in a
running Apptainer instance. The form puts the control back and says why at it, as the command line says it with exit
status 2. The note that the container fields hold one of several container steps comes with an edit of the container
(``--set container.…``, ``--container``, the form's Container controls), not with every read of such a script."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.workflow import edit_notes, readback_notes
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.workflow import Workflow, refused_edit
from hpcwidgets.widgets import WorkflowBuilder
from test_cli_s18 import run  # the CLI run that also asserts no traceback

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"
#: a step that runs in an instance the script starts from old.sif
INSTANCE = (HEAD + "apptainer instance start --nv old.sif srv\napptainer exec instance://srv python serve.py\n"
            "apptainer instance stop srv\n")
#: a script of a person's own: no header of hpcwidgets'
PLAIN = HEAD + "apptainer exec --nv img.sif python train.py\n"
#: three container steps; the model holds the last
SEVERAL = (HEAD + "srun -N1 --overlap apptainer exec ray.sif ray start --head --block &\nsleep 10\n"
           "srun -N1 --overlap apptainer exec ray.sif ray start --address $HEAD --block &\nsleep 10\n"
           "apptainer exec --nv vllm.sif vllm serve model\n")
CONTAINER_NOTE = ("line 7: the container fields (--set container.…, the form's Container) hold the container of this "
                  "step")


def script(tmp_path: Path, text: str) -> str:
    path = tmp_path / "job.sh"
    path.write_text(text)
    return str(path)


def form_errors(b: WorkflowBuilder, key: str) -> list[str]:
    return [f.message for f in b.findings if getattr(f, "field", "") == key and f.severity == "error"]


# ---------------------------------------------------------------------------------------------------------------
# the model's rule

@pytest.mark.parametrize("text, path, value, reason, fix", [
    (INSTANCE, "container.image", "new.sif", "fresh container of new.sif", "change it on that apptainer instance start line"),
    (PLAIN, "title", "Train ResNet", "without that header", "write it as a comment at the top of that script"),
    (PLAIN, "job.commands", "echo hi", "writes no commands of its job", "--program 'python train.py'"),
])
def test_the_model_refuses_what_it_would_lose_or_misplace_and_names_the_fix(text, path, value, reason, fix):
    why = refused_edit(parse_script(text), path, value)
    assert reason in why and fix in why


@pytest.mark.parametrize("text, path, value", [
    (INSTANCE, "container.image", ""),                  # nothing asked for: the model reports a missing image
    (INSTANCE, "container.image", "instance://other"),  # another instance: the step still runs in one
    (INSTANCE, "container.nv", "true"),
    (PLAIN, "container.image", "new.sif"),              # a step in an image takes another image
    (PLAIN, "title", ""),
    (PLAIN, "job.time", "02:00:00"),
])
def test_the_model_takes_what_it_writes_as_meant(text, path, value):
    assert refused_edit(parse_script(text), path, value) is None


def test_a_title_is_taken_where_the_script_has_the_header_or_the_workflow_is_new():
    made = Workflow.single_node("train.py", title="First")
    from hpcwidgets.render import render
    assert refused_edit(parse_script(render(made)), "title", "Second") is None
    assert refused_edit(made, "title", "Second") is None


def test_a_jobs_own_commands_are_its_to_write():
    assert refused_edit(parse_job(HEAD + "srun python train.py\n"), "commands", "echo hi") is None


def test_a_lone_command_in_an_instance_takes_an_image():
    # no instance start line goes with it: a new image is just what the command then runs in
    lone = ApptainerRun(image="instance://srv", command=("python", "serve.py"))
    assert refused_edit(lone, "image", "new.sif") is None


# ---------------------------------------------------------------------------------------------------------------
# the command line says what the model says, exit status 2

@pytest.mark.parametrize("text, argv, path, value", [
    (INSTANCE, ("--set", "container.image=new.sif"), "container.image", "new.sif"),
    (PLAIN, ("--set", "title=Train ResNet"), "title", "Train ResNet"),
    (PLAIN, ("--title", "Train ResNet"), "title", "Train ResNet"),
    (PLAIN, ("--set", "job.commands=echo hi"), "job.commands", "echo hi"),
])
def test_the_command_line_refuses_with_the_models_reason(capsys, tmp_path, text, argv, path, value):
    code, out, err = run(capsys, "workflow", "--from", script(tmp_path, text), *argv)
    assert code == 2 and out == ""
    assert refused_edit(parse_script(text), path, value) in " ".join(err.split())


def test_the_command_lines_set_gives_a_lone_command_in_an_instance_an_image():
    from hpcwidgets.cli._options import apply_sets
    lone = ApptainerRun(image="instance://srv", command=("python", "serve.py"))
    assert apply_sets(lone, ["image=new.sif"]) == lone.replace(image="new.sif")


# ---------------------------------------------------------------------------------------------------------------
# the form refuses the same edits, puts the control back and says why at it

@pytest.mark.parametrize("text, key, path, value", [
    (INSTANCE, "container.image", "container.image", "new.sif"),
    (PLAIN, "workflow.title", "title", "Train ResNet"),
])
def test_the_form_puts_a_refused_value_back_and_says_why(text, key, path, value):
    b = WorkflowBuilder.from_script(text)
    control = b.controls[path]
    before, spec = control.value, b.spec
    control.value = value
    assert control.value == before and b.spec == spec and b.text == text and not b.stale
    [said] = form_errors(b, key)
    assert said.endswith(refused_edit(spec, path, value)) and "was not changed" in said
    assert path in b.invalid_fields and "hpcw-status-error" not in b.status.value  # marked, and no traceback
    b.controls["job.time"].value = "02:00:00"  # the next edit is taken; the refusal is no longer news
    assert "#SBATCH --time=02:00:00" in b.text and not form_errors(b, key)


def test_the_form_takes_another_instance_and_a_title_where_the_header_is():
    b = WorkflowBuilder.from_script(INSTANCE)
    b.controls["container.image"].value = "instance://other"
    assert b.text == INSTANCE.replace("instance://srv", "instance://other") and not form_errors(b, "container.image")
    made = WorkflowBuilder()
    made.controls["title"].value = "Train ResNet"
    assert made.spec.title == "Train ResNet" and "# Train ResNet\n" in made.text


def test_a_title_typed_into_a_form_that_loaded_a_plain_script_is_refused_after_load():
    b = WorkflowBuilder()
    assert b.load(PLAIN)
    b.controls["title"].value = "T"  # the first key typed
    assert b.controls["title"].value == "" and b.text == PLAIN and form_errors(b, "workflow.title")


# ---------------------------------------------------------------------------------------------------------------
# the note on one of several container steps: with an edit of the container, not with every read

def test_reading_several_container_steps_says_nothing_of_the_container_until_it_is_edited():
    model = parse_script(SEVERAL)
    assert not [n for n in readback_notes(SEVERAL, model) if "container fields" in n]
    assert not [n for n in readback_notes(SEVERAL, model, ("job.time", "program")) if "container fields" in n]
    for edited in (("container.image",), ("container",), ("job.time", "container.nv")):
        assert [n for n in readback_notes(SEVERAL, model, edited) if n.startswith(CONTAINER_NOTE)]


def test_edit_notes_say_only_what_the_edit_makes_matter():
    crlf = SEVERAL.replace("\n", "\r\n")
    model = parse_script(crlf)
    assert any("Windows line ends" in n for n in readback_notes(crlf, model, ("container.image",)))
    [note] = edit_notes(crlf, model, ("container.image",))
    assert note.startswith(CONTAINER_NOTE)
    assert edit_notes(crlf, model, ("job.time",)) == ()
    assert edit_notes(PLAIN, parse_script(PLAIN), ("container.image",)) == ()  # one container step
    assert edit_notes(model.to_json(), model, ("container.image",)) == ()  # a saved model is no script


@pytest.mark.parametrize("argv, noted", [
    (("--set", "container.image=new.sif"), True),
    (("--container", "apptainer exec new.sif"), True),
    (("--set", "container.nv=false"), True),
    (("--set", "job.time=02:00:00"), False),
    ((), False),
])
def test_the_command_line_notes_the_other_container_steps_when_the_container_is_edited(capsys, tmp_path, argv,
                                                                                        noted):
    code, out, err = run(capsys, "workflow", "--from", script(tmp_path, SEVERAL), *argv)
    assert code == 0 and out.count("apptainer exec") == 3
    assert (CONTAINER_NOTE in err) is noted


def test_the_form_notes_the_other_container_steps_at_the_container_control_when_it_is_edited():
    b = WorkflowBuilder()
    assert b.load(SEVERAL) and "container fields" not in b.status.value
    assert not [f for f in b.findings if "container fields" in f.message]
    b.controls["container.image"].value = "new.sif"
    assert b.text == SEVERAL.replace("vllm.sif", "new.sif")
    [note] = [f for f in b.findings if "container fields" in f.message]
    assert note.severity == "warning" and note.field == "container.image" and note.message.startswith(CONTAINER_NOTE)
    b.controls["job.time"].value = "02:00:00"
    assert not [f for f in b.findings if "container fields" in f.message]


def test_the_form_has_no_such_note_for_one_container_step():
    b = WorkflowBuilder.from_script(PLAIN)
    b.controls["container.image"].value = "new.sif"
    assert b.text == PLAIN.replace("img.sif", "new.sif")
    assert not [f for f in b.findings if "container fields" in f.message]
