"""Reader fixes from the launcher audit (session 8): container environment values the host's shell expands
(``--env NCCL_DEBUG="${NCCL_DEBUG:-WARN}"``, ch-run ``--set-env="X=${Y%/*}"``), a torchrun port held in a
variable (``--master-port=$MASTER_PORT``) and torchrun options spelled with underscores for PyTorch 1.x."""

from __future__ import annotations

import pytest

from helpers import run_with_stand_ins
from hpcwidgets.errors import ValidationError
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.workflow import parse_script
from hpcwidgets.render import render
from hpcwidgets.render.command import command_line
from hpcwidgets.spec import Workflow
from hpcwidgets.spec._meta import count_from_text
from hpcwidgets.spec._words import EXPANDED, Verbatim, passed_text, split_assignment
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.argv import argv
from hpcwidgets.spec.common import EnvVar
from hpcwidgets.spec.torchrun import Torchrun

HEADER = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:1\n"
PROGRAMS = ["srun", "apptainer", "ch-run", "torchrun", "python"]


def stable(text: str) -> str:
    """The script read back and rendered in the renderer's own layout (what the reader put in which field); a second
    round must give the same text. Written back unedited in its own layout, each is its own text."""
    assert render(parse_script(text)) == text
    once = render(without_layout(parse_script(text)))
    assert render(without_layout(parse_script(once))) == render(parse_script(once)) == once
    return once


def calls(text: str, tmp_path, env: dict[str, str] | None = None) -> list[dict]:
    """What the stand-in programs receive when bash runs ``text`` (the batch script's commands), with apptainer's
    ``--env=VALUE`` written as ``--env VALUE``: its option parser reads the two the same way."""
    out = run_with_stand_ins(text, tmp_path, PROGRAMS, env)
    for call in out:
        call["argv"] = [part for word in call["argv"] for part in
                        (word.split("=", 1) if word.startswith("--env=") else [word])]
    return out


def same_calls(script: str, tmp_path, envs: list[dict[str, str]]) -> str:
    """Render the script read back and check that, under each environment, bash passes the stand-ins exactly
    what it passes them for the original; the rendered script is returned."""
    out = stable(script)
    for k, env in enumerate(envs):
        first, second = calls(script, tmp_path / f"a{k}", env), calls(out, tmp_path / f"b{k}", env)
        assert first and first == second
    return out


def codes(text: str) -> list[str]:
    return [f.code for f in lint(text)]


# ---------------------------------------------------------------------------------------------
# 1. Container environment values with expansions the host's shell performs

APPTAINER_ENV_WORDS = [
    'NCCL_DEBUG="${NCCL_DEBUG:-WARN}"',      # Leonardo's template (audit 8a, d6a)
    '"NCCL_DEBUG=${NCCL_DEBUG:-WARN}"',      # the whole word quoted (d6b)
    "NCCL_DEBUG=${NCCL_DEBUG:-WARN}",
    "DATA=${DATA_FILE%/*}",
    '"STAMP=$(printf %s "$DATA_FILE" | wc -c)"',
    "--env=NCCL_DEBUG=${NCCL_DEBUG:-WARN}",
]
ENVS = [{"DATA_FILE": "/scratch/a b/x.h5"}, {"NCCL_DEBUG": "INFO", "DATA_FILE": "/d/f"}]


