"""Where the lines added to a script read back go, and what an emptied option leaves of its #SBATCH line (the
session-18 audit /tmp/s18/a6/REPORT.md, findings 3, 5 and 8):

- a module load added goes after the script's own module commands before its work (``module purge`` unloads what
  was loaded above it, ``module restore`` swaps it for a saved collection, ``module use`` and MODULEPATH say where a
  later load looks), and where it went before when the script has none;
- a line added after the script's last command goes before a trailing ``exit``, which would end the job first;
- an option emptied on an #SBATCH line of several takes its own words out of the line and leaves the rest as written.

Each next to the nearby scripts that must stay as they were (tests/test_readback_layout*.py and
tests/test_readback_comments.py hold the rest)."""

from __future__ import annotations

import subprocess

import pytest
from test_readback_layout_s18 import _edited, _sbatch_from

from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.widgets import SlurmBuilder

READERS = pytest.mark.parametrize("reader", [parse_script, parse_job], ids=["workflow", "job"])


def _appended(reader, text: str, field: str, line: str) -> str:
    """``text`` read with ``reader``, with ``line`` added at the end of its job's list ``field``, written back."""
    model = reader(text)
    job = model if model.kind == "slurm.job" else model.job
    return _edited(reader, text, **{field: (*getattr(job, field), line)})


def _inserted(text: str, after: str, line: str) -> str:
    """``text`` with ``line`` on a line of its own right after its (only) line ``after``."""
    assert text.count(after + "\n") == 1
    return text.replace(after + "\n", f"{after}\n{line}\n")


# --- finding 3: a module added goes after the script's own module commands ------------------------------------

PURGE = "#!/bin/bash\n#SBATCH --time=01:00:00\n\nmodule purge\nmodule load gcc/12\nsrun ./a.out\n"


def test_a_module_added_with_sbatch_set_goes_below_module_purge(tmp_path):
    """The audit's m1: it went above ``module purge``, which unloaded it at once."""
    assert _sbatch_from(tmp_path, PURGE, "modules=newmod/1.0") == \
        (0, _inserted(PURGE, "module load gcc/12", "module load newmod/1.0"))


@READERS
@pytest.mark.parametrize("lines, last", [
    ("module use $HOME/modulefiles\nmodule load mytool", ""),  # the audit's m3: the folder the module may be in
    ("module restore\nmodule load mytool", ""),
    ("module --force purge\nmodule load env/release/2023.1", ""),  # MeluXina
    ("ml purge\nml gcc/12", ""),
    ("source /etc/profile.d/lmod.sh\nmodule load mytool", ""),  # defines ``module`` itself
    ("cd \"$SLURM_SUBMIT_DIR\"\nexport MODULEPATH=$MODULEPATH:$HOME/modules\nmodule load mytool", ""),
    # read as the job's export, which the renderer writes below its modules
    ("export MODULEPATH=$MODULEPATH:/opt/mods", ""),
    # in a branch or a loop: after its end
    ("if [ -n \"$SITE_A\" ]; then\n  module purge\nfi\nmodule load mytool", ""),
    ("for m in gcc openmpi; do\n  module load $m\ndone\necho ready", "done"),
    # the template writes modules between set -eo pipefail and set -u: put there, the load would rewrite the script's
    # own fail-fast line into the template's two
    ("set -euo pipefail\nmodule purge", ""),
    # loads read into the job's modules, then a purge
    ("module load a  # why\nml b\nmodule purge  # clean\nmodule load c", ""),
])
def test_a_module_added_goes_after_the_last_module_command_before_the_work(reader, lines, last):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\n\n{lines}\nsrun mytool\n"
    assert _appended(reader, text, "modules", "newmod/1.0") == \
        _inserted(text, last or lines.split("\n")[-1], "module load newmod/1.0")


@READERS
@pytest.mark.parametrize("text, expected", [
    # no module command: where the renderer writes modules, above the set-up lines
    ("#!/bin/bash\n#SBATCH -N 1\nexport OMP_NUM_THREADS=4\nsrun a\n",
     "#!/bin/bash\n#SBATCH -N 1\n\nmodule load newmod\nexport OMP_NUM_THREADS=4\nsrun a\n"),
    # modules read into the model: after them, as before
    ("#!/bin/bash\n#SBATCH -N 1\nmodule load gcc\nsrun a\n",
     "#!/bin/bash\n#SBATCH -N 1\nmodule load gcc\nmodule load newmod\nsrun a\n"),
])
def test_a_module_added_without_module_commands_before_the_work_goes_where_it_went(reader, text, expected):
    assert _appended(reader, text, "modules", "newmod") == expected


@READERS
def test_a_module_command_after_the_work_began_is_no_place_for_an_added_module(reader):
    out = _appended(reader, "#!/bin/bash\n#SBATCH -N 1\nsrun a\nmodule purge\n", "modules", "newmod")
    assert out.index("module load newmod\n") < out.index("srun a\n") and out.endswith("srun a\nmodule purge\n")


def test_a_module_load_added_as_a_command_stays_at_the_end():
    """Only the loads the renderer writes for the job's modules move; a command the person adds stays last."""
    assert _appended(parse_job, PURGE, "commands", "module load late") == PURGE + "\nmodule load late\n"


def test_a_module_added_in_the_slurm_forms_modules_box_goes_below_module_purge():
    """The form shows no module for this script (its loads follow the purge, so they are set-up lines): one added
    there must not land above the purge either."""
    b = SlurmBuilder.from_script(PURGE)
    assert b.controls["modules"].value == ""
    b.controls["modules"].value = "newmod/1.0"
    assert b.text == _inserted(PURGE, "module load gcc/12", "module load newmod/1.0")


