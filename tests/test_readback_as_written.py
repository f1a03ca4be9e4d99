"""Reading a hand-written job script back keeps what it ran and said: lone unquoted expansions, a trailing comment on
the step line, a request for no GPU, and a note for the prologue it rewrites.

The argv tests run the script as written and the script the model writes back under bash, with stand-in programs
that record their argv, once with the variable empty and once holding two words: the two must make the same calls.
"""

from __future__ import annotations

import html
import re

import pytest

from hpcwidgets import parse_script, render
from hpcwidgets.parse import parse_job
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.workflow import readback_notes

from helpers import run_with_stand_ins

PROGRAMS = ["srun", "python", "torchrun", "deepspeed"]

#: (script body, the variable the test sets): each word from that variable is unquoted and alone
LONE_EXPANSIONS = {
    "set from an unknown variable": ("MASTER_ADDR=$ADDR\nsrun python train.py --master_addr $MASTER_ADDR --x 1\n",
                                     "ADDR"),
    "set from a command's output": ('addr=$(echo "$ADDR")\nMASTER_ADDR=$addr\n'
                                    "srun python train.py --master_addr $MASTER_ADDR\n", "ADDR"),
    "an option of the launcher": ("export MASTER_ADDR=$ADDR\ndeepspeed --master_addr $MASTER_ADDR train.py\n", "ADDR"),
    "an option of torchrun": ("M=$ADDR\ntorchrun --master_addr $M --nnodes 1 train.py\n", "ADDR"),
    "an option of srun": ("srun $EXTRA_ARGS python train.py\n", "EXTRA_ARGS"),
}


def _script(body: str, header: str = "#SBATCH --nodes=1\n") -> str:
    return "#!/bin/bash\n" + header + body


@pytest.mark.parametrize("value", ["", "a b"], ids=["empty", "two words"])
@pytest.mark.parametrize("body,variable", LONE_EXPANSIONS.values(), ids=list(LONE_EXPANSIONS))
def test_an_unquoted_lone_expansion_in_the_step_keeps_its_argv(tmp_path, body, variable, value):
    original = _script(body)
    written = render(parse_script(original))
    env = {variable: value}
    assert run_with_stand_ins(written, tmp_path / "written", PROGRAMS, env) == \
        run_with_stand_ins(original, tmp_path / "original", PROGRAMS, env), written


def test_a_program_argument_from_an_unknown_variable_stays_in_the_step_unquoted():
    """The step is still read into the model (the word is kept as written), not left as a line of text."""
    model = parse_script(_script("MASTER_ADDR=$ADDR\nsrun python train.py --master_addr $MASTER_ADDR\n"))
    assert model.srun is not None and "$MASTER_ADDR" in model.program
    assert "--master_addr $MASTER_ADDR\n" in render(model)


def test_a_variable_set_from_slurms_own_stays_quoted():
    """Slurm's variables never hold spaces and are set in a job: a word from them is safe to quote."""
    script = _script("M=$SLURM_JOB_ID\nsrun python train.py --m $M\n")
    assert render(parse_script(script)) == script  # unchanged, the script's own step stays as written
    written = render(without_layout(parse_script(script)))
    assert '--m "$M"' in written


STEP_WITH_COMMENT = _script("module load cuda\nsrun python train.py \\\n  --x 1  # why: see issue 12\necho done\n")


def test_a_trailing_comment_on_the_step_line_stays_on_it(tmp_path):
    assert render(parse_script(STEP_WITH_COMMENT)) == STEP_WITH_COMMENT
    written = render(without_layout(parse_script(STEP_WITH_COMMENT)))  # the renderer's own step: one line
    assert "srun python train.py --x 1  # why: see issue 12\n" in written
    assert render(without_layout(parse_script(written))) == written  # a fixed point after one round
    assert run_with_stand_ins(written, tmp_path / "w", ["srun", "module"]) == \
        run_with_stand_ins(STEP_WITH_COMMENT, tmp_path / "o", ["srun", "module"])


def test_a_trailing_comment_on_a_plain_program_line_is_kept():
    written = render(parse_script(_script("python train.py --epochs 3  # short run first\n")))
    assert "python train.py --epochs 3  # short run first\n" in written


@pytest.mark.parametrize("directive", ["--gpus-per-node=0", "--gres=gpu:0", "--gpus-per-node=a100:0"])
def test_a_request_for_no_gpu_is_kept_as_written(directive):
    script = _script("srun python t.py\n", header=f"#SBATCH {directive}\n#SBATCH --partition=cpu\n")
    for job in (parse_script(script).job, parse_job(script)):
        assert job.extra_directives == (directive,) and not job.gpus_per_node
    written = render(parse_script(script))
    assert f"#SBATCH {directive}\n" in written
    assert render(parse_script(written)) == written


