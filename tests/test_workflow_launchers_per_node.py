"""A workflow's check of how many torchrun launchers srun starts on each node agrees with lint's HPC101: srun takes
the job's --ntasks-per-node, and the job's task count (SLURM_NTASKS) wins over srun's own --ntasks-per-node=1."""

from __future__ import annotations

import pytest

from hpcwidgets import lint, render
from hpcwidgets.spec import Srun, Workflow


def workflow(job: dict, srun: dict) -> Workflow:
    wf = Workflow.multi_node("train.py", nodes=2, gpus_per_node=4, image="img.sif", partition="gpu", time="01:00:00")
    return wf.replace(job=wf.job.replace(**job), srun=Srun(**srun))


def launch_problems(wf: Workflow) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in wf.problems() if "launchers" in p.message]


@pytest.mark.parametrize("job, srun, field, says", [
    ({"ntasks_per_node": 4}, {}, "job.ntasks_per_node", "use the job's --ntasks-per-node=1"),
    ({"ntasks_per_node": 4}, {"ntasks_per_node": 1}, "job.ntasks_per_node", "SLURM_NTASKS=8"),
    ({"ntasks_per_node": None, "ntasks": 8}, {"ntasks_per_node": 1}, "job.ntasks", "SLURM_NTASKS=8"),
    ({"ntasks_per_node": 1}, {"ntasks_per_node": 4}, "srun.ntasks_per_node", "use --ntasks-per-node=1"),
])
def test_several_launchers_per_node_are_reported_at_the_field_to_change(job, srun, field, says):
    wf = workflow(job, srun)
    (found_field, message), = launch_problems(wf)
    assert found_field == field and says in message
    assert "HPC101" in {f.code for f in lint(render(wf, validate=False))}  # lint says the same of the script


@pytest.mark.parametrize("job, srun", [
    ({"ntasks_per_node": 1}, {}),
    ({"ntasks_per_node": 1}, {"ntasks_per_node": 1}),
    ({"ntasks_per_node": 4}, {"ntasks": 2, "ntasks_per_node": 1}),   # srun's own task count wins
])
def test_one_launcher_per_node_passes_here_and_in_lint(job, srun):
    wf = workflow(job, srun)
    assert not launch_problems(wf)
    assert "HPC101" not in {f.code for f in lint(render(wf, validate=False))}
