"""Session 12: every builder's preview loads back to the model that made it (audit H5's two round trips, and
what a fuzz of every builder, action and text field with hostile values found after them)."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from hpcwidgets.errors import ParseError, ValidationError
from hpcwidgets.parse.argv import parse_argv
from hpcwidgets.parse.buildfiles import parse_deffile
from hpcwidgets.render import render
from hpcwidgets.render.dockerfile import render_deffile
from hpcwidgets.spec.apptainer import ApptainerRun, DefFile
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.common import Bind
from hpcwidgets.spec.slurm import Srun
from hpcwidgets.spec.torchrun import Torchrun
from hpcwidgets.widgets import (BUILDERS, ApptainerBuilder, CharliecloudBuilder, DefFileBuilder, SlurmBuilder,
                                TorchrunBuilder, WorkflowBuilder)
from hpcwidgets.widgets.state import to_control


def status(b) -> str:
    import html
    import re
    return html.unescape(re.sub("<[^>]+>", "", b.status.value))


def loads_back(cls, b):
    """A fresh builder of ``cls`` that loaded ``b``'s preview (it must load)."""
    again = cls(submit=False)
    assert again.load(b.text), status(again)
    return again


def warnings(b) -> dict[str, str]:
    return {f.field: f.message for f in b.findings if f.code == "FORM" and f.severity == "warning"}


# ==============================================================================================
# 1. a text that starts with { is read as JSON only when it is JSON

DEF_AFTER_BRACE = "{a,b}\n\nBootstrap: docker\nFrom: ubuntu:22.04\n\n%post\n    apt-get -y update\n"


def test_a_definition_file_whose_earlier_lines_start_with_a_brace_is_read_as_one():
    model = DefFileBuilder._read(DEF_AFTER_BRACE)
    assert model == parse_deffile(DEF_AFTER_BRACE)
    assert model.before == ("{a,b}",)


def test_a_model_saved_as_json_is_still_read_as_json():
    saved = DefFile(from_="ubuntu:22.04", post=("ls",)).to_json()
    assert DefFileBuilder._read(saved) == DefFile(from_="ubuntu:22.04", post=("ls",))


def test_text_that_is_neither_says_what_each_reading_found():
    with pytest.raises(ParseError) as caught:
        DefFileBuilder._read("{a,b}\n%post\n")
    message = str(caught.value)
    assert "neither a model saved as JSON (line 1, column 2: not valid JSON" in message
    assert "nor an Apptainer definition file (line 1, column 1: the header needs a Bootstrap: line" in message


@pytest.mark.parametrize("cls", [SlurmBuilder, WorkflowBuilder])
def test_a_job_form_does_not_read_broken_json_as_shell_commands(cls):
    b = cls(submit=False)
    before = b.spec
    assert not b.load('{"kind": "slurm.job",')
    assert "nor a job script (it does not start with #! or #SBATCH)" in status(b)
    assert b.spec == before


def test_deffile_form_with_a_brace_before_the_header_loads_its_own_preview():
    b = DefFileBuilder(submit=False)
    b.controls["before"].value = "{a,b}"
    assert not b.stale and b.text.startswith("{a,b}\n")
    assert loads_back(DefFileBuilder, b).spec == b.spec


# ==============================================================================================
# 2. ch-run reads each --bind as one bind, commas and all

def test_ch_run_bind_with_a_comma_is_one_bind():
    model = parse_argv(["ch-run", "-b", "a,b:/mnt/0", "--bind={x,y}", "img", "--", "true"]).model
    assert model.binds == (Bind("a,b", "/mnt/0"), Bind("{x,y}"))


def test_apptainer_bind_lists_still_split_at_commas():
    model = parse_argv(["apptainer", "exec", "-B", "a,b:/mnt/0", "img.sif", "true"]).model
    assert model.binds == (Bind("a"), Bind("b", "/mnt/0"))


def test_ch_run_form_shows_a_comma_bind_as_typed():
    # Apptainer needs --mount for a ',' in a path; ch-run takes it as it is, so the form does too
    assert to_control("binds", (Bind("{a,b}"),), ChRun) == "{a,b}"
    assert to_control("binds", (Bind("{a,b}"),)).startswith("type=bind,")


def test_charliecloud_form_bind_with_a_comma_round_trips():
    b = CharliecloudBuilder(submit=False)
    b.controls["binds"].value = "{a,b}\n$PWD:/mnt/0"
    assert "'--bind={a,b}'" in b.text
    again = loads_back(CharliecloudBuilder, b)
    assert again.spec == b.spec
    assert again.controls["binds"].value == "{a,b}\n$PWD:/mnt/0"


# ==============================================================================================
# 3. ch-image pull REF [DEST]: a lone operand is the reference

def test_ch_image_pull_one_operand_is_the_reference():
    model = parse_argv(["ch-image", "pull", "almalinux:8"]).model
    assert (model.source, model.dest) == ("almalinux:8", "")
    model = parse_argv(["ch-image", "pull", "almalinux:8", "alma"]).model
    assert (model.source, model.dest) == ("almalinux:8", "alma")


