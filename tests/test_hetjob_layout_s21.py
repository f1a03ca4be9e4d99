"""Session 21, F-layout: an edit of a heterogeneous job's script keeps each #SBATCH line in its component.

In a heterogeneous job each component, after its ``#SBATCH hetjob`` (``packjob``, the old name), takes options of
its own; the model's job fields are the first component's, the later components' lines are kept as written in
``extra_directives`` after the separator. A directive an edit adds to the job (a time limit, memory) goes with the
first component's lines, before the first separator: below it, sbatch would give it to the last component and the
script would read back with the job's time empty. A line added to a later component's options goes with that
component's lines. A line of a later component is no line of the first component's, even when it holds the same
option: emptying a field of the job leaves the later component's line in its place.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.render import render
from test_cli_s18 import run  # the CLI run that also asserts no traceback

#: two components: the added time and memory are the first's
TWO = """#!/bin/bash
#SBATCH --partition=cpu
#SBATCH --ntasks=3
#SBATCH hetjob
#SBATCH --partition=gpu
#SBATCH --ntasks=1

srun --het-group=0 hostname : --het-group=1 hostname
"""
#: several options on one line in each component, a name and output spelt with a space, trailing blanks
ONE_LINE_EACH = """#!/bin/bash
# steps on two nodes
#SBATCH --partition=batch
#SBATCH --job-name parallel   
#SBATCH --output slurm-%j.out   
#SBATCH -N1 -n3 --nodelist=node035 
#SBATCH hetjob
#SBATCH -N1 -n1 --nodelist=node036


srun -n 1 --het-group=0 --exclusive bash -c "sleep 5; echo one" &
srun -n 1 --het-group=1 --exclusive bash -c "sleep 5; echo two" &
wait
"""
#: blank lines around the separator, an option the model has no field for in both components
SPACED = """#!/bin/bash
# a classical part and a quantum part

#SBATCH --qpu=backend_a
#SBATCH --job-name=split
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --partition normal

#SBATCH hetjob

#SBATCH --gres=qpu:1
#SBATCH --qpu=backend_a
#SBATCH --partition quantum

srun --het-group=0 python prepare.py
srun --het-group=1 runner backend_a input.json output.json
"""
#: the same options in both components' lines, the first with a time limit
SAME_OPTIONS = """#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --nodes=1 --ntasks=1 --cpus-per-task=64
#SBATCH hetjob
#SBATCH --nodes=1 --ntasks=1 --cpus-per-task=8 --gres=gpu:1
srun --het-group=1 apptainer exec img.sif python train.py
srun --het-group=0 apptainer exec --nv img.sif python prep.py
"""
#: no line of the first component's; an #SBATCH line after the first command, which sbatch ignores
FIRST_EMPTY = """#!/bin/bash
# a job in two parts
#SBATCH hetjob
#SBATCH --partition=gpu
#SBATCH --ntasks=1

srun hostname
#SBATCH --time=00:05:00
"""
#: three components, the separators spelt packjob and HETJOB, one line alike in each
THREE = """#!/bin/bash
#SBATCH --ntasks=1
#SBATCH packjob
#SBATCH --ntasks=1
#SBATCH HETJOB
#SBATCH --ntasks=1  # the third
srun hostname
"""


def _bash_n(text: str) -> None:
    done = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


def _edited(text: str, workflow: bool = False, **changes) -> tuple[str, object]:
    """``text`` read back (as a job, or as a workflow), its job given ``changes``, written; the text, checked with
    ``bash -n`` and read back again, and the job as read back."""
    if workflow:
        model = parse_script(text)
        edited = model.replace(job=model.job.replace(**changes))
        out = render(edited, validate=False)
        back, job = parse_script(out).job, edited.job
    else:
        job = parse_job(text).replace(**changes)
        out = render(job, validate=False)
        back = parse_job(out)
    _bash_n(out)
    for name in (*changes, "extra_directives"):
        assert getattr(back, name) == getattr(job, name), (name, out)
    return out, back


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _component_lines(text: str) -> list[list[str]]:
    """The #SBATCH lines of each component, in order, as written."""
    parts: list[list[str]] = [[]]
    for line in _lines(text)[1:]:
        if line.strip() and not line.startswith("#"):
            break  # the first command: sbatch reads no #SBATCH line below it
        if not line.startswith("#SBATCH"):
            continue
        words = line.split()
        if len(words) > 1 and words[1].lower() in ("hetjob", "packjob"):
            parts.append([])
        parts[-1].append(line)
    return parts


@pytest.mark.parametrize("workflow", [False, True], ids=["job", "workflow"])
def test_added_directives_go_with_the_first_components_lines(workflow):
    out, back = _edited(TWO, workflow, time="02:00:00", mem="4G")
    assert (back.time, back.mem) == ("02:00:00", "4G")
    assert back.extra_directives == ("hetjob", "--partition=gpu", "--ntasks=1")
    first, second = _component_lines(out)
    assert first == ["#SBATCH --partition=cpu", "#SBATCH --ntasks=3", "#SBATCH --mem=4G", "#SBATCH --time=02:00:00"]
    assert second == ["#SBATCH hetjob", "#SBATCH --partition=gpu", "#SBATCH --ntasks=1"]
    # nothing else moved: the added lines are the whole difference
    assert [line for line in _lines(out) if line not in ("#SBATCH --mem=4G", "#SBATCH --time=02:00:00")] == _lines(TWO)


def test_a_value_of_the_first_component_is_still_changed_in_place():
    out, _ = _edited(TWO, ntasks=4)
    assert out == TWO.replace("--ntasks=3", "--ntasks=4")


