"""Read-back losses fixed in session 17: an Apptainer --mount keeps its destination; a comment worded like one the
renderer writes is dropped only where the renderer writes that very comment; an srun of several programs (MPMD) and
an srun bash -c launch come back exactly as written, each with a note saying why they are not in the step's fields."""

import pytest

from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.argv import parse_argv
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.workflow import readback_notes
from hpcwidgets.render import render
from hpcwidgets.spec.workflow import Workflow

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def _round(text: str) -> str:
    """The script read back and written again in the renderer's own layout (the lint fix path writes without
    validating): what the reader put in which field. Written back unedited in its own layout, a script is its text
    (:func:`_as_written`)."""
    return render(without_layout(parse_script(text)), validate=False)


def _as_written(text: str) -> bool:
    """Whether the script read back and written again without an edit is ``text`` itself."""
    return render(parse_script(text), validate=False) == text


# --- 1. apptainer --mount ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mount, bind, back", [
    ("type=bind,src=/a,dst=/a", ("/a", "/a", ""), "--bind /a:/a img.sif"),
    ("type=bind,source=/a,destination=/a,ro", ("/a", "/a", "ro"), "--bind /a:/a:ro img.sif"),
    ("src=/a,target=/a,readonly", ("/a", "/a", "ro"), "--bind /a:/a:ro img.sif"),
    ("type=bind,src=/a,dst=/b", ("/a", "/b", ""), "--bind /a:/b img.sif"),
    ("type=bind,src=d.sqfs,dst=/d,image-src=/", ("d.sqfs", "/d", "image-src=/"), "--bind d.sqfs:/d:image-src=/"),
])
def test_a_mount_keeps_its_destination(mount, bind, back):
    """Apptainer's --mount keys (source|src, destination|dst|target, ro|readonly, image-src, id)."""
    model = parse_argv(["apptainer", "exec", "--mount", mount, "img.sif", "true"]).model
    assert [(b.src, str(b.dst), b.mode) for b in model.binds] == [bind]
    script = HEAD + f"apptainer exec --mount {mount} img.sif python t.py\n"
    out = _round(script)
    assert back in out and _round(out) == out and _as_written(script)


@pytest.mark.parametrize("mount", [
    "type=bind,src=/a",                                   # no destination: Apptainer refuses it, a --bind would not
    "type=bind,src=/a,dst=/b,bind-propagation=rshared",   # Apptainer refuses bind-propagation on one mount
    "type=bind,src=/a,dst=/a,readonly=false",             # not a plain bind option
])
def test_a_mount_a_bind_cannot_say_stays_as_written(mount):
    parsed = parse_argv(["apptainer", "exec", "--mount", mount, "img.sif", "true"])
    assert parsed.model.binds == () and parsed.model.extra == ("--mount", mount)
    out = _round(HEAD + f"apptainer exec --mount {mount} img.sif python t.py\n")
    assert f"--mount {mount}" in out


def test_a_new_bind_to_its_own_path_is_still_written_short():
    """Only a destination a script wrote is kept: a bind made in a form writes none for its own path."""
    assert render(Workflow(container=parse_argv(["apptainer", "exec", "--bind", "/a", "i.sif", "true"]).model),
                  validate=False).count("--bind /a i.sif") == 1


# --- 2. comments worded like the renderer's ----------------------------------------------------------------------

@pytest.mark.parametrize("comment", ["# The step: train the model", "# Rendezvous host: the first node",
                                     "# Download the image only if it is missing", "# Job array: each task takes its"])
@pytest.mark.parametrize("where", ["above the step", "above a set-up line", "after the step", "above a module"])
def test_a_persons_comment_worded_like_the_renderers_is_kept(comment, where):
    body = {"above the step": f"{comment}\npython t.py\n",
            "above a set-up line": f"{comment}\ncd $SCRATCH\npython t.py\n",
            "after the step": f"python t.py\n{comment}\necho done\n",
            "above a module": f"{comment}\nmodule load cuda\npython t.py\n"}[where]
    out = _round(HEAD + body)
    assert out.count(comment) == 1 and _round(out) == out