def test_apptainer_pull_one_operand_is_still_the_source():
    model = parse_argv(["apptainer", "pull", "docker://alpine"]).model
    assert (model.dest, model.source) == ("", "docker://alpine")


def test_charliecloud_pull_form_round_trips():
    b = CharliecloudBuilder(submit=False)
    b.controls["action"].value = "pull"
    b.controls["source"].value = "nvcr.io/nvidia/pytorch:24.05-py3"
    assert not b.stale
    assert loads_back(CharliecloudBuilder, b).spec == b.spec


# ==============================================================================================
# 4. a definition file cannot hold every value: the form says so instead of writing a file that reads otherwise

@pytest.mark.parametrize("fields, field, said", [
    ({"post": ("%post",)}, "post", "starts with %, so Apptainer reads it as the start of a new section"),
    ({"help": "usage:\n%x"}, "help", "the line '%x' starts with %"),
    ({"from_": "ubuntu\nFrom: other"}, "from_", "holds a line break"),
    ({"extra": ("%j",)}, "extra", "%j is not an Apptainer section"),
    ({"extra": ("%post", "  %x")}, "extra", "'%x' is indented"),
])
def test_a_deffile_refuses_what_the_file_cannot_hold(fields, field, said):
    model = DefFile(**{"from_": "ubuntu", **fields})
    assert [p.field for p in model.problems()] == [field]
    with pytest.raises(ValidationError) as caught:
        render(model)
    assert said in str(caught.value)


def test_percent_pre_is_kept_verbatim_as_apptainer_takes_it():
    text = "Bootstrap: docker\nFrom: ubuntu\n\n%post\n    ls\n\n%pre\n    echo hi\n"
    model = parse_deffile(text)
    assert model.extra == ("%pre", "    echo hi")
    assert render_deffile(model) == text


def test_deffile_form_marks_a_section_line_starting_with_percent():
    b = DefFileBuilder(submit=False)
    b.controls["post"].value = "pip install x\n%post"
    assert b.stale
    found = [f for f in b.findings if f.field == "post"]
    assert len(found) == 1 and found[0].severity == "error" and "new section" in found[0].message
    assert "post" in b.invalid_fields


def test_a_value_the_model_already_flags_is_said_once():
    b = DefFileBuilder(submit=False)
    b.controls["environment"].value = "1A=2"
    assert [f.code for f in b.findings if f.field == "environment"] == ["FORM"]


# ==============================================================================================
# 5. whatever still cannot come back is said at its control

def test_every_builder_default_reads_back_without_a_warning():
    for cls in BUILDERS:
        b = cls(submit=False)
        assert warnings(b) == {}, cls.__name__
        assert cls._same_document(loads_back(cls, b).spec, b.spec), cls.__name__


def test_a_torchrun_script_starting_with_a_dash_is_an_error_at_its_control():
    # torchrun would read -x as an option: the model says so, so no preview holds another command than the form
    b = TorchrunBuilder(submit=False)
    b.controls["script"].value = "-x"
    found = [f for f in b.findings if f.field == "script"]
    assert len(found) == 1 and found[0].severity == "error" and "reads it as an option" in found[0].message
    assert b.stale


def test_slurm_commands_come_back_as_commands():
    b = SlurmBuilder(submit=False)
    b.controls["setup"].value = "cd $SCRATCH\nexport A=1"
    b.controls["commands"].value = "python a.py\npython b.py"
    again = loads_back(SlurmBuilder, b)
    assert again.spec == b.spec and again.text == b.text


def test_a_one_line_set_up_comes_back_as_set_up():
    # the lines before the first one that does work (python train.py) are the set-up lines (parse_job)
    b = SlurmBuilder(submit=False)
    b.controls["setup"].value = "cd $SCRATCH"
    assert warnings(b) == {}
    again = loads_back(SlurmBuilder, b)
    assert again.spec == b.spec and again.text == b.text


def test_a_script_not_written_by_the_form_has_its_work_as_commands():
    b = SlurmBuilder(submit=False)
    assert b.load("#!/bin/bash\n#SBATCH --time=10\ncd x\npython a.py\n")
    assert b.spec.setup == ("cd x",) and b.spec.commands == ("python a.py",)


@pytest.mark.parametrize("word", ["-", "--"])
def test_other_options_refuse_words_that_end_the_options(word):
    b = CharliecloudBuilder(submit=False)
    b.controls["extra"].value = word
    assert b.stale and "extra" in b.invalid_fields
    said = f"{word!r} is not an option: ch-run reads the words after it as the ones that follow its options"
    assert said in str(ChRun(image="img", command=("true",), extra=(word,)).problems())
    for model in (ApptainerRun(image="img", command=("true",), extra=(word,)), Srun(extra=(word,)),
                  Torchrun(script="t.py", extra=(word,))):
        assert [p.field for p in model.problems()] == ["extra"], model


def test_a_preview_load_cannot_read_is_said():
    class Unreadable(ApptainerBuilder):
        @classmethod
        def parse(cls, text):
            raise ParseError("no reader here", 1, 1)

    b = Unreadable(submit=False)
    assert "Load cannot read this preview back (<text>:1:1: no reader here)" in warnings(b)[""]
