"""The read-back layout under the edits the session-18 audit found going wrong (/tmp/s18/a4/REPORT.md F1, F2, F5):
an item added to a list at the end of the script, a directive added to a script with an #SBATCH line after its first
command, and a field emptied whose #SBATCH line carried a comment. Each next to the nearby edits that must stay as
they were (tests/test_readback_layout.py and tests/test_readback_comments.py hold the rest)."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.render import render

READERS = pytest.mark.parametrize("reader", [parse_script, parse_job], ids=["workflow", "job"])


def _edited(reader, text: str, **fields) -> str:
    """``text`` read with ``reader``, its job's ``fields`` changed, written back."""
    model = reader(text)
    if model.kind == "slurm.job":
        return render(model.replace(**fields), validate=False)
    return render(model.replace(job=model.job.replace(**fields)), validate=False)


def _appended(text: str, field: str, line: str) -> str:
    """``text`` read as a job, with ``line`` added at the end of its list ``field``, written back."""
    job = parse_job(text)
    return render(job.replace(**{field: (*getattr(job, field), line)}), validate=False)


def _sbatch_from(tmp_path, text: str, *sets: str) -> tuple[int, str]:
    """``hpcwidgets sbatch --from`` a file holding ``text`` with ``--set``s: its exit status and the file written."""
    source, out = tmp_path / "in.sbatch", tmp_path / "out.sbatch"
    source.write_text(text, encoding="utf-8")
    args = ["sbatch", "--from", str(source), "-o", str(out), "--force"]
    for item in sets:
        args += ["--set", item]
    status = main(args)
    return status, out.read_text(encoding="utf-8") if out.exists() else ""


# --- F1: lines the renderer writes last -------------------------------------------------------------------------

def test_a_command_added_to_a_script_read_back_goes_after_its_lines(tmp_path):
    """The crash: a line added at the very end of the rendered script had no rendered line to stand before."""
    text = "#!/bin/bash\nsrun hostname\n"
    assert _sbatch_from(tmp_path, text, "commands=echo hi") == (0, text + "\necho hi\n")


@pytest.mark.parametrize("item, line", [("modules=foo", "module load foo"), ("setup=mkdir -p out", "mkdir -p out")])
def test_a_list_item_added_to_a_script_of_directives_alone_goes_below_them(tmp_path, item, line):
    status, out = _sbatch_from(tmp_path, "#!/bin/bash\n#SBATCH -N 1\n", item)
    assert (status, out) == (0, f"#!/bin/bash\n#SBATCH -N 1\n\n{line}\n")


def test_a_command_added_goes_after_a_last_comment_line_too():
    text = "#!/bin/bash\n#SBATCH -N 1\nsrun hostname\n# the end\n"
    assert _appended(text, "commands", "echo hi") == text + "\necho hi\n"


def test_a_command_added_to_a_script_without_a_final_line_break_keeps_it_so():
    text = "#!/bin/bash\n#SBATCH -N 1\nsrun hostname"
    assert _appended(text, "commands", "echo hi") == text + "\n\necho hi"


def test_the_lines_of_a_script_that_ends_in_blank_lines_stay_as_they_were():
    text = "#!/bin/bash\n#SBATCH -N 1\n\nsrun hostname\n\n"
    assert _appended(text, "commands", "echo hi") == "#!/bin/bash\n#SBATCH -N 1\n\nsrun hostname\n\necho hi\n\n"


def test_the_forms_commands_box_works_on_a_script_loaded():
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets import SlurmBuilder
    builder = SlurmBuilder()
    assert builder.load("#!/bin/bash\nsrun hostname\n")
    box = builder.controls["commands"]
    box.value = "\n".join(line for line in (box.value, "echo hi") if line)
    assert not builder.stale and builder.text == "#!/bin/bash\nsrun hostname\n\necho hi\n"
    assert not any("IndexError" in finding.message for finding in builder.findings)


# --- F2: an #SBATCH line after the first command ----------------------------------------------------------------

AFTER_HEREDOC = "#!/bin/bash\n#SBATCH --nodes=1\n: <<\"DOC\"\nnotes\nDOC\n#SBATCH --partition=gpu\nsrun python x.py\n"
AFTER_SET_E = ("#!/bin/bash\n#SBATCH --job-name=train\n#SBATCH --gres=gpu:4\nset -euo pipefail\n#SBATCH --time=01:00:00\n"
               "module load apptainer\nsrun python train.py\n")


@READERS
def test_a_directive_added_goes_among_those_sbatch_reads_not_next_to_an_ignored_one(reader):
    assert _edited(reader, AFTER_HEREDOC, partition="cpu") == \
        AFTER_HEREDOC.replace("--nodes=1\n", "--nodes=1\n#SBATCH --partition=cpu\n")
    assert _edited(reader, AFTER_SET_E, time="02:00:00") == \
        AFTER_SET_E.replace("gpu:4\n", "gpu:4\n#SBATCH --time=02:00:00\n")


