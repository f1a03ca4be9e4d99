"""Job scripts sbatch runs with another interpreter (Python, R, Julia, csh: the ``#!`` line names it) are not shell:
lint checks only what sbatch reads of them, their ``#SBATCH`` lines, and the workflow reader refuses them (written
back as a bash script, the program's own lines would run as shell commands). A bash header that hands the file to
another program (``exec julia "${BASH_SOURCE[0]}"``) ends the shell there."""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ParseError
from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.script import reachable_text, runs_in_a_shell
from hpcwidgets.spec.slurm import shebang_program

PYTHON = """#!/usr/bin/env python3
#SBATCH --ntasks=1
#SBATCH --time=1.5h
import os
batch_size = 64
lr = 0.1
out_file = "out.txt"
print(os.environ.get("SLURM_CPUS_PER_TASK"), batch_size, lr, out_file)
"""
R_SCRIPT = """#!/usr/bin/env Rscript
#SBATCH --ntasks=1
#SBATCH --time=00:10:00
x <- c(1, 2, 3)
if (length(x) > 2) { cat("ok\\n") }
"""
CSH = """#!/bin/csh -f
#SBATCH --ntasks=1
#SBATCH --time=00:10:00
setenv OMP_NUM_THREADS 4
foreach i (1 2 3)
  echo $i
end
"""
JULIA_BEHIND_BASH = """#!/bin/bash
#=
#SBATCH --ntasks=1
#SBATCH --time=00:10:00
exec julia --startup-file=no "${BASH_SOURCE[0]}" "$@"
=#
nworkers = 4
println(nworkers)
"""


@pytest.mark.parametrize("first, program, shell", [
    ("#!/bin/bash -l", "bash", True), ("#!/usr/bin/env -S bash -l", "bash", True), ("#!/bin/sh", "sh", True),
    ("#!/usr/bin/env python3 -u", "python3", False), ("#!/usr/bin/env -u X Rscript", "Rscript", False),
    ("#!/bin/tcsh -f", "tcsh", False), ("#SBATCH -N 1", "", True),
])
def test_the_interpreter_of_the_first_line(first, program, shell):
    assert shebang_program(first + "\n") == program and runs_in_a_shell(first + "\n") is shell


@pytest.mark.parametrize("text", [PYTHON, R_SCRIPT, CSH])
def test_only_the_sbatch_lines_of_a_script_in_another_language_are_checked(text):
    found = lint(text)
    assert "HPC000" not in [f.code for f in found]           # no "cannot read the script"
    assert "HPC520" not in [f.code for f in found]           # batch_size = 64 is Python, not a broken assignment
    if text is PYTHON:
        assert [f.code for f in found] == ["HPC301"]          # --time=1.5h: sbatch reads it, and refuses it


def test_a_directive_after_the_programs_first_line_is_still_reported():
    text = PYTHON.replace("#SBATCH --time=1.5h\nimport os\n", "import os\n#SBATCH --time=00:10:00\n")
    assert "HPC501" in [f.code for f in lint(text)]  # sbatch stops reading #SBATCH lines at the first other line


@pytest.mark.parametrize("read", [parse_script, parse_job])
def test_the_reader_refuses_a_script_in_another_language(read):
    with pytest.raises(ParseError, match="runs with python3 .* not a shell"):
        read(PYTHON)


def test_a_bash_header_that_execs_another_program_ends_the_shell():
    assert "HPC520" not in [f.code for f in lint(JULIA_BEHIND_BASH)]
    assert reachable_text(JULIA_BEHIND_BASH).split("\n")[6:] == ["", "", ""]
    # an exit inside a here-document or a block is no end of the script
    for text in ("#!/bin/bash\ncat <<EOF\nexit\nEOF\nnworkers = 4\n", "#!/bin/bash\nif true; then\nexit 1\nfi\nn = 4\n"):
        assert reachable_text(text) == text and "HPC520" in [f.code for f in lint(text)]
