"""A script read back and written again keeps every comment its author wrote, next to what it described: on its
#SBATCH line (also when the value is written anew), among the directives in order (a switched-off ``##SBATCH``
line too), on the module load, export, prologue or step it was written on. A job without comments (every generated
script) is written exactly as before: the golden files cover that.

A script read back keeps its layout too (tests/test_readback_layout.py), so written back unchanged it is its own text;
the comments are kept by the renderer's own layout as well (``without_layout``), which is what is written once an edit
reaches a line the script as read has nothing for, so most tests here check both.
"""

from __future__ import annotations

import glob
import os

import pytest

from hpcwidgets import parse_script, render
from hpcwidgets.errors import ParseError
from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_job
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.lexer import lex_script
from hpcwidgets.parse.workflow import readback_notes
from hpcwidgets.spec import SlurmJob, Workflow
from hpcwidgets.spec import comments as rendered
from hpcwidgets.spec.slurm import Comment

from helpers import run_with_stand_ins

DATA = os.path.join(os.path.dirname(__file__), "data")

TRAIN = """#!/bin/bash
# Train the model
#SBATCH --job-name=demo   # short name
## resources
#SBATCH --nodes=1
##SBATCH --gres=gpu:2
#SBATCH --time=01:00:00  # one hour
#SBATCH --mail-type=END,FAIL # tell me

module load apptainer  # the runtime
srun apptainer exec --nv img.sif python train.py --lr 0.1  # go
"""


def test_every_comment_stays_next_to_what_it_described():
    assert render(parse_script(TRAIN)) == TRAIN
    written = render(without_layout(parse_script(TRAIN)))
    assert written.startswith("#!/bin/bash\n"
                              "# Train the model\n"
                              "#SBATCH --job-name=demo  # short name\n"
                              "## resources\n"
                              "#SBATCH --nodes=1\n"
                              "##SBATCH --gres=gpu:2\n"
                              "#SBATCH --time=01:00:00  # one hour\n"
                              "#SBATCH --mail-type=END,FAIL  # tell me\n\n")
    assert "\nmodule load apptainer  # the runtime\n" in written
    assert "\nsrun apptainer exec --nv img.sif python train.py --lr 0.1  # go\n" in written
    assert render(without_layout(parse_script(written))) == written  # a fixed point after one round
    assert render(parse_script(written)) == written


def test_the_written_back_script_runs_the_same_commands(tmp_path):
    written = render(parse_script(TRAIN))
    names = ["srun", "module"]
    assert run_with_stand_ins(written, tmp_path / "w", names) == run_with_stand_ins(TRAIN, tmp_path / "o", names)


@pytest.mark.parametrize("directive,written", [
    ("-t 60", "--time=60"), ("-N 2", "--nodes=2"), ("--gres=gpu:a100:2", "--gres=gpu:a100:2"),
    ("--gpus-per-node=2", "--gpus-per-node=2"), ("-J x", "--job-name=x"), ("--exclusive", "--exclusive"),
    ("--signal=USR1@90", "--signal=USR1@90"), ("-L SCRATCH", "-L SCRATCH"), ("--tasks=4", "--ntasks-per-node=4"),
])
def test_a_directive_keeps_its_comment_when_written_anew(directive, written):
    script = f"#!/bin/bash\n#SBATCH {directive}  # why\n#SBATCH --account=lab\nsrun python t.py\n"
    assert render(parse_job(script)) == script
    for job in (parse_script(script).job, parse_job(script)):
        assert f"#SBATCH {written}  # why\n" in render(without_layout(job))


def test_a_comment_sbatch_stops_at_without_a_blank_before_it():
    script = "#!/bin/bash\n#SBATCH --time=5#five minutes\npython t.py\n"
    assert render(parse_job(script)) == script
    out = render(without_layout(parse_job(script)))
    assert "#SBATCH --time=5  #five minutes\n" in out


def test_two_options_on_a_line_keep_its_comment_on_the_first():
    script = "#!/bin/bash\n#SBATCH -N 2 -n 8  # two nodes, eight tasks\npython t.py\n"
    assert render(parse_job(script)) == script
    out = render(without_layout(parse_job(script)))
    assert "#SBATCH --nodes=2  # two nodes, eight tasks\n#SBATCH --ntasks=8\n" in out


