"""A script without a launch the model can hold: which line becomes the step (the program), and which stay as written.

The step is the last command that does real work. When that command cannot be held (it is in a pipeline, a loop
or a here-document), no earlier line takes its place: ``cat hostfile`` or ``pip install`` shown as "the step" would
mislead the form's reader, so every line stays as written, in its place.
"""

from __future__ import annotations

import pytest

from hpcwidgets import parse_script, render

from helpers import run_with_stand_ins


def _script(body: str) -> str:
    return "#!/bin/bash\n#SBATCH --nodes=1\n" + body


def _read(body: str):  # noqa: ANN202
    model = parse_script(_script(body))
    written = render(model)
    assert render(parse_script(written)) == written  # a fixed point after one round
    return model, written


NO_STEP = {
    "a launch piped into tee": ("scontrol show hostnames | sed 's/$/ slots=4/' > hostfile\ncat hostfile\n"
                                "deepspeed --hostfile hostfile train.py 2>&1 | tee log.txt\n"),
    "a loop of runs": "pip install -r req.txt\nfor lr in 1 2; do\n  python train.py --lr $lr\ndone\n",
    "a here-document": "pip install -r req.txt\npython - <<'EOF'\nprint('hello')\nEOF\n",
    "a program named by a variable": "pip install -r req.txt\n$TRAINER --epochs 3\n",
    "a list": "pip install -r req.txt\npython train.py && python eval.py\n",
}


@pytest.mark.parametrize("body", NO_STEP.values(), ids=list(NO_STEP))
def test_when_the_last_work_cannot_be_held_no_earlier_line_becomes_the_step(body):
    model, written = _read(body)
    assert model.program == ()
    # every line is kept, in its order
    kept = [line for line in body.splitlines() if line.strip()]
    lines = written.splitlines()
    positions = [lines.index(line) for line in kept]
    assert positions == sorted(positions), written


def test_redirections_of_the_program_stay_with_it(tmp_path):
    body = 'pip install -r req.txt\npython train.py --x 1 > "$HOME/log.txt" 2>&1\n'
    model, written = _read(body)
    assert model.program[:4] == ("python", "train.py", "--x", "1")
    assert [str(w) for w in model.program[4:]] == ['> "$HOME/log.txt"', "2>&1"]
    assert model.job.setup == ("pip install -r req.txt",)
    assert '\npython train.py --x 1 > "$HOME/log.txt" 2>&1\n' in written
    names = ["pip", "python"]
    assert run_with_stand_ins(written, tmp_path / "w", names) == \
        run_with_stand_ins(_script(body), tmp_path / "o", names)


@pytest.mark.parametrize("tail", ["exit 0", "wait", "nvidia-smi | tee gpus.log", 'echo "done" | tee -a log.txt',
                                  "kill $MONITOR_PID", 'echo "end $(date)"; pwd', "rsync -a results/ $HOME/results/",
                                  'sbatch "$0"', "while true; do sleep 10; done",
                                  'if [ -f stop ]; then echo "stopped early"; fi',
                                  "cleanup() {\n  python tidy.py\n}"])
def test_lines_that_do_no_work_after_the_program_leave_it_the_step(tail):
    model, written = _read(f"pip install -r req.txt\npython train.py --epochs 3\n{tail}\n")
    assert model.program == ("python", "train.py", "--epochs", "3")
    assert written.rstrip("\n").endswith(tail)


@pytest.mark.parametrize("value", ["", "--a 1 --b 2"], ids=["empty", "several words"])
def test_a_program_argument_bash_may_split_is_kept_as_written(tmp_path, value):
    body = "python train.py $EXTRA_ARGS\n"
    model, written = _read(body)
    assert model.program[:2] == ("python", "train.py") and str(model.program[2]) == "$EXTRA_ARGS"
    env = {"EXTRA_ARGS": value}
    assert run_with_stand_ins(written, tmp_path / "w", ["python"], env) == \
        run_with_stand_ins(_script(body), tmp_path / "o", ["python"], env)
