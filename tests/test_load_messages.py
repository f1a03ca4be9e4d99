"""What the forms' Load says about text that is not what the form holds: the command or file named as a person
would name it (never a model kind such as ``slurm.srun``, or a function name), and the way to load it."""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ParseError
from hpcwidgets.spec.apptainer import ApptainerBuild, ApptainerPull, ApptainerRun
from hpcwidgets.spec.names import spoken, spoken_list
from hpcwidgets.spec.torchrun import Torchrun
from hpcwidgets.widgets.loading import parse_command, parse_jupyter

APPTAINER = (ApptainerRun, ApptainerPull, ApptainerBuild)
JOB = "#!/bin/bash\n#SBATCH --gres=gpu:1\nmodule load apptainer\napptainer exec --nv img.sif python train.py\n"
PYTHON_JOB = "#!/usr/bin/env python3\n#SBATCH --time=10\nprint(sum(range(3)))\n"


def message(text: str, allowed: tuple[type, ...]) -> str:
    with pytest.raises(ParseError) as exc:
        parse_command(text, allowed)
    return exc.value.message


def test_a_job_script_in_a_command_form() -> None:
    said = message(JOB, APPTAINER)
    assert said.startswith("this form holds one command, and the text has 2: paste only an apptainer exec/run/shell "
                           "command, an apptainer pull command or an apptainer build command")
    assert "Workflow or Slurm form" in said and "lex_script" not in said


def test_a_line_copied_with_its_srun() -> None:
    said = message("srun --ntasks=2 apptainer exec --nv img.sif python train.py", APPTAINER)
    assert said.startswith("this is an srun command that runs an apptainer exec/run/shell command: paste the command "
                           "without srun")
    # srun of something this form does not hold is named as what it is
    assert message("srun hostname", APPTAINER).startswith("this is an srun command; this form holds an apptainer")


def test_another_command_is_named_as_a_command() -> None:
    assert message("apptainer exec --nv img.sif python train.py", (Torchrun,)) == \
        "this is an apptainer exec/run/shell command; this form holds a torchrun command"
    assert parse_command("apptainer exec --nv img.sif python train.py", APPTAINER).nv is True


@pytest.mark.parametrize("load", [lambda t: parse_command(t, APPTAINER), parse_jupyter])
def test_a_python_job_script_is_named_not_parsed_as_shell(load) -> None:
    with pytest.raises(ParseError, match=r"runs with python3 \(its #! line\), not a shell"):
        load(PYTHON_JOB)


def test_every_model_kind_has_a_spoken_name() -> None:
    import hpcwidgets.spec  # noqa: F401  (registers every model)
    from hpcwidgets.spec._meta import _REGISTRY
    parts = ("profile", "bind", "env", "sweep.", "dockerfile.")  # pieces of a model, never loaded or built alone
    unnamed = [k for k in _REGISTRY if not k.startswith(parts) and spoken(k) == f"a {k} model"]
    assert unnamed == [], "add these kinds to hpcwidgets/spec/names.py"
    assert spoken_list([ApptainerRun, ApptainerRun]) == "an apptainer exec/run/shell command"