def test_mail_types_merged_keep_both_comments():
    script = "#!/bin/bash\n#SBATCH --mail-type=BEGIN  # a\n#SBATCH --mail-type=END  # b\nx\n"
    assert render(parse_job(script)) == script
    out = render(without_layout(parse_job(script)))
    assert "#SBATCH --mail-type=BEGIN,END  # a  # b\n" in out


def test_comment_lines_among_the_directives_keep_their_order_above_their_directive():
    script = ("#!/bin/bash\n#SBATCH --time=10\n\n# --- resources ---\n# (one node is enough)\n#SBATCH --nodes=1\n"
              "#SBATCH --partition=gpu\n# SBATCH --qos=long\n#xSBATCH --exclusive\npython t.py\n")
    assert render(parse_job(script)) == script
    out = render(without_layout(parse_job(script)))
    # declared order puts --partition before --time; each comment goes with the directive it sat above
    assert out.startswith("#!/bin/bash\n#SBATCH --partition=gpu\n# --- resources ---\n# (one node is enough)\n"
                          "#SBATCH --nodes=1\n#SBATCH --time=10\n# SBATCH --qos=long\n#xSBATCH --exclusive\n\n")


def test_a_heading_above_the_first_directive_stays_at_the_top():
    script = "#!/bin/bash\n#\n# Nightly evaluation\n#\n\n#SBATCH --time=10\n#SBATCH -A lab\npython e.py\n"
    assert render(parse_job(script)) == script
    out = render(without_layout(parse_job(script)))
    assert out.startswith("#!/bin/bash\n#\n# Nightly evaluation\n#\n#SBATCH --account=lab\n#SBATCH --time=10\n")


def test_a_comment_after_the_directives_stays_among_the_set_up_lines():
    out = render(parse_job("#!/bin/bash\n#SBATCH --time=10\n\n# check the node first\nnvidia-smi\npython t.py\n"))
    assert "\n# check the node first\nnvidia-smi\n" in out
    assert not out.startswith("#!/bin/bash\n#SBATCH --time=10\n# check")


def test_a_directive_the_model_does_not_write_leaves_its_comment_above_the_next():
    out = render(parse_job("#!/bin/bash\n#SBATCH --nodes=  # how many\n#SBATCH --time=10\npython t.py\n"),
                 validate=False)
    assert "# how many\n#SBATCH --time=10\n" in out


def test_module_loads_and_exports_keep_their_comments():
    script = ("#!/bin/bash\n#SBATCH --time=10\n# the toolchain\nmodule load gcc  # for the extension\n"
              "module load cuda/12.1\nexport OMP_NUM_THREADS=4  # one per core\nsrun python t.py\n")
    for model in (parse_script(script), parse_job(script)):
        out = render(model)
        assert "\n# the toolchain\nmodule load gcc  # for the extension\nmodule load cuda/12.1\n" in out
        assert "\nexport OMP_NUM_THREADS=4  # one per core\n" in out
        assert render(parse_script(out)) == render(parse_script(render(parse_script(out))))


def test_a_module_load_kept_as_written_keeps_its_comment_in_place():
    out = render(parse_job("#!/bin/bash\nmodule purge  # clean\nmodule load cuda  # then cuda\npython t.py\n"))
    assert "module purge  # clean\nmodule load cuda  # then cuda\n" in out


def test_the_prologue_keeps_its_comment():
    script = "#!/bin/bash\n#SBATCH --time=10\nset -euo pipefail  # stop at the first error\nsrun python t.py\n"
    assert render(parse_script(script)) == script
    out = render(without_layout(parse_script(script)))
    assert "\nset -eo pipefail  # stop at the first error\n" in out
    assert render(without_layout(parse_script(out))) == render(parse_script(out)) == out


def test_the_prologue_comment_is_kept_when_a_form_turns_the_prologue_off():
    script = "#!/bin/bash\n#SBATCH --time=10\nset -euo pipefail  # stop at the first error\nsrun python t.py\n"
    out = render(parse_script(script).replace(job=parse_script(script).job.replace(fail_fast="off",
                                                                                   setup=("set -eo pipefail",))))
    assert "\nset -eo pipefail\n# stop at the first error\n" in out  # after the set-up lines, which are kept as written