def test_a_gpu_count_is_still_read_into_the_model():
    job = parse_script(_script("srun python t.py\n", header="#SBATCH --gpus-per-node=2\n")).job
    assert job.gpus_per_node == 2 and job.extra_directives == ()


STRICT_WITH_MODULES = _script("set -euo pipefail\nmodule load cuda\nsrun python train.py\n")
NOUNSET_NOTE = "set -euo pipefail (line 3) is written back as set -eo pipefail, then the module loads, then set -u"


@pytest.mark.parametrize("reader", [parse_script, parse_job], ids=["workflow", "job"])
def test_the_reader_says_set_u_moves_below_the_module_loads(reader):
    model = reader(STRICT_WITH_MODULES)
    notes = readback_notes(STRICT_WITH_MODULES, without_layout(model))  # written in the renderer's layout
    assert len(notes) == 1 and NOUNSET_NOTE in notes[0]
    # in the script's own layout its set -euo pipefail line stays where it was: nothing moves, nothing to say
    assert readback_notes(STRICT_WITH_MODULES, model) == () and render(model) == STRICT_WITH_MODULES


@pytest.mark.parametrize("body", [
    "set -euo pipefail\nsrun python train.py\n",                  # no module load: nothing moves past set -u
    "set -eo pipefail\nmodule load cuda\nsrun python train.py\n",  # no set -u to move
    "module load cuda\nset -euo pipefail\nsrun python train.py\n",  # not the first command: stays where it is
], ids=["no modules", "no nounset", "set after modules"])
def test_no_note_when_nothing_moves(body):
    script = _script(body)
    assert readback_notes(script, parse_script(script)) == ()


def test_no_note_for_a_script_hpcwidgets_wrote():
    written = render(parse_script(STRICT_WITH_MODULES))
    assert readback_notes(written, parse_script(written)) == ()
    model = parse_script(STRICT_WITH_MODULES)
    assert readback_notes(model.to_json(), model) == ()  # a model saved as JSON says nothing either


@pytest.mark.parametrize("command", ["workflow", "sbatch"])
def test_from_keeps_the_prologue_and_says_nothing_of_set_u(tmp_path, capsys, command):
    """A script loaded with --from is written in its own layout: its set -euo pipefail line is kept, so the note
    that set -u moves below the module loads (given when the renderer writes its own prologue) is not."""
    from hpcwidgets.cli import main
    script = tmp_path / "job.sh"
    script.write_text(STRICT_WITH_MODULES)
    assert main([command, "--from", str(script)]) == 0
    out, err = capsys.readouterr()
    assert out == STRICT_WITH_MODULES and "set -u" not in err


@pytest.mark.parametrize("builder", ["WorkflowBuilder", "SlurmBuilder"])
def test_the_forms_load_keeps_the_prologue_and_says_nothing_of_set_u(builder):
    """As with --from: the form writes the loaded script in its own layout, its set -euo pipefail line kept."""
    pytest.importorskip("ipywidgets")
    import hpcwidgets.widgets as widgets
    b = getattr(widgets, builder)()
    assert b.load(STRICT_WITH_MODULES)
    said = html.unescape(re.sub("<[^>]+>", "", b.status.value))
    assert said == "Loaded." and b.text == STRICT_WITH_MODULES


def test_the_jupyter_form_gives_both_notes():
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets import JupyterJobBuilder
    b = JupyterJobBuilder()
    assert b.load(_script("set -euo pipefail\nmodule load cuda\njupyter lab --no-browser --port=8888\n",
                          header="#SBATCH --time=01:00:00\n"))
    said = html.unescape(re.sub("<[^>]+>", "", b.status.value))
    assert NOUNSET_NOTE in said and "Also, the script starts its own Jupyter server (line 5)" in said


def test_a_job_of_directives_alone_keeps_each_directive_once():
    """Without any command every #SBATCH line is read by sbatch: none is one "after the first command"."""
    script = "#!/bin/bash\n#SBATCH --qos=long\n#SBATCH --time=10\n"
    for model in (parse_job(script), parse_script(script).job):
        assert model.qos == "long" and model.setup == ()
    written = render(parse_job(script))
    assert written.count("#SBATCH --qos=long\n") == 1 and render(parse_job(written)) == written
