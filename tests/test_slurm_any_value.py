"""A SlurmJob never raises for what its fields hold: the directive reader puts text in whole-number fields
(``--nodes=1-2``, ``--gpus=a100:8``, ``--ntasks=$N``), forms hold half-typed input, JSON may carry anything.
Every property, ``problems()``, the site checks and ``render(validate=False)`` must answer with a problem
message, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.render import render
from hpcwidgets.render.script import directive_lines
from hpcwidgets.spec import SlurmJob
from hpcwidgets.spec.profile import check_job

INT_FIELDS = [f.name for f in SlurmJob.field_specs() if f.base_type is int and not f.is_tuple]
#: the fields the GPU directive and the count properties read besides the whole-number ones
GPU_FIELDS = ["gpu_type", "gpu_flag", "other_gres"]
PROFILES = [load_profile("generic"), load_profile("local")]

odd_values = st.one_of(
    st.none(), st.text(max_size=12), st.integers(-(10**30), 10**30), st.sampled_from([0, -1, 10**100, True, False]),
    st.floats(allow_nan=True), st.sampled_from(["2-4", "4-2", "a100:8", "a100:0", "1-2-3", "$N", "", " ", "0", "-3"]),
    st.lists(st.integers(), max_size=2), st.tuples(st.text(max_size=3)),
)


def exercise(job: SlurmJob) -> None:
    problems = job.problems()
    assert all(p.message for p in problems)
    assert isinstance(job.node_count, int) and job.node_count >= 1
    assert isinstance(job.gpus_on_each_node, int)
    assert isinstance(job.gres(), str)
    assert all(isinstance(line, str) and "\n" not in line for line in directive_lines(job))
    assert render(job, validate=False).startswith("#!/bin/bash\n")
    for profile in PROFILES:
        check_job(profile, job)


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("value", [None, "", "text", "2-4", "a100:8", "$SLURM_NNODES", -1, 0, 10**30, 2.5, True, [1]])
def test_each_int_field_copes_with_any_value(name, value):
    exercise(SlurmJob(**{name: value}))
    # and next to the fields it is computed with
    exercise(SlurmJob(**{name: value}, nodes=2, ntasks=4, ntasks_per_node=2, gpus_per_task=1) if name not in
             ("nodes", "ntasks", "ntasks_per_node", "gpus_per_task") else SlurmJob(**{name: value}, gpus=8))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={name: odd_values for name in INT_FIELDS + GPU_FIELDS}))
def test_any_mix_of_values_gives_problems_not_exceptions(values):
    exercise(SlurmJob(**values))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([f.name for f in SlurmJob.field_specs()]), odd_values)
def test_problems_never_raise_whatever_any_field_holds(name, value):
    assert isinstance(SlurmJob(**{name: value}).problems(), list)


@pytest.mark.parametrize("directives", [
    "#SBATCH --nodes=1-2\n#SBATCH --ntasks=4\n#SBATCH --ntasks-per-node=2\n",
    "#SBATCH --gpus=a100:8\n#SBATCH --nodes=2\n",
    "#SBATCH --nodes=2-4\n#SBATCH --gpus=a100:8\n#SBATCH --gpus-per-task=x\n",
    "#SBATCH --nodes=x\n#SBATCH --gpus=y\n#SBATCH --ntasks=$N\n#SBATCH --ntasks-per-node=z\n",
])
def test_lint_reports_instead_of_crashing(directives):
    text = "#!/bin/bash\n" + directives + "srun python train.py\n"
    for profile in (None, *PROFILES):
        findings = lint(text, profile)
        assert all(f.code != "HPC000" for f in findings)


def test_lint_with_a_node_range_and_the_node_count_variable():
    text = ("#!/bin/bash\n#SBATCH --nodes=2-4\nsrun --ntasks-per-node=1 apptainer exec --nv i.sif torchrun "
            "--nnodes=$SLURM_JOB_NUM_NODES --nproc-per-node=$SLURM_NTASKS_PER_NODE train.py\n")
    assert "HPC000" not in {f.code for f in lint(text)}  # the count is unknown before the job runs: no finding, no crash