class TestContainerEnvironment:
    @pytest.mark.parametrize("word", APPTAINER_ENV_WORDS)
    def test_apptainer_gets_the_value_bash_gives(self, word, tmp_path):
        option = word if word.startswith("--") else f"--env {word}"
        script = f"{HEADER}srun apptainer exec --nv {option} img.sif python train.py\n"
        (env,) = parse_script(script).container.env
        assert not isinstance(env.name, Verbatim) and isinstance(env.value, Verbatim)
        out = same_calls(script, tmp_path, ENVS)
        assert "'" not in out.split("apptainer exec", 1)[1]  # never single-quoted into literal text

    @pytest.mark.parametrize("word", APPTAINER_ENV_WORDS[:2])
    def test_no_false_alarm_on_the_script_or_on_what_is_written_back(self, word):
        script = f"{HEADER}srun apptainer exec --nv --env {word} img.sif python train.py\n"
        assert parse_script(script).problems() == []
        for text in (script, stable(script)):
            assert not {"HPC219", "HPC514"} & set(codes(text))

    def test_a_word_only_the_job_can_split_is_kept_whole(self, tmp_path):
        script = f'{HEADER}srun apptainer exec --nv --env "$(printf A=%s 1)" img.sif python train.py\n'
        (env,) = parse_script(script).container.env
        assert env.to_token() == '"$(printf A=%s 1)"' and env.problems() == []
        out = same_calls(script, tmp_path, [{}])
        assert '--env "$(printf A=%s 1)"' in out

    @pytest.mark.parametrize("word", ['"NCCL_DEBUG=${NCCL_DEBUG:-WARN}"', "X=${DATA_FILE%/*}",
                                      '"X=$(printf %s "$DATA_FILE")"'])
    def test_ch_run_gets_the_value_bash_gives_and_is_not_refused(self, word, tmp_path):
        # (the options in the model's order, so that the whole argv compares: ch-run reads them in any order)
        script = (f'{HEADER}srun ch-run --bind="$PWD:/mnt/0" --cd=/mnt/0 --set-env={word} /var/tmp/img -- '
                  "python train.py\n")
        w = parse_script(script)
        assert w.problems() == [] and w.container.set_env == (Verbatim(word),)
        same_calls(script, tmp_path, ENVS)

    def test_ch_run_still_hears_of_a_dollar_the_shell_passes_on(self):
        # ch-run looks up the whole item "$HOME/bin" as one name (an item that is $ and a name is its documented expansion)
        w = parse_script(f'{HEADER}srun ch-run --set-env="Z=\\$HOME/bin:$(pwd)" /var/tmp/img -- python train.py\n')
        assert [p.field for p in w.problems()] == ["container.set_env"]
        assert "the variable named 'HOME/bin', which cannot exist" in w.problems()[0].message
        assert w.replace(container=w.container.replace(env_no_expand=True)).problems() == []

    def test_read_from_a_script_it_expands_typed_in_a_form_it_stays_inert(self, tmp_path):
        read = parse_script(f"{HEADER}apptainer exec --env NCCL_DEBUG=${{NCCL_DEBUG:-WARN}} img.sif true\n").container
        typed = ApptainerRun(image="img.sif", env=(EnvVar("NCCL_DEBUG", "${NCCL_DEBUG:-WARN}"),), command=("true",))
        assert str(read.env[0].value) == str(typed.env[0].value) == "${NCCL_DEBUG:-WARN}"
        got = [calls(command_line(m.replace(command=("true",))), tmp_path / str(k), {"NCCL_DEBUG": "INFO"})[0]["argv"]
               for k, m in enumerate((read, typed))]
        assert [argv[argv.index("--env") + 1] for argv in got] == ["NCCL_DEBUG=INFO", "NCCL_DEBUG=${NCCL_DEBUG:-WARN}"]

    @pytest.mark.parametrize("word, name, value", [
        ('"A=${B:-x}"', "A", '"${B:-x}"'),
        ("'A=b'\"$(c)\"", "A", "'b'\"$(c)\""),
        ('A\\=$(c)', "A", "$(c)"),
        ('"A"=${B%/*}', "A", "${B%/*}"),
        ('"$PAIR"', None, None),
        ('"${X}=1"', None, None),
        ('"1A=$(c)"', None, None),
    ])
    def test_split_assignment(self, word, name, value):
        assert split_assignment(word) == (None if name is None else (name, value))

    def test_passed_text_marks_what_only_the_job_knows(self):
        assert passed_text("\"Z=\\$HOME:$(pwd)\"'$X'${Y%/*}`id`") == f"Z=$HOME:{EXPANDED}$X{EXPANDED}{EXPANDED}"


# ---------------------------------------------------------------------------------------------
# 2. A torchrun port held in a variable

