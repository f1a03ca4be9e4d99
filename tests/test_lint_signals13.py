"""Signals the batch shell is sent or sends on: HPC530 for INT and QUIT, HPC531 (kill -INT to a background Python)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from hpcwidgets.lint import lint


def found(text: str, code: str) -> list[str]:
    return [f.message for f in lint(textwrap.dedent(text)) if f.code == code]


@pytest.mark.parametrize("signal", ["INT", "SIGINT", "QUIT", "2"])
def test_an_untrapped_interrupt_sent_to_the_batch_shell_reaches_no_one(signal):
    messages = found(f"""\
        #!/bin/bash
        #SBATCH --signal=B:{signal}@300
        python train.py
        """, "HPC530")
    assert len(messages) == 1 and "bash neither stops nor passes it on" in messages[0]


def test_an_untrapped_interrupt_kills_a_batch_shell_in_wait():
    messages = found("#!/bin/bash\n#SBATCH --signal=B:INT@300\nsrun python train.py &\nwait\n", "HPC530")
    assert len(messages) == 1 and "it kills bash 300 seconds before the time limit" in messages[0]
    quit_ = found("#!/bin/bash\n#SBATCH --signal=B:QUIT@300\nsrun python train.py &\nwait\n", "HPC530")
    assert len(quit_) == 1 and "bash neither stops nor passes it on" in quit_[0]  # bash ignores QUIT always


@pytest.mark.parametrize("signal,script,dies", [
    ("INT", "sleep 2; echo after", False),        # waiting for a foreground command: bash lets it decide
    ("INT", "sleep 2 & wait; echo after", True),  # in wait: INT kills bash
    ("QUIT", "sleep 2 & wait; echo after", False),
])
def test_what_hpc530_says_of_bash_holds_here(signal, script, dies):
    """bash started as slurmstepd starts the batch shell (INT and QUIT at their defaults), then signalled alone."""
    import signal as signals
    import time

    def defaults() -> None:
        signals.signal(signals.SIGINT, signals.SIG_DFL)
        signals.signal(signals.SIGQUIT, signals.SIG_DFL)
    proc = subprocess.Popen(["bash", "-c", script], preexec_fn=defaults, stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    proc.send_signal(getattr(signals, "SIG" + signal))
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode < 0) is dies and (out.strip() == "after") is not dies


def test_a_trapped_interrupt_is_left_to_the_trap():
    assert found("""\
        #!/bin/bash
        #SBATCH --signal=B:INT@300
        trap 'touch STOP' INT
        python train.py & wait
        """, "HPC530") == []


def test_untrapped_usr1_still_kills_the_shell():
    messages = found("#!/bin/bash\n#SBATCH --signal=B:USR1@90\npython train.py\n", "HPC530")
    assert len(messages) == 1 and "it kills bash 90 seconds before the time limit" in messages[0]


@pytest.mark.parametrize("kill", ['kill -INT "$pid"', "kill -2 $pid", "kill -s SIGINT ${pid}", "kill -SIGQUIT -- $pid"])
@pytest.mark.parametrize("where", ["trap", "function"])
def test_an_interrupt_forwarded_to_a_background_python_is_found(kill, where):
    handler = (f"trap '{kill}' USR1" if where == "trap" else f"on_usr1() {{\n  {kill}\n  wait\n}}\ntrap on_usr1 USR1")
    text = f"#!/bin/bash\n#SBATCH --signal=B:USR1@300\npython -u train.py --epochs 9 &\npid=$!\n{handler}\nwait\n"
    messages = [f.message for f in lint(text) if f.code == "HPC531"]
    assert len(messages) == 1 and "to python (line 3)" in messages[0]


@pytest.mark.parametrize("script", [
    # TERM is not ignored by a background command
    "python train.py &\npid=$!\ntrap 'kill -TERM $pid' USR1\nwait\n",
    # job control on: background commands keep their signals
    "set -m\npython train.py &\npid=$!\ntrap 'kill -INT $pid' USR1\nwait\n",
    # launchers that set a SIGINT handler of their own
    "torchrun --standalone --nproc-per-node=2 train.py &\npid=$!\ntrap 'kill -INT $pid' USR1\nwait\n",
    "python -m torch.distributed.run --standalone train.py &\npid=$!\ntrap 'kill -INT $pid' USR1\nwait\n",
    # the process id of something else
    "python train.py &\npid=$!\nsrun monitor.sh &\nmon=$!\ntrap 'kill -INT $mon' USR1\nwait\n",
])
def test_interrupts_that_do_arrive_are_left_alone(script):
    assert found("#!/bin/bash\n#SBATCH --signal=B:USR1@300\n" + script, "HPC531") == []


@pytest.mark.parametrize("job_control,expected", [(False, "slept through"), (True, "KeyboardInterrupt")])
def test_what_the_rule_says_of_bash_and_python_holds_here(tmp_path, job_control, expected):
    """The behaviour HPC531 rests on, run for real: bash without job control starts python with SIGINT ignored."""
    bash = shutil.which("bash")
    assert bash is not None
    script = tmp_path / "job.sh"
    script.write_text(("set -m\n" if job_control else "") + textwrap.dedent("""\
        python3 -c '
        import time
        try:
            open("ready", "w").close()  # its signal handlers are set: a loaded machine may take a while to get here
            time.sleep(5); print("slept through")
        except KeyboardInterrupt:
            print("KeyboardInterrupt")' &
        pid=$!
        until [ -e ready ]; do sleep 0.05; done
        kill -INT "$pid"
        wait
        """))
    import signal

    def defaults() -> None:  # as the batch shell starts, whatever the test runner ignores
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    out = subprocess.run([bash, str(script)], capture_output=True, text=True, timeout=60, preexec_fn=defaults,
                         cwd=tmp_path).stdout
    assert out.strip() == expected