# --- finding 5: nothing is added after a trailing exit --------------------------------------------------------

EXITS = "#!/bin/bash\n#SBATCH --time=01:00:00\nsrun python train.py\nSTATUS=$?\nexit $STATUS\n"


def test_a_command_added_with_sbatch_set_goes_before_the_trailing_exit(tmp_path):
    """The audit's m12: the copy went after ``exit $STATUS`` and never ran."""
    status, out = _sbatch_from(tmp_path, EXITS, "commands=cp -r results $HOME/")
    assert (status, out) == (0, EXITS.replace("exit $STATUS", "\ncp -r results $HOME/\nexit $STATUS"))


def test_the_command_added_before_the_exit_runs_and_the_status_passed_on_is_kept(tmp_path):
    text = "#!/bin/bash\nfalse\nSTATUS=$?\nexit $STATUS\n"
    script = tmp_path / "job.sh"
    script.write_text(_appended(parse_job, text, "commands", "echo ADDED"), encoding="utf-8")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert (done.stdout, done.returncode) == ("ADDED\n", 1)


@pytest.mark.parametrize("end", ["exit", "exit 0", "exit $?", 'exit "${rc}"  # the step\'s status'])
def test_a_command_added_goes_before_an_exit_of_any_status(end):
    text = f"#!/bin/bash\n#SBATCH -N 1\nsrun a\n{end}\n"
    assert _appended(parse_job, text, "commands", "echo added") == text.replace(end, "\necho added\n" + end)


def test_comments_and_blank_lines_above_the_exit_stay_with_it():
    text = "#!/bin/bash\n#SBATCH -N 1\nsrun a \\\n  --x\n\n# pass the status on\nexit $STATUS\n"
    assert _appended(parse_job, text, "commands", "echo added") == \
        text.replace("\n# pass", "\necho added\n\n# pass")


def test_a_set_up_line_added_to_a_script_without_work_goes_before_its_exit():
    text = "#!/bin/bash\n#SBATCH -N 1\necho hi\nexit 0\n"
    assert _appended(parse_job, text, "setup", "echo set") == text.replace("exit 0", "echo set\nexit 0")


@pytest.mark.parametrize("text", [
    "#!/bin/bash\n#SBATCH -N 1\nsrun a ||\nexit 1\n",  # the exit belongs to the list: it runs only if srun fails
    "#!/bin/bash\n#SBATCH -N 1\nif ! srun a; then\n  exit 1\nfi\n",  # not the script's last command
    "#!/bin/bash\n#SBATCH -N 1\nsrun a\n# exit 0\n",  # a comment
])
def test_an_exit_that_is_not_the_scripts_last_command_keeps_added_lines_after_it(text):
    assert _appended(parse_job, text, "commands", "echo added") == text + "\necho added\n"


# --- finding 8: an option emptied leaves the rest of its line as written -------------------------------------

ORFEO = "#!/bin/bash\n#SBATCH -p DGX --ntasks-per-node=1 --nodes=1 --cpus-per-task=1 --gpus=0\nsrun hostname\n"


def test_an_option_emptied_on_a_line_of_several_takes_out_its_own_words_alone(tmp_path):
    """The audit's 06-orfeo: the rest of the line came back as ``--partition=DGX --nodes=1 …``."""
    assert _sbatch_from(tmp_path, ORFEO, "cpus_per_task=") == (0, ORFEO.replace(" --cpus-per-task=1", ""))


@READERS
@pytest.mark.parametrize("line, field, left", [
    ("-p short --qos=short", "qos", "-p short"),  # 10-cesga
    ("-p short --qos=short", "partition", "--qos=short"),
    ("-N 2 -c 4 -t 10  # sized for the test set", "cpus_per_task", "-N 2 -t 10  # sized for the test set"),
    ("-N 2 -c4 -t 10", "cpus_per_task", "-N 2 -t 10"),
    ("--time 10 --nodes 2", "time", "--nodes 2"),
    ('-J "my job" -t 10 # why', "job_name", "-t 10 # why"),
    ("--exclusive -t 10", "exclusive", "-t 10"),
    ("--tasks-per-node=4 -N 2", "ntasks_per_node", "-N 2"),
])
def test_each_spelling_of_an_emptied_option_is_taken_out_of_its_line(reader, line, field, left):
    text = f"#!/bin/bash\n#SBATCH {line}\n#SBATCH --mem=4G\nsrun a\n"
    empty = type(reader(text).job if reader is parse_script else reader(text))()
    assert _edited(reader, text, **{field: getattr(empty, field)}) == text.replace(line, left)


def test_an_option_emptied_next_to_one_edited_keeps_both_in_place():
    text = "#!/bin/bash\n#SBATCH -N 2 -c 4 -t 10  # why\nsrun a\n"
    assert _edited(parse_job, text, cpus_per_task=None, nodes=3) == \
        text.replace("-N 2 -c 4 -t 10", "-N 3 -t 10")


@pytest.mark.parametrize("line", ["#SBATCH -N 2 -c 4", "#SBATCH -c 4  # why"])
def test_a_line_left_without_options_goes(line):
    text = f"#!/bin/bash\n{line}\n#SBATCH --mem=4G\nsrun a\n"
    assert _edited(parse_job, text, nodes=None, cpus_per_task=None) == text.replace(line + "\n", "")
