"""Audit 16 (A2): the forms keep the shell code a script wrote, check against the profile the user chose (none by
default, as ``hpcwidgets lint``), and name fields in findings as the model and ``--set`` do."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from hpcwidgets.errors import HpcWidgetsError, ValidationError
from hpcwidgets.lint import lint
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.render import render
from hpcwidgets.spec._words import Verbatim
from hpcwidgets.widgets import state

pytest.importorskip("ipywidgets")
from hpcwidgets.widgets.builder import NO_PROFILE, SlurmBuilder, WorkflowBuilder  # noqa: E402

CORPUS = sorted((Path(__file__).parent / "data" / "corpus").glob("*.sh"))

ARITH = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --time=01:00:00
NNODES=$SLURM_NNODES
srun accelerate launch --num_processes $(( $NNODES * 4 )) --num_machines $NNODES --main_process_ip $(hostname) \\
  train.py --out run1
"""

LUMI = """#!/bin/bash
#SBATCH --account=project_465000280
#SBATCH --partition=small-g
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --time=01:00:00
srun apptainer exec --rocm img.sif torchrun --standalone --nproc_per_node=8 train.py
"""


def step(builder, line: int = 0) -> str:
    """A line of the step (its first by default; -1: its last, the line the first continues into)."""
    lines = builder.text.splitlines()
    start = next(k for k, ln in enumerate(lines) if ln.startswith("srun"))
    end = next(k for k in range(start, len(lines)) if not lines[k].endswith("\\"))
    return lines[start:end + 1][line]


def shown(items) -> str:
    """Items with their types: a Verbatim word and the plain text it holds compare equal, so compare reprs."""
    return repr(tuple(items))


# ---------------------------------------------------------------------------------------------------------------
# 1. a words field keeps the words the user did not touch

def test_an_edit_elsewhere_in_program_keeps_the_scripts_shell_code():
    b = WorkflowBuilder.from_script(ARITH, submit=False)
    program = b.controls["workflow.program"]
    assert "--num_processes $(( $NNODES * 4 ))" in program.value  # as the script wrote it, no added quotes
    assert "--main_process_ip $(hostname)" in program.value
    program.value = program.value.replace("run1", "run2")
    # the loaded script keeps its layout: the one word edited changes in place, continuation line and all
    assert b.text == ARITH.replace("run1", "run2")
    assert "--num_processes $(( $NNODES * 4 ))" in step(b) and "--main_process_ip $(hostname) \\" in step(b)
    assert "\\$((" not in b.text and "'$(hostname)'" not in b.text
    # and the renderer's own step (written once an edit reaches a line the script has nothing for) keeps them too
    own = next(ln for ln in render(without_layout(b.spec)).splitlines() if ln.startswith("srun"))
    assert "--num_processes $(( $NNODES * 4 ))" in own and "$(hostname) train.py --out run2" in own
    assert "\\$((" not in own and "'$(hostname)'" not in own
    assert not [f for f in b.findings if f.code == "HPC514"]


def test_a_word_typed_fresh_is_text_and_a_kept_one_written_again_is_code():
    b = WorkflowBuilder.from_script(ARITH, submit=False)
    program = b.controls["workflow.program"]
    program.value += " --host $(hostname) --files *.csv"
    words = b.spec.program
    assert [type(w) for w in words if w == "$(hostname)"] == [Verbatim, Verbatim]  # the script's own word
    # typed: text, as the quoting contract says (added at the end of the step's last line, which keeps its layout)
    assert type(words[-1]) is str and step(b, -1).endswith(" --files '*.csv'")
    program.value = program.value.replace(" --host $(hostname)", " --host $(uname -n)")
    assert "'$(uname -n)'" in step(b, -1)


def test_typed_text_that_looks_like_code_is_shown_quoted_and_reads_back_as_text():
    from hpcwidgets.spec.workflow import Workflow
    f = Workflow.field_spec("program")
    words = ("python", "*.csv", "~/x", "$(date)", "$HOME/out", "my run")
    text = state.show_words(words)
    assert text == "python '*.csv' '~/x' '$(date)' $HOME/out 'my run'"
    assert shown(state.from_control("words", f, text, words)[0]) == shown(words)


def test_an_entry_over_several_lines_stays_one_entry_when_another_line_is_edited():
    b = SlurmBuilder.from_script("#!/bin/bash\ncd run\nsrun python t.py \\\n    --lr 1\n", submit=False)
    before = b.text
    assert "cd run\nsrun python t.py \\\n    --lr 1" in before
    b.controls["setup"].value = b.controls["setup"].value.replace("cd run", "cd run2")
    assert b.text == before.replace("cd run", "cd run2")  # the continuation line keeps its indentation


def test_an_env_line_from_a_script_keeps_its_shell_code_when_another_is_added():
    value = (state.EnvVar("STAMP", Verbatim("$(date +%s)")),)
    from hpcwidgets.spec import ApptainerRun
    f = ApptainerRun.field_spec("env")
    text = state.to_control("env", value) + "\nMODE=fast"
    read, error = state.from_control("env", f, text, value)
    assert not error and shown(read) == shown((value[0], state.EnvVar("MODE", "fast")))


def _loaded(cls, path):
    try:
        return cls._read(path.read_text())
    except HpcWidgetsError:
        return None