def test_a_long_step_keeps_its_comment_on_its_last_line():
    script = ("#!/bin/bash\n#SBATCH --nodes=2\n# one torchrun per node\nsrun --ntasks-per-node=1 apptainer exec --nv "
              "img.sif torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=h:29500 "
              "train.py --epochs 10  # the real run\n")
    assert render(parse_script(script)) == script
    out = render(without_layout(parse_script(script)))
    assert "\n# one torchrun per node\n" in out  # a comment line above the step stays above it
    assert "  train.py --epochs 10  # the real run\n" in out
    assert render(without_layout(parse_script(out))) == render(parse_script(out)) == out


def test_a_suppression_on_the_step_line_still_applies_after_the_round_trip():
    step = "srun torchrun --nnodes=2 --nproc-per-node=4 train.py"
    assert "HPC116" in {f.code for f in lint(f"#!/bin/bash\n#SBATCH --nodes=2\n{step}\n")}
    script = f"#!/bin/bash\n#SBATCH --nodes=2\n{step}  # hpcw: disable=HPC116\n"
    assert "HPC116" not in {f.code for f in lint(render(parse_script(script), validate=False))}


HETJOB = """#!/bin/bash
#SBATCH --nodes=1  # the CPU part
#SBATCH hetjob  # then the GPU part
#SBATCH --nodes=1  # one GPU node
#SBATCH hetjob
#SBATCH --nodes=1  # and one more
srun python t.py
"""


def test_the_components_of_a_heterogeneous_job_keep_their_comments():
    out = render(parse_job(HETJOB))
    assert out.startswith("#!/bin/bash\n#SBATCH --nodes=1  # the CPU part\n#SBATCH hetjob  # then the GPU part\n"
                          "#SBATCH --nodes=1  # one GPU node\n#SBATCH hetjob\n#SBATCH --nodes=1  # and one more\n")


def test_a_comment_whose_line_a_form_emptied_is_kept_among_the_set_up_lines():
    """In the renderer's own layout; in the script's, the line goes with its comment and the lines of their own above
    it stay (tests/test_readback_layout_s18.py)."""
    job = parse_job(TRAIN).replace(time="")
    # with the set-up lines, which run before the job's commands (the srun line, see parse_job)
    kept = "\n##SBATCH --gres=gpu:2\n# one hour\n\nsrun apptainer exec --nv img.sif python train.py --lr 0.1  # go\n"
    out = render(without_layout(job))
    assert "--time" not in out and out.endswith(kept)
    assert parse_job(out).setup[-2:] == ("##SBATCH --gres=gpu:2", "# one hour")  # so a form shows them
    assert "#SBATCH --mail-type=END,FAIL  # tell me\n\n" in out
    assert render(job) == TRAIN.replace("#SBATCH --time=01:00:00  # one hour\n", "")


def test_changing_a_value_in_the_form_keeps_the_comment_on_its_line():
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets.builder import WorkflowBuilder
    b = WorkflowBuilder(submit=False, profile="generic")
    assert b.load(TRAIN)
    b.controls["slurm.time"].value = "02:00:00"
    assert "#SBATCH --time=02:00:00  # one hour\n" in b.text
    assert "srun apptainer exec --nv img.sif python train.py --lr 0.1  # go\n" in b.text


def test_comments_are_no_field_of_the_forms_or_the_command_line():
    from hpcwidgets.cli import build_parser
    from hpcwidgets.widgets.state import control_kind
    assert control_kind(SlurmJob.field_spec("comments"), SlurmJob) is None
    assert "--comments" not in build_parser().format_help() + _sbatch_help(build_parser())


def _sbatch_help(parser) -> str:
    import argparse
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return "".join(p.format_help() for p in subs.choices.values())


def test_comments_survive_json_and_toml():
    model = parse_script(TRAIN)
    assert Workflow.from_json(model.to_json()) == model
    from hpcwidgets.spec._toml import dumps, loads
    assert Workflow.from_dict(loads(dumps(model.to_dict()))) == model


