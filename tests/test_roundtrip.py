"""Reading a script and writing it back keeps what it does.

Each script here is the kind researchers bring (pipelines, ``&&`` lists, ``exec``, a module purge,
exports that use earlier variables, their own head-node name, the deprecated launcher). It is run
with bash twice, as written and after ``render(parse_script(…))``, with stand-in programs that log
every call (program, arguments and a few environment variables); both runs must make the same calls
in the same order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.examples import examples
from hpcwidgets.parse import parse_script
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.render import render

PROGRAMS = ("python", "srun", "apptainer", "singularity", "torchrun", "module", "tee", "scontrol", "conda", "ch-run",
            "mkdir")
SEEN_ENV = ("OMP_NUM_THREADS", "NCCL_DEBUG", "DATA_DIR", "PYTHONNOUSERSITE")

STUB = """#!/bin/bash
# log this call as one JSON line: [program, [args…], {selected environment}]
python3 - "$(basename "$0")" "$@" <<'PY' >> "$CALLS"
import json, os, sys
env = {k: os.environ[k] for k in {seen} if k in os.environ}
print(json.dumps([sys.argv[1], sys.argv[2:], env]))
PY
if [[ $(basename "$0") == scontrol ]]; then printf 'n1\\nn2\\n'; fi
if [[ $(basename "$0") == tee ]]; then cat > /dev/null; fi
exit 0
"""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stubs")
    for name in PROGRAMS:
        path = folder / name
        path.write_text(STUB.replace("{seen}", repr(SEEN_ENV)))
        path.chmod(0o755)
    return folder


def calls(script: str, stubs: Path, work: Path) -> list[object]:
    log = work / "calls.jsonl"
    log.write_text("")
    path = work / "job.sh"
    path.write_text(script)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "CALLS": str(log), "HOME": str(work), "SCRATCH": str(work),
           "USER": "me", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_ID": "42", "SLURM_NNODES": "2",
           "SLURM_CPUS_PER_TASK": "4", "SLURM_SUBMIT_DIR": str(work)}
    proc = subprocess.run(["bash", str(path)], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{script}\n---\n{proc.stderr}"
    return [json.loads(line) for line in log.read_text().splitlines()]


SCRIPTS = {
    "pipeline-and-list": """\
        #!/bin/bash
        #SBATCH --time=10
        cd "$SCRATCH" && OMP_NUM_THREADS=4 python train.py 2>&1 | tee train.log
        python prep.py && python train.py --epochs 2
        echo done; python report.py
        """,
    "module-purge-and-exports-in-order": """\
        #!/bin/bash
        #SBATCH --time=10
        module purge
        module load cuda/12.1
        DATA=/scratch/me
        export DATA_DIR=$DATA/imagenet
        if [ -n "$RESUME" ]; then echo resuming; fi
        python train.py --data "$DATA_DIR"
        """,
    "exec-and-negation": """\
        #!/bin/bash
        #SBATCH --time=10
        ! python check.py
        exec srun python train.py
        """,
    "env-prefix-after-set-up": """\
        #!/bin/bash
        #SBATCH --time=10
        python prep.py
        OMP_NUM_THREADS=4 python train.py
        """,
    "env-prefix-first": """\
        #!/bin/bash
        #SBATCH --time=10
        module load apptainer
        NCCL_DEBUG=INFO srun apptainer exec --nv img.sif python train.py > train.log 2>&1
        """,
    "own-head-node": """\
        #!/bin/bash
        #SBATCH --nodes=2
        #SBATCH --ntasks-per-node=1
        #SBATCH --gres=gpu:4
        #SBATCH --time=10
        head_node="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)-ib0"
        srun torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=$head_node:29500 train.py
        """,
    "deprecated-launcher": """\
        #!/bin/bash
        #SBATCH --gres=gpu:2
        #SBATCH --time=10
        python -m torch.distributed.launch --nproc_per_node=2 --use_env train.py
        """,
    "bind-written-as-shell-text": """\
        #!/bin/bash
        #SBATCH --gres=gpu:1
        #SBATCH --time=10
        singularity exec --nv -B $(pwd):/work img.sif python /work/t.py
        """,
    "options-the-model-does-not-hold": """\
        #!/bin/bash
        #SBATCH --gres=gpu:2
        #SBATCH --time=10
        srun -w n1 --epilog /bin/true torchrun --standalone --nproc-per-node=2 --redirects 3 train.py
        """,
    "unquoted-arguments-split": """\
        #!/bin/bash
        #SBATCH --time=10
        ARGS="--lr 0.1 --bs 8"
        EMPTY=""
        srun python train.py $ARGS $EMPTY
        """,
    "explicit-off-and-short-directives": """\
        #!/bin/bash
        #SBATCH -L SCRATCH
        #SBATCH --cpus-per-task=8
        module load gcc/12 openmpi/4.1
        srun --cpus-per-task=$SLURM_CPUS_PER_TASK --kill-on-bad-exit=0 python x.py
        """,
    "user-head-node-and-mkdir-before-pull": """\
        #!/bin/bash
        #SBATCH --nodes=2
        #SBATCH --ntasks-per-node=1
        #SBATCH --time=10
        mkdir -p $SCRATCH/sif
        [ -f $SCRATCH/sif/p.sif ] || apptainer pull --dir $SCRATCH/sif p.sif docker://pytorch/pytorch:2.3.1
        head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
        srun apptainer exec $SCRATCH/sif/p.sif torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$head_node:29500 train.py
        """,
    "user-prologue-and-conda": """\
        #!/bin/bash
        #SBATCH --time=10
        set -euo pipefail
        module load anaconda3
        conda activate torch
        srun python train.py
        """,
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_script_read_back_makes_the_same_calls(name: str, stubs: Path, tmp_path: Path) -> None:
    original = textwrap.dedent(SCRIPTS[name])
    again = render(parse_script(original))
    before, after = both_calls(original, again, stubs, tmp_path)
    assert before, "the stand-ins logged nothing"
    # the two sides of a pipeline run at the same time: compare the calls, and the order of all but tee's
    assert sorted(map(json.dumps, after)) == sorted(map(json.dumps, before))
    assert [c for c in after if c[0] != "tee"] == [c for c in before if c[0] != "tee"], again
    assert render(parse_script(again)) == again  # and a second round changes nothing


@pytest.mark.parametrize("name", ["multi-node-torchrun", "single-gpu", "array-sweep"])
def test_generated_scripts_read_back_unchanged(name: str) -> None:
    text = examples("generic")[name].render()
    assert render(parse_script(text)) == text


def test_fail_fast_follows_the_script() -> None:
    assert parse_script("#!/bin/bash\npython t.py\n").job.fail_fast == "off"
    assert parse_script("#!/bin/bash\nset -euo pipefail\npython t.py\n").job.fail_fast == "strict"
    assert parse_script("#!/bin/bash\nset -eo pipefail\npython t.py\n").job.fail_fast == "errexit"
    text = render(parse_script("#!/bin/bash\nset -e\npython t.py\n"))
    assert "set -u" not in text and text.count("set -e") == 1  # its own line, kept where it was


def test_a_second_round_keeps_a_users_set_u() -> None:
    once = render(parse_script("#!/bin/bash\nset -u\necho $UNSET_VAR\npython t.py\n"), validate=False)
    assert "set -u" in once and render(parse_script(once), validate=False) == once


def test_a_directive_after_the_first_command_is_kept() -> None:
    text = "#!/bin/bash\n#SBATCH --time=10\necho starting\n#SBATCH --gres=gpu:1\npython train.py\n"
    assert "#SBATCH --gres=gpu:1" in render(parse_script(text))


def same(log: list[object], work: Path) -> list[object]:
    """A call log with the run's folder named W, and torchrun's --a_b spellings written --a-b (one option)."""
    def word(program: str, a: str) -> str:
        a = a.replace(str(work), "W")
        if a == "-B" and program in ("apptainer", "singularity"):
            a = "--bind"  # the same option
        if a.startswith("--") and program in ("srun", "torchrun"):
            name, eq, value = a.partition("=")
            a = name.replace("_", "-") + eq + value
        return a
    return [[c[0], [word(c[0], a) for a in c[1]], {k: v.replace(str(work), "W") for k, v in c[2].items()}]
            for c in log]  # type: ignore[index]


def both_calls(original: str, again: str, stubs: Path, tmp_path: Path) -> tuple[list[object], list[object]]:
    """The calls each script makes, run in folders of their own, comparable (see :func:`same`)."""
    need(shutil.which("bash") is not None and shutil.which("python3") is not None,
         "the scripts run with bash and the stand-ins with python3")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return (same(calls(original, stubs, tmp_path / "a"), tmp_path / "a"),
            same(calls(again, stubs, tmp_path / "b"), tmp_path / "b"))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_script_read_as_a_slurm_job_keeps_every_line(name: str, stubs: Path, tmp_path: Path) -> None:
    """The Slurm form holds a job without a workflow: the step and what follows stay as its own lines."""
    from hpcwidgets.widgets.loading import parse_job
    original = textwrap.dedent(SCRIPTS[name])
    before, after = both_calls(original, render(parse_job(original)), stubs, tmp_path)
    assert before and sorted(map(json.dumps, after)) == sorted(map(json.dumps, before))


def test_the_jupyter_form_reloads_its_own_script() -> None:
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets.builder import JupyterJobBuilder
    first = JupyterJobBuilder(submit=False, profile="midway3")
    second = JupyterJobBuilder(submit=False, profile="midway3")
    assert second.load(first.text) and not second.stale
    assert second.text == first.text and second.spec.login_host == first.spec.login_host != ""


@pytest.mark.parametrize("command,says", [
    ("apptainer exec img.sif python t.py > log.txt 2>&1", "redirections"),
    ("APPTAINERENV_WANDB_MODE=offline apptainer exec img.sif python t.py", "APPTAINERENV_WANDB_MODE"),
])
def test_a_command_form_refuses_what_it_cannot_keep(command: str, says: str) -> None:
    from hpcwidgets.errors import ParseError
    from hpcwidgets.spec.apptainer import ApptainerRun
    from hpcwidgets.widgets.loading import parse_command
    with pytest.raises(ParseError, match=says):
        parse_command(command, [ApptainerRun])
    assert parse_command("apptainer exec --nv img.sif python t.py", [ApptainerRun]).nv is True


def test_what_the_model_would_respell_stays_as_written() -> None:
    text = render(parse_script(textwrap.dedent(SCRIPTS["user-head-node-and-mkdir-before-pull"])))
    assert "| head -n 1)" in text and "sed -n 1p" not in text  # the user's own head-node line
    assert text.count("mkdir -p") == 1  # the user's mkdir is the one the pull needs
    assert "module load gcc/12 openmpi/4.1" in render(parse_script(textwrap.dedent(SCRIPTS["explicit-off-and-short-directives"])))


@pytest.mark.parametrize("shell,stops", [("/bin/bash -e", True), ("/bin/bash", False), ("/usr/bin/env bash", False)])
def test_the_interpreter_line_and_its_options_are_kept(tmp_path, shell, stops):
    """sbatch runs the program on the #! line with its options: ``bash -e`` stops at the first error,
    ``bash -l`` is a login shell. The read-back writes the line as it was."""
    script = f"#!{shell}\n#SBATCH --time=10\nfalse\necho 'training ran'\n"
    again = render(parse_script(script))
    assert again.splitlines()[0] == f"#!{shell}"
    for text in (script, again):
        path = tmp_path / "job.sh"
        path.write_text(text)
        path.chmod(0o755)
        proc = subprocess.run([str(path)], capture_output=True, text=True, timeout=60)
        assert (proc.returncode != 0 and "training ran" not in proc.stdout) is stops, text


def test_a_heterogeneous_job_keeps_its_components_in_order():
    script = textwrap.dedent("""\
        #!/bin/bash
        #SBATCH --nodes=1 --ntasks=2 --time=10
        #SBATCH --signal=USR1@90
        #SBATCH hetjob
        #SBATCH --nodes=1 --ntasks=1 --partition=other --gres=qpu:1
        srun --het-group=0 hostname &
        srun --het-group=1 hostname &
        wait
        """)
    workflow = parse_script(script)
    assert workflow.job.partition == "" and workflow.job.ntasks == 2  # the first component only
    assert workflow.job.extra_directives == ("--signal=USR1@90", "hetjob",
                                             "--nodes=1 --ntasks=1 --partition=other --gres=qpu:1")
    assert render(workflow) == script  # unedited, its own layout
    again = render(without_layout(workflow))  # the renderer's: the first component's fields, the rest as written
    directives = [line for line in again.splitlines() if line.startswith("#SBATCH")]
    assert directives == ["#SBATCH --nodes=1", "#SBATCH --ntasks=2", "#SBATCH --time=10", "#SBATCH --signal=USR1@90",
                          "#SBATCH hetjob", "#SBATCH --nodes=1 --ntasks=1 --partition=other --gres=qpu:1"]
    assert render(without_layout(parse_script(again))) == render(parse_script(again)) == again


def test_a_container_program_with_its_own_options_stays_as_written():
    # singularity -s (silent) before exec: lint sees the step, the read-back keeps the line as it was
    from hpcwidgets.parse.script import read_script
    script = "#!/bin/bash\n#SBATCH --time=10\nsingularity -s exec --nv img.sif python t.py\n"
    assert [s.chain.container.action for s in read_script(script).steps] == ["exec"]
    assert "singularity -s exec --nv img.sif python t.py\n" in render(parse_script(script))