@pytest.mark.parametrize("cls", [WorkflowBuilder, SlurmBuilder])
def test_every_corpus_field_reads_its_own_text_back_unchanged(cls):
    """For every corpus script that loads into the form: each field's own text, read back, gives the very items it
    shows (a script's shell code stays code), and an edit that changes nothing leaves the model and the preview."""
    from hpcwidgets.render import render
    builder = cls(profile=None, submit=False)
    checked = 0
    for path in CORPUS:
        model = _loaded(cls, path)
        if model is None:
            continue
        form = state.Form(builder.sections(model))
        values = form.values(model)
        for section in form.sections:
            layer = section.layer(model)
            if not isinstance(layer, section.cls):
                continue
            for fld in section.fields:
                if fld.kind in ("bool", "choice", "partition"):
                    continue
                current = getattr(layer, fld.spec.name)
                read, error = state.from_control(fld.kind, fld.spec, values[fld.key], current, section.cls)
                assert not error, (path.name, fld.key, error)
                assert shown(read if fld.spec.is_tuple else [read]) == shown(current if fld.spec.is_tuple else
                                                                            [current]) or fld.kind == "int", \
                    (path.name, fld.key)
                blank = "\n" if fld.kind in ("lines", "binds", "env", "sweeps") else " "
                again, errors = form.read(model, {**values, fld.key: values[fld.key] + blank})
                assert not errors and again.to_dict() == model.to_dict(), (path.name, fld.key)
                assert render(again, validate=False) == render(model, validate=False)
                checked += 1
    assert checked > 100


# ---------------------------------------------------------------------------------------------------------------
# 2. no profile by default, as hpcwidgets lint; a "no profile" choice; the profile said with the findings

def test_a_form_checks_without_a_profile_by_default_as_lint_does():
    b = WorkflowBuilder.from_script(LUMI, submit=False)
    assert b.profile is None and b.profile_selector.value == ""
    assert (NO_PROFILE, "") == b.profile_selector.options[0]
    assert not {"HPC218", "HPC401"} & {f.code for f in b.findings}
    assert {f.code for f in lint(b.text)} == {f.code for f in b.findings}
    assert "Checked without a cluster profile" in b.checked_against.value


def test_profile_none_is_no_profile_and_the_choice_can_be_made_and_undone():
    b = WorkflowBuilder.from_script(LUMI, profile=None, submit=False)
    b.profile_selector.value = "generic"
    assert b.profile.name == "generic" and "HPC401" in {f.code for f in b.findings}
    assert "cluster profile <b>generic</b>" in b.checked_against.value
    b.profile_selector.value = ""
    assert b.profile is None and "HPC401" not in {f.code for f in b.findings}
    assert "no cluster profile" in html.unescape(b.status.value)


def test_without_a_profile_the_gpu_flag_follows_the_scripts_vendor():
    b = WorkflowBuilder.from_script(LUMI, submit=False)
    b.controls["slurm.gpus_per_node"].value = "0"
    assert "--rocm" not in step(b)
    b.controls["slurm.gpus_per_node"].value = "4"
    assert "--rocm" in step(b) and "--nv" not in step(b)


def test_a_chosen_profile_is_still_used_and_its_limits_shown():
    b = SlurmBuilder(profile="generic", submit=False)
    assert b.profile.name == "generic" and "gpu" in b.controls["partition"].options


# ---------------------------------------------------------------------------------------------------------------
# 3. findings name a field as the model, its validation errors and --set do

def test_form_findings_name_the_models_field():
    b = WorkflowBuilder.from_script(LUMI, submit=False)
    b.controls["slurm.time"].value = "1.5h"
    found = next(f for f in b.findings if f.field == "slurm.time")
    assert found.path == "job.time" and "[job.time]" in found.format()
    rows = " ".join(re.sub("<[^>]+>", "", row.children[0].value if hasattr(row, "children") else row.value)
                    for row in b.findings_view.children)
    assert "job.time" in html.unescape(rows)
    with pytest.raises(ValidationError, match=r"job\.time"):
        b.save("/nonexistent/never-written.sh")


def test_every_workflow_field_has_the_path_set_takes():
    b = WorkflowBuilder.from_script(LUMI, submit=False)
    paths = {key: fld.path for key, fld in b.form.fields.items()}
    assert paths["slurm.nodes"] == "job.nodes" and paths["workflow.program"] == "program"
    assert paths["torchrun.node_rank"] == "launcher.node_rank" and paths["srun.ntasks_per_node"] == "srun.ntasks_per_node"


# --- shell code typed into a field of values ----------------------------------------------------------------------

def test_shell_code_typed_into_a_words_field_gets_a_warning_and_the_preview_stays():
    import hpcwidgets as hw
    b = hw.WorkflowBuilder(hw.Workflow.single_node("train.py", image="img.sif"))
    program = b.controls["workflow.program"]
    program.value = program.value + " --host $(hostname)"
    warned = [f for f in b.findings if f.code == "FORM" and f.severity == "warning" and "not run" in f.message]
    assert len(warned) == 1 and "'$(hostname)'" in warned[0].message and warned[0].path == "program"
    assert "--host '$(hostname)'" in b.text  # the preview still shows what the job will get: the text


@pytest.mark.parametrize("typed", ["--n $NAME", "--out ${SCRATCH}/run", "--tag v1"])
def test_references_get_no_warning(typed):
    import hpcwidgets as hw
    b = hw.WorkflowBuilder(hw.Workflow.single_node("train.py", image="img.sif"))
    b.controls["workflow.program"].value = "python train.py " + typed
    assert not [f for f in b.findings if "not run" in f.message]


def test_a_loaded_scripts_own_code_gets_no_warning():
    import hpcwidgets as hw
    b = hw.WorkflowBuilder()
    b.load("#!/bin/bash\n#SBATCH --nodes=1\nsrun python train.py --host $(hostname) --n $(( 2 * 4 ))\n")
    assert "$(hostname)" in b.text and not [f for f in b.findings if "not run" in f.message]