@pytest.mark.parametrize("text", ["# a\nrm -rf ~", "a\rrm -rf ~", "x\x00y"])
def test_a_comment_never_becomes_a_command(text):
    job = SlurmJob(time="10", fail_fast="off", modules=("cuda",),
                   comments=(Comment(text, "time"), Comment(text, "", above=True), Comment(text, "modules:cuda")))
    assert {p.field for p in job.problems()} == {"comments.text"}
    out = render(job, validate=False)
    assert [[str(w.value) for w in c.words] for c in lex_script(out).code] == [["module", "load", "cuda"]]


def test_a_comment_without_its_hash_gets_one():
    out = render(SlurmJob(time="10", comments=(Comment("one hour", "time"),)))
    assert "#SBATCH --time=10  # one hour\n" in out


def test_a_step_comment_of_a_job_rendered_alone_is_kept():
    out = render(SlurmJob(time="10", comments=(Comment("# go", "step"),)))
    assert out.endswith("\nset -u\n\n# go\n")


def test_the_template_header_is_the_one_the_reader_knows():
    """The header line is written by the template and recognised through ``spec.comments``: the two must agree, or a
    script read back would keep the header as a comment of its author's and gain a second one."""
    header = [line for line in render(SlurmJob(time="10")).splitlines() if "hpcwidgets" in line]
    assert len(header) == 1 and header[0].startswith("# " + rendered.GENERATED_BY + " ")
    model = parse_script(render(Workflow(job=SlurmJob(time="10"), program=("python", "train.py"))))
    assert model.job.comments == () and model.job.layout.header


def test_a_job_without_comments_is_written_as_before():
    job = SlurmJob(time="10", modules=("cuda",), env=())
    assert job.comments is SlurmJob().comments
    assert render(job) == render(job.replace(comments=[]))  # an empty list given is the same empty tuple


# -- the corpus --------------------------------------------------------------------------------------------------

CORPUS = sorted(glob.glob(os.path.join(DATA, "**", "*.sh"), recursive=True))


def _comments(text: str) -> list[tuple[str, str]]:
    """Every comment of a script: ("line", text) for a comment line, ("directive", text) for the comment at the end of
    an #SBATCH line, ("code", text) for one at the end of a command."""
    out = []
    for cmd in lex_script(text).commands:
        if cmd.kind == "comment":
            out.append(("line", cmd.text.strip()))
        elif cmd.kind == "directive" and "#" in cmd.text[1:]:
            rest = cmd.text.split("\n", 1)[0]
            words = rest.split()
            tail = next((k for k, w in enumerate(words[1:], 1) if w.startswith("#")), None)
            if tail is not None:
                out.append(("directive", " ".join(words[tail:])))
        elif cmd.is_code and cmd.comment:
            out.append(("code", cmd.comment.strip()))
    return out


def _readable(path: str) -> bool:
    try:
        parse_script(open(path, encoding="utf-8").read())
    except ParseError:  # a script the reader refuses (it says why: tests/test_parse_script.py) has nothing written back
        return False
    return True


#: the corpus scripts the reader takes (the few it refuses on purpose have their own tests)
READABLE = [path for path in CORPUS if _readable(path)]


def test_the_corpus_is_read():
    assert len(READABLE) >= len(CORPUS) - 2 and len(READABLE) > 30


@pytest.mark.parametrize("path", READABLE, ids=lambda p: os.path.relpath(p, DATA))
@pytest.mark.parametrize("reader", [parse_script, parse_job], ids=["workflow", "job"])
def test_every_comment_of_a_real_script_is_written_back(path, reader):
    text = open(path, encoding="utf-8").read()
    model = reader(text)
    notes = " ".join(readback_notes(text, model))
    if "\r" not in text:  # kept in its own layout (CRLF line ends are converted: no layout), it is its own text
        assert render(model, validate=False) == text
    written = render(without_layout(model), validate=False)
    lines = [line.rstrip() for line in written.splitlines()]
    for kind, comment in _comments(text):
        if kind == "line":
            found = comment in lines
        elif kind == "directive":
            found = any(line.startswith("#SBATCH") and line.endswith(comment) for line in lines)
        else:
            found = any(not line.lstrip().startswith("#") and line.endswith(comment) for line in lines)
        assert found or comment in notes, f"{comment!r} ({kind}) is not in the script written back"
    assert render(without_layout(reader(written)), validate=False) == written