PORT_SCRIPT = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
MASTER_PORT=$((20000 + SLURM_JOB_ID % 10000))
torchrun --nnodes=1 --nproc-per-node=4 --master-addr=127.0.0.1 --master-port=$MASTER_PORT train.py
"""
JOB = [{"SLURM_JOB_ID": "123456"}]


class TestPortInAVariable:
    def test_a_variable_port_reads_back_and_torchrun_gets_the_same_port(self, tmp_path):
        w = parse_script(PORT_SCRIPT)
        assert w.launcher.master_port == "$MASTER_PORT" and w.problems() == []
        out = same_calls(PORT_SCRIPT, tmp_path, JOB)
        assert '"--master-port=$MASTER_PORT"' in out
        assert "--master-port=23456" in calls(out, tmp_path / "c", JOB[0])[0]["argv"]

    @pytest.mark.parametrize("written, port", [('--master-port="${MASTER_PORT:-29500}"', '"${MASTER_PORT:-29500}"'),
                                               ("--master-port=$((29500 + 1))", "$((29500 + 1))")])
    def test_shell_text_for_the_port_is_kept_as_written(self, written, port, tmp_path):
        script = PORT_SCRIPT.replace("--master-port=$MASTER_PORT", written)
        assert parse_script(script).launcher.master_port == Verbatim(port)
        assert f"--master-port={port}" in same_calls(script, tmp_path, JOB)

    def test_a_rendezvous_endpoint_of_two_variables_reads_back_as_written(self, tmp_path):
        script = HEADER.replace("nodes=1", "nodes=2\n#SBATCH --ntasks-per-node=1") + (
            'head=$(printf n1)\nPORT=29400\n'
            "srun torchrun --nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d --rdzv_endpoint=$head:$PORT "
            "--rdzv_id=$SLURM_JOB_ID train.py\n")
        assert parse_script(script).launcher.rdzv_endpoint == "$head:$PORT"
        assert '"--rdzv_endpoint=$head:$PORT"' in same_calls(script, tmp_path, JOB)

    def test_a_form_still_takes_only_numbers_and_variables(self):
        f = Torchrun.field_spec("master_port")
        assert count_from_text(f, "29500") == 29500 and count_from_text(f, "$MASTER_PORT") == "$MASTER_PORT"
        for text in ("abc", "$((1 + 2))", "${P:-1}", "29500x"):
            with pytest.raises(ValueError, match="Master port"):
                count_from_text(f, text)
        for value in (70000, 0, "$((1 + 2))"):  # a form's text is not shell text
            assert [p.field for p in Torchrun(master_port=value, script="t.py").problems()] == ["master_port"]
        assert Torchrun(master_port=Verbatim("$((1 + 2))"), script="t.py").problems() == []


# ---------------------------------------------------------------------------------------------
# 3. torchrun options spelled with underscores (PyTorch 1.x reads only those)

OLD_TORCH = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
module load pytorch/1.12
python -m torch.distributed.run --nnodes=1 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=localhost:29500 train.py
"""


class TestOptionSpelling:
    def test_underscores_are_read_and_written_back(self, tmp_path):
        w = parse_script(OLD_TORCH)
        assert w.launcher.option_style == "underscores"
        out = same_calls(OLD_TORCH.replace("module load pytorch/1.12\n", ""), tmp_path, [{}])
        assert "--nproc_per_node=4" in out and "--rdzv_endpoint=localhost:29500" in out and "-per-node" not in out

    def test_the_model_survives_json(self):
        w = parse_script(OLD_TORCH)
        assert '"option_style": "underscores"' in w.to_json()
        assert Workflow.from_json(w.to_json()) == w
        assert "option_style" not in parse_script(OLD_TORCH.replace("_per_", "-per-").replace("rdzv_", "rdzv-")) \
            .launcher.to_dict()

    def test_lint_fix_keeps_the_spelling(self):
        text, fixed = fix_script(OLD_TORCH)
        assert [f.code for f in fixed] == ["HPC106"]
        assert text.splitlines()[-1] == "python -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node=4 train.py"

    def test_one_underscore_spelling_is_enough_and_extra_options_count(self):
        mixed = OLD_TORCH.replace("--rdzv_backend", "--rdzv-backend")
        assert parse_script(mixed).launcher.option_style == "underscores"
        extra = OLD_TORCH.replace("--nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=localhost:29500",
                                  "--nproc-per-node=4 --standalone --monitor_interval 5")
        launcher = parse_script(extra).launcher
        assert launcher.option_style == "underscores" and render(parse_script(extra)) == extra
        assert "--nproc_per_node=4" in render(without_layout(parse_script(extra)))  # the renderer's spelling

    def test_hyphens_stay_the_default(self):
        t = Torchrun.single_node(4, "train.py")
        assert t.option_style == "hyphens" and "--nproc-per-node=4" in command_line(t)
        under = t.replace(option_style="underscores", max_restarts=2, no_python=True, args=("--log-dir", "x"))
        assert " ".join(argv(under)) == ("torchrun --standalone --nnodes=1 --nproc_per_node=4 --max_restarts=2 "
                                         "--no_python train.py --log-dir x")  # the script's own options untouched

    def test_a_spelling_outside_the_choices_is_refused(self):
        with pytest.raises(ValidationError, match="Option spelling must be one of hyphens, underscores"):
            Torchrun(script="t.py", option_style="dashes").validate()