def test_an_added_directive_goes_below_the_first_components_line_of_several_options():
    out, back = _edited(ONE_LINE_EACH, mem="4G")
    assert back.mem == "4G" and back.nodes == 1 and back.ntasks == 3
    assert out == ONE_LINE_EACH.replace("--nodelist=node035 \n", "--nodelist=node035 \n#SBATCH --mem=4G\n")


def test_added_directives_stay_above_the_blank_lines_around_the_separator():
    out, back = _edited(SPACED, time="02:00:00", mem="4G")
    assert back.partition == "normal"
    added = "#SBATCH --mem=4G\n#SBATCH --time=02:00:00\n"
    assert out == SPACED.replace("--partition normal\n", "--partition normal\n" + added)


def test_a_field_emptied_takes_out_the_first_components_line_only():
    out, back = _edited(SPACED, workflow=True, partition="", time="02:00:00")
    assert back.partition == "" and back.time == "02:00:00"
    assert "#SBATCH --partition quantum" in _component_lines(out)[1]
    assert out == SPACED.replace("#SBATCH --partition normal\n", "#SBATCH --time=02:00:00\n")


def test_a_later_components_line_with_the_same_options_is_no_line_of_the_first():
    model = parse_job(SAME_OPTIONS)
    layout = model.layout
    first, later = (layout.source_groups[k] for k in (2, 4))
    assert first != later  # each line its own group, though both write --nodes=1 --ntasks=1
    out, back = _edited(SAME_OPTIONS, workflow=True, time="", cpus_per_task=None)
    assert back.time == "" and back.cpus_per_task is None
    assert out == SAME_OPTIONS.replace("#SBATCH --time=01:00:00\n", "").replace(
        "--ntasks=1 --cpus-per-task=64", "--ntasks=1")


def test_a_value_changed_on_a_line_of_several_options_leaves_the_later_component():
    out, back = _edited(SAME_OPTIONS, cpus_per_task=16, nodes=2)
    assert (back.cpus_per_task, back.nodes) == (16, 2)
    assert out == SAME_OPTIONS.replace("--nodes=1 --ntasks=1 --cpus-per-task=64",
                                       "--nodes=2 --ntasks=1 --cpus-per-task=16")


@pytest.mark.parametrize("workflow", [False, True], ids=["job", "workflow"])
def test_a_first_component_without_lines_gets_the_added_directive_above_the_separator(workflow):
    out, back = _edited(FIRST_EMPTY, workflow, time="02:00:00")
    assert back.time == "02:00:00"
    first, second = _component_lines(out)[:2]
    assert first == ["#SBATCH --time=02:00:00"]
    assert second == ["#SBATCH hetjob", "#SBATCH --partition=gpu", "#SBATCH --ntasks=1"]
    assert out == FIRST_EMPTY.replace("#!/bin/bash\n", "#!/bin/bash\n#SBATCH --time=02:00:00\n", 1)
    assert out.endswith("srun hostname\n#SBATCH --time=00:05:00\n")  # the ignored line stays where it was


def test_three_components_spelt_packjob_and_hetjob():
    out, back = _edited(THREE, time="02:00:00", ntasks=4)
    assert (back.time, back.ntasks) == ("02:00:00", 4)
    parts = _component_lines(out)
    assert len(parts) == 3 and all(line.startswith("#SBATCH --ntasks=4") for line in parts[0])
    assert "--time=02:00:00" in parts[0][-1]
    assert parts[1:] == [["#SBATCH packjob", "#SBATCH --ntasks=1"],
                         ["#SBATCH HETJOB", "#SBATCH --ntasks=1  # the third"]]


def test_the_first_components_only_line_taken_out_leaves_the_others():
    out, back = _edited(THREE, ntasks=None)
    assert back.ntasks is None
    assert out == THREE.replace("#SBATCH --ntasks=1\n", "", 1)


@pytest.mark.parametrize("component,at", [(1, 2), (2, 4)])
def test_a_line_added_to_a_later_component_goes_with_its_lines(component, at):
    written = parse_job(THREE).extra_directives
    assert written == ("packjob", "--ntasks=1", "hetjob", "--ntasks=1")  # read in any case
    extras = (*written[:at], "--time=00:10:00", *written[at:])
    out, back = _edited(THREE, extra_directives=extras)
    assert _component_lines(out)[component][-1] == "#SBATCH --time=00:10:00"
    assert back.time == "" and back.ntasks == 1


def test_the_command_line_edit_of_a_heterogeneous_job(tmp_path: Path, capsys):
    source = tmp_path / "het.sh"
    source.write_text(TWO)
    out = tmp_path / "out.sh"
    code, _, err = run(capsys, "sbatch", "--from", str(source), "--set", "time=02:00:00", "--set", "mem=4G",
                       "-o", str(out))
    assert code == 0, err
    text = out.read_text()
    _bash_n(text)
    assert _component_lines(text)[0][-2:] == ["#SBATCH --mem=4G", "#SBATCH --time=02:00:00"]
    back = parse_job(text)
    assert (back.time, back.mem) == ("02:00:00", "4G")
    assert back.extra_directives == ("hetjob", "--partition=gpu", "--ntasks=1")
    code, _, err = run(capsys, "workflow", "--from", str(source), "--set", "job.time=03:00:00", "-o",
                       str(tmp_path / "wf.sh"))
    assert code == 0, err
    text = (tmp_path / "wf.sh").read_text()
    _bash_n(text)
    assert _component_lines(text)[0][-1] == "#SBATCH --time=03:00:00"
    assert parse_script(text).job.time == "03:00:00"
