"""A word holding several lines of text (the script of ``bash -c "…"``) written over those lines by
:func:`~hpcwidgets.render.quote.quote_lines`, so a person can review it, while bash still receives exactly that word
(the quoting contract of :mod:`hpcwidgets.render.quote`).

Checked by running the rendered text with argv-recording stand-ins: single words, and commands broken over indented
continuation lines (the indentation goes between words, never into one).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import run_with_stand_ins
from test_properties import ENV, PIECES, SAFE, STAND_INS, _ok, expected_call, hostile

from hpcwidgets.render.command import wrap
from hpcwidgets.render.quote import quote, quote_lines
from hpcwidgets.spec import Verbatim

#: one line of a script: hostile pieces (quotes, $NAME, \$NAME, backslashes, tabs, \r…) but no line break
line = st.lists(st.one_of(st.sampled_from([p for p in PIECES if p != "\n"]), st.text(SAFE, max_size=6)),
                max_size=5).map("".join)
#: text over several lines, blank ones and runs of them included, with a leading or trailing line break at times
lines_of_text = st.lists(line, min_size=2, max_size=6).map("\n".join).filter(_ok)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])


def test_words_over_several_lines_reach_the_program_exactly(tmp_path):
    @SETTINGS
    @given(st.lists(st.one_of(lines_of_text, hostile), min_size=1, max_size=4))
    def run(values):
        script = "".join(f"python -c {quote_lines(v)}\n" for v in values)
        calls = run_with_stand_ins(script, tmp_path, STAND_INS, env=ENV)
        assert calls == [expected_call(["python", "-c", v], ENV) for v in values], script
        assert not (tmp_path / "pwned").exists()
    run()


def test_continuation_lines_stay_between_the_words(tmp_path):
    # a long step broken before each option group, its continuation lines indented, scripts among its words
    @SETTINGS
    @given(st.lists(st.one_of(lines_of_text, hostile), min_size=2, max_size=6))
    def run(values):
        words = ["srun", "--ntasks=2", "bash", "-c", *values]
        text = wrap([quote_lines(w) for w in words], group_starts=range(2, len(words)), width=10, indent="    ")
        calls = run_with_stand_ins(f"if true; then\n  {text}\nfi\n", tmp_path, STAND_INS, env=ENV)
        assert calls == [expected_call(words, ENV)], text
    run()


def test_a_script_is_written_as_its_lines():
    assert quote_lines("\n\nsource /ext3/env.sh\nconda activate\n\npython ./test_gpu.py\n") == (
        "'\n\nsource /ext3/env.sh\nconda activate\n\npython ./test_gpu.py\n'")
    # a reference expands where it is spliced in; an escaped one stays text for the program (a per-task variable)
    assert quote_lines("cd $DIR\necho \\$SLURM_PROCID\n") == "'cd '\"$DIR\"'\necho $SLURM_PROCID\n'"


def test_the_form_with_fewer_interruptions_is_chosen():
    # single quotes are interrupted at each quote and reference, double quotes at each \ " $ ` of the text
    assert quote_lines("python -c 'import torch'\necho 'done'") == "\"python -c 'import torch'\necho 'done'\""
    assert quote_lines("cd $DIR\npython train.py") == '"cd $DIR\npython train.py"'
    assert quote_lines("awk '{print $1}' x\necho \"\\$RANK\"") == "'awk '\"'\"'{print $1}'\"'\"' x\necho \"$RANK\"'"


def test_only_line_breaks_and_tabs_are_written_raw():
    assert quote_lines("a\n") == "a$'\\n'"  # one line of text: the break shows better as $'\n'
    assert quote_lines("a\r\n\tb\n") == "a$'\\r''\n\tb\n'"
    # a run of blank lines would be folded by the script's layout: it stays a $'…' piece
    assert quote_lines("a\n\n\nb") == "a$'\\n\\n\\n'b"


def test_other_words_are_quoted_as_quote_does():
    for value in ("plain", "a b", "$SCRATCH/x", "a\tb", Verbatim("\"$(cat\nx)\"")):
        assert quote_lines(value) == quote(value)
    assert "\n" not in quote("a\nb")  # quote itself keeps a word on one line (definition files, indented commands)


# ------------------------------------------------------------------------------------------------
# the step written with quote_lines (render/workflow.py step_text)

from test_properties import check_workflow, jobs, models  # noqa: E402

import hpcwidgets  # noqa: E402
from hpcwidgets.parse.layout import without_layout  # noqa: E402
from hpcwidgets.spec import ApptainerRun, Srun  # noqa: E402
from hpcwidgets.spec.charliecloud import ChRun  # noqa: E402
from hpcwidgets.spec.workflow import Workflow  # noqa: E402


def test_a_step_broken_over_lines_keeps_its_multiline_words(tmp_path):
    # srun, a container and a long option list: the step is broken over indented continuation lines
    @SETTINGS
    @given(jobs, models(Srun), st.one_of(models(ApptainerRun, command=()), models(ChRun, command=())),
           lines_of_text)
    def run(job, srun, container, text):
        w = Workflow(job=job, srun=srun, container=container, program=("bash", "-c", text, "$SCRATCH"))
        check_workflow(w, "0", tmp_path)
    run()


#: a real script's step, read back (nyu-dl/cluster-support greene/gpu_job.slurm, shortened)
OVERLAY_JOB = '''#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --time=00:10:00

singularity exec --nv --overlay $SCRATCH/overlay-50G-10M.ext3:ro /scratch/work/public/cuda.sif /bin/bash -c "

source /ext3/env.sh
conda activate

python ./test_gpu.py
"
'''
#: a step whose script mixes per-task and batch-shell variables (an accelerate front-end per node)
FRONT_END_JOB = '''#!/bin/bash
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
NUM_PROCS=8
srun --nodes=$SLURM_NNODES --ntasks=$SLURM_NNODES bash -c '
  echo "[front-end] global_rank=$SLURM_PROCID  host=$(hostname)"

  accelerate launch \\
    --num_processes '"$NUM_PROCS"' \\
    --machine_rank  $SLURM_PROCID \\
    --main_process_ip   '"$MASTER_ADDR"' \\
    finetuning.py
'
'''


def test_read_back_steps_keep_their_argv_and_their_lines(tmp_path):
    # plain values: the original's unquoted $SCRATCH is split at blanks, the read-back quotes it (on purpose)
    env = {"SCRATCH": "/scratch/u", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_NNODES": "2"}
    for original, written in ((OVERLAY_JOB, "/bin/bash -c '\n\nsource /ext3/env.sh\nconda activate\n\n"
                                            "python ./test_gpu.py\n'"),
                              (FRONT_END_JOB, "bash -c '\n  echo \"[front-end] global_rank=$SLURM_PROCID  "
                                              "host=$(hostname)\"\n\n  accelerate launch \\\n    --num_processes "
                                              "'\"$NUM_PROCS\"' \\\n    --machine_rank  $SLURM_PROCID \\\n")):
        # unedited, the script read back keeps its own text; the renderer's own step quotes the lines as above
        assert hpcwidgets.render(hpcwidgets.parse_script(original), validate=False) == original
        rendered = hpcwidgets.render(without_layout(hpcwidgets.parse_script(original)), validate=False)
        assert written in rendered
        calls = run_with_stand_ins(original, tmp_path, STAND_INS, env=env)
        assert run_with_stand_ins(rendered, tmp_path, STAND_INS, env=env) == calls, rendered
        assert hpcwidgets.render(without_layout(hpcwidgets.parse_script(rendered)), validate=False) == rendered