def test_the_ignored_line_stays_as_written_and_lint_reports_it_alone(tmp_path):
    status, out = _sbatch_from(tmp_path, AFTER_SET_E, "time=02:00:00")
    assert status == 1 and "set -euo pipefail\n#SBATCH --time=01:00:00\n" in out  # the script's own mistake: exit 1
    assert [(f.code, f.line) for f in lint(out) if f.code == "HPC501"] == [("HPC501", 6)]


@READERS
def test_without_a_directive_sbatch_reads_one_added_goes_right_below_the_shebang(reader):
    text = "#!/bin/bash\n\n# setup\nmodule load foo\n#SBATCH --nodes=1\nsrun python x.py\n"
    assert _edited(reader, text, time="02:00:00") == text.replace("#!/bin/bash\n", "#!/bin/bash\n#SBATCH --time=02:00:00\n")


def test_without_a_shebang_a_directive_added_goes_above_the_first_line():
    assert _edited(parse_script, "srun hostname\n", time="10") == "#SBATCH --time=10\nsrun hostname\n"


@READERS
def test_a_directive_sbatch_reads_is_still_changed_in_its_place_beside_an_ignored_one(reader):
    text = "#!/bin/bash\n#SBATCH -t 10\n#SBATCH -N 1\nmodule load gcc\n#SBATCH -t 20\nsrun python x.py\n"
    assert _edited(reader, text, time="30") == text.replace("-t 10", "-t 30")
    assert _edited(reader, text, account="lab") == text.replace("-N 1\n", "-N 1\n#SBATCH --account=lab\n")


# --- F5: a field emptied, with comments on or above its line ----------------------------------------------------

BASE = ("#!/bin/bash\n#SBATCH --job-name=train\n#SBATCH --nodes=1\n#SBATCH --time=01:00:00   # one hour\n"
        "#SBATCH --gres=gpu:4\nset -euo pipefail\nmodule load apptainer\nexport OMP_NUM_THREADS=1\n"
        "srun apptainer exec --nv image.sif torchrun --standalone --nproc-per-node=4 train.py\n")


@READERS
def test_a_field_emptied_takes_the_comment_on_its_line_with_it(reader):
    assert _edited(reader, BASE, time="") == BASE.replace("#SBATCH --time=01:00:00   # one hour\n", "")


def test_a_field_emptied_on_the_command_line_takes_its_comment_with_it(tmp_path):
    assert _sbatch_from(tmp_path, BASE, "time=") == (0, BASE.replace("#SBATCH --time=01:00:00   # one hour\n", ""))


@READERS
def test_the_comment_lines_above_a_field_emptied_stay_where_they_are(reader):
    text = ("#!/bin/bash\n#SBATCH -J demo\n# keep it short for the debug queue\n##SBATCH --gres=gpu:2\n"
            "#SBATCH -t 10  # ten minutes\n#SBATCH -N 1\n\nsrun python t.py\n")
    assert _edited(reader, text, time="") == text.replace("#SBATCH -t 10  # ten minutes\n", "")
    last = text.replace("#SBATCH -N 1\n", "")  # the emptied line is the last #SBATCH line
    assert _edited(reader, last, time="") == last.replace("#SBATCH -t 10  # ten minutes\n", "")


@READERS
def test_two_fields_emptied_keep_the_comment_lines_above_each(reader):
    text = "#!/bin/bash\n# how many\n#SBATCH -N 2\n# how long\n#SBATCH -t 10  # short\n#SBATCH -J x\nsrun t\n"
    assert _edited(reader, text, nodes=None, time="") == "#!/bin/bash\n# how many\n# how long\n#SBATCH -J x\nsrun t\n"


@READERS
@pytest.mark.parametrize("line", ["--time=01:00:00 --nodes=2", "--nodes=2 --time=01:00:00"])
def test_an_option_emptied_on_a_line_of_several_leaves_the_line_its_comment(reader, line):
    text = f"#!/bin/bash\n#SBATCH {line}  # resources\n#SBATCH -J x\nsrun python t.py\n"
    assert _edited(reader, text, time="") == "#!/bin/bash\n#SBATCH --nodes=2  # resources\n#SBATCH -J x\nsrun python t.py\n"


def test_a_module_taken_out_takes_its_comment_and_leaves_the_line_above():
    text = "#!/bin/bash\n#SBATCH -t 10\nmodule load gcc\n# for the GPU build\nmodule load cuda  # 12.1\nsrun python t.py\n"
    for reader in (parse_script, parse_job):
        assert _edited(reader, text, modules=("gcc",)) == text.replace("module load cuda  # 12.1\n", "")


@READERS
def test_a_value_changed_keeps_its_comment_on_its_line(reader):
    assert _edited(reader, BASE, time="02:00:00") == BASE.replace("01:00:00", "02:00:00")