def test_the_renderers_own_comments_are_not_doubled():
    text = render(Workflow.from_dict({
        "kind": "workflow", "job": {"kind": "slurm.job", "time": "01:00:00", "array": "0-1"},
        "prepare": [{"kind": "apptainer.pull", "source": "docker://x/y:1", "dest": "y.sif", "dir": "$SCRATCH/img"}],
        "sweep_name": "lr", "sweep_values": ["0.1", "0.2"],
        "container": {"kind": "apptainer.run", "action": "exec", "image": "$SCRATCH/img/y.sif",
                      "command": ["python", "t.py", "--lr", "$lr"]}}), validate=False)
    once = _round(text)  # (the step's program is read into the step's own field: its comment then names it)
    for generated in ("# The step:", "# Download the image", "# Job array:"):
        assert text.count(generated) == once.count(generated) == 1, generated
    assert _round(once) == once


def test_a_comment_of_the_renderers_wording_with_a_line_between_stays():
    """The renderer writes its comment right above its block: a note separated from the block is a person's."""
    script = HEAD + "# The step: python\n\npython t.py\n"
    out = _round(script)
    assert out.count("# The step: python") == 2 and _round(out) == out and _as_written(script)


def test_a_stale_step_comment_is_kept_beside_the_new_one():
    """A step edited by hand below its generated comment: the old comment no longer describes it, so it stays."""
    script = HEAD + "# The step: srun → python\npython t.py\n"
    out = _round(script)
    assert "# The step: srun → python\n" in out and "# The step: python\npython t.py" in out
    assert _as_written(script)


def test_a_stale_step_comment_of_a_generated_script_is_replaced():
    """In a script hpcwidgets wrote, the description right above the step is its own, whatever the step became."""
    text = _round(HEAD + "srun python t.py\n").replace("srun python", "python")
    out = _round(text)
    assert out.count("# The step:") == 1 and "# The step: python\npython t.py" in out
    assert _as_written(text)


def test_comments_keep_their_order():
    out = _round(HEAD + "cd $SCRATCH\n# The step: mine\n# and more\nls\npython t.py\n")
    assert out.index("# The step: mine") < out.index("# and more") < out.index("\nls\n")


def test_a_generated_by_line_below_the_commands_is_a_persons():
    out = _round(HEAD + "cd $SCRATCH\n# Generated by hpcwidgets, then edited\npython t.py\n")
    assert "# Generated by hpcwidgets, then edited" in out


# --- 3. srun of several programs (MPMD) ------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "srun -n1 ./server : -n4 ./client",
    "srun --ntasks=1 python a.py --port 1 : --ntasks=2 apptainer exec img.sif python b.py",
    "srun --het-group=0,1 ./a : ./b",
])
def test_an_srun_of_several_programs_comes_back_as_written_with_a_note(line):
    text = HEAD + line + "\n"
    model = parse_script(text)
    assert model.srun is None and model.container is None and model.program == ()
    assert line + "\n" in render(model, validate=False)
    notes = readback_notes(text, model)
    assert len(notes) == 1 and "line 3" in notes[0] and "several programs" in notes[0]


def test_a_step_before_an_srun_of_several_programs_is_still_the_step():
    text = HEAD + "srun python prep.py\nsrun -n1 ./server : -n4 ./client\n"
    model = parse_script(text)
    assert model.program == ("python", "prep.py") and model.after == ("srun -n1 ./server : -n4 ./client",)


def test_a_colon_in_a_word_is_no_separator():
    text = HEAD + "srun python t.py --addr host:29500 ':'x\n"
    model = parse_script(text)
    assert model.srun is not None and model.program[-1] == ":x" and readback_notes(text, model) == ()


# --- 4. srun bash -c "… launch …" ------------------------------------------------------------------------------

def test_a_launch_inside_bash_c_is_kept_as_written_with_a_note():
    line = 'srun bash -c "singularity exec --nv img.sif torchrun --nproc_per_node=4 t.py"'
    text = HEAD + line + "\n"
    model = parse_script(text)
    assert model.launcher is None and model.container is None and line in render(model, validate=False)
    notes = readback_notes(text, model)
    assert len(notes) == 1 and "line 3" in notes[0] and "bash -c script is not taken apart" in notes[0]


def test_no_note_for_what_the_step_holds_or_a_job_form():
    plain = HEAD + 'srun bash -c "cd /x && python t.py"\n'   # no launch inside: the step's program holds it
    assert readback_notes(plain, parse_script(plain)) == ()
    wrapped = HEAD + 'srun bash -c "apptainer exec img.sif python t.py"\n'
    assert readback_notes(wrapped, parse_job(wrapped)) == ()  # a job form has no step fields to miss
    looped = HEAD + 'for i in 1 2; do\n  srun -n1 ./a : -n1 ./b\ndone\n'
    assert readback_notes(looped, parse_script(looped)) == ()  # a loop is text anyway
