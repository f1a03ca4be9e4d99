"""What the helper audit of generated scripts found (session 31): a node range the launcher's fixed --nnodes does not
follow, a per-task variable the batch shell expands once, and a torchrun with no --nnodes on several nodes. Each is a
problem of the model (a clear message naming the fix, exit status 2 on the command line), and the edit that makes a
range follows it. A step left in the batch shell of a job of several nodes is lint's (HPC552, test_lint_s31)."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.examples import examples
from hpcwidgets.lint import lint
from hpcwidgets.render import render
from hpcwidgets.spec import ApptainerRun, SlurmJob, Srun, Torchrun, Workflow
from hpcwidgets.spec._words import Verbatim
from hpcwidgets.spec.workflow import follow, followed


def problems(model, field: str) -> list[str]:
    return [p.message for p in model.problems() if p.field == field]


def multi_node() -> Workflow:
    return examples("generic")["multi-node-torchrun"].model


# --- a range of nodes -----------------------------------------------------------------------------------------------

def test_a_fixed_nnodes_under_a_node_range_is_a_problem():
    wf = multi_node()
    ranged = wf.replace(job=wf.job.replace(nodes="2-4"))
    [message] = problems(ranged, "launcher.nnodes")
    assert "2-4 nodes" in message and "$SLURM_NNODES" in message


def test_changing_the_nodes_to_a_range_makes_the_launcher_follow_the_allocation():
    wf = multi_node()
    ranged = wf.replace(job=wf.job.replace(nodes="2-4"))
    assert follow(wf, ranged)["launcher.nnodes"] == "$SLURM_NNODES"
    followed = ranged.replace(launcher=ranged.launcher.replace(nnodes="$SLURM_NNODES"))
    assert problems(followed, "launcher.nnodes") == []
    text = render(followed)
    assert '"--nnodes=$SLURM_NNODES"' in text and "#SBATCH --nodes=2-4" in text
    assert [f.code for f in lint(text) if f.severity == "error"] == []


def test_the_title_states_the_range_the_job_now_asks_for():
    wf = multi_node()
    assert "on 2 nodes" in wf.title
    ranged = wf.replace(job=wf.job.replace(nodes="2-4"))
    assert "on 2-4 nodes" in follow(wf, ranged, given=("job.nodes",))["title"]


def test_the_command_line_edit_to_a_range_writes_a_launcher_that_follows(tmp_path, capsys):
    model = tmp_path / "mn.json"
    assert main(["examples", "multi-node-torchrun", "--format", "json", "-o", str(model)]) == 0
    code = main(["workflow", "--from", str(model), "--set", "job.nodes=2-4"])
    out, err = capsys.readouterr()
    assert code == 0 and '"--nnodes=$SLURM_NNODES"' in out and "HPC112" not in err


def test_lint_reports_a_fixed_nnodes_in_a_script_that_asks_for_a_range():
    text = render(multi_node()).replace("#SBATCH --nodes=2\n", "#SBATCH --nodes=2-4\n")
    [finding] = [f for f in lint(text) if f.code == "HPC112"]
    assert "2-4 nodes" in finding.message and "rejects the extra launchers" in finding.message


def test_lint_leaves_an_elastic_nnodes_range_alone():
    text = render(multi_node()).replace("#SBATCH --nodes=2\n", "#SBATCH --nodes=2-4\n").replace(
        "--nnodes=2 ", "--nnodes=2:4 ")
    assert "--nnodes=2:4" in text and [f for f in lint(text) if f.code == "HPC112"] == []


# --- a task's own number, expanded by the batch shell ----------------------------------------------------------------

def step(program, nodes=2) -> Workflow:
    return Workflow(job=SlurmJob(nodes=nodes, time="00:05:00"), srun=Srun(), program=program)


def test_a_per_task_variable_in_a_bash_c_script_names_the_escape():
    [message] = problems(step(("bash", "-c", "echo rank $SLURM_PROCID on $(hostname)")), "program")
    assert "expanded once by the batch shell" in message and "write \\$SLURM_PROCID in the -c script" in message


def test_a_per_task_variable_as_an_argument_names_reading_it_in_the_program():
    [message] = problems(step(("python", "train.py", "--rank", "${SLURM_LOCALID}")), "program")
    assert "os.environ['SLURM_LOCALID']" in message


@pytest.mark.parametrize("program", [
    ("bash", "-c", "echo rank \\$SLURM_PROCID"),            # escaped: each task's shell expands it
    ("bash", "-c", Verbatim("'echo rank $SLURM_PROCID'")),  # read back from a script, kept as written
    ("python", "train.py", "--job", "$SLURM_JOB_ID"),        # the same for every task
])
def test_what_each_task_expands_or_all_share_passes(program):
    assert problems(step(program), "program") == []


def test_an_escaped_per_task_variable_renders_for_each_task_to_expand():
    text = render(step(("bash", "-c", "echo rank \\$SLURM_PROCID")))
    assert 'srun bash -c "echo rank \\$SLURM_PROCID"' in text
    assert [f for f in lint(text) if f.code == "HPC502"] == []


def test_the_command_line_refuses_a_single_quoted_script_it_would_expand(capsys):
    code = main(["workflow", "--set", "job.nodes=2", "--set", "job.time=00:05:00", "--srun", "srun",
                 "--program", "bash -c 'echo rank $SLURM_PROCID'"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "\\$SLURM_PROCID" in err


# --- a torchrun that does not know the nodes ---------------------------------------------------------------------

def test_a_torchrun_without_nnodes_on_several_nodes_is_a_problem():
    wf = Workflow(job=SlurmJob(nodes=4, gpus_per_node=4, time="01:00:00"), srun=Srun(),
                  container=ApptainerRun(image="img.sif", nv=True),
                  launcher=Torchrun(script="train.py", nproc_per_node="4"))
    [message] = problems(wf, "launcher.nnodes")
    assert "--nnodes=4" in message and "each node trains alone" in message
    one = wf.replace(job=wf.job.replace(nodes=1))
    assert problems(one, "launcher.nnodes") == []



# --- a job grown to several nodes, or back: the rendezvous and srun follow ---------------------------------------------

def test_a_single_node_torchrun_grown_to_two_nodes_gets_the_multi_node_pattern():
    wf = Workflow.single_node("train.py", gpus_per_node=4, image="img.sif")
    assert wf.launcher.standalone and wf.srun is None
    two = wf.replace(job=wf.job.replace(nodes=2))
    grown = followed(wf, two)
    assert grown.problems() == []
    assert (grown.launcher.standalone, grown.launcher.rdzv_backend, grown.launcher.rdzv_endpoint,
            grown.launcher.rdzv_id, grown.launcher.nnodes) == (False, "c10d", "$head_node:29500", "$SLURM_JOB_ID", "2")
    assert grown.srun is not None and grown.srun.ntasks_per_node == 1
    assert [f for f in lint(render(grown)) if f.severity == "error"] == []
    back = followed(grown, grown.replace(job=grown.job.replace(nodes=1)))
    assert (back.launcher.standalone, back.launcher.rdzv_backend, back.launcher.rdzv_endpoint) == (True, "", "")
    assert back.problems() == []


def test_a_rendezvous_the_person_wrote_or_gave_stays():
    wf = Workflow.single_node("train.py", gpus_per_node=4, image="img.sif")
    two = wf.replace(job=wf.job.replace(nodes=2))
    assert "launcher.standalone" not in follow(wf, two, given=("launcher.standalone",))
    assert "launcher.rdzv_endpoint" not in follow(wf, two, given=("launcher",))
    mine = multi_node().replace(launcher=multi_node().launcher.replace(rdzv_endpoint="$MASTER_ADDR:29400"))
    one = mine.replace(job=mine.job.replace(nodes=1))
    assert "launcher.standalone" not in follow(mine, one)  # not the pattern's own endpoint: left as written


def test_the_form_grown_to_two_nodes_turns_srun_on_and_renders_at_once():
    from hpcwidgets.widgets import WorkflowBuilder
    b = WorkflowBuilder(submit=False)
    assert b.controls["launcher.standalone"].value is True
    b.controls["job.nodes"].value = "2"
    assert not b.stale and [f for f in b.findings if f.severity == "error"] == []
    assert b.controls["launcher.standalone"].value is False
    assert b.controls["launcher.rdzv_endpoint"].value == "$head_node:29500"
    assert "srun --ntasks-per-node=1" in b.text and "--nnodes=2" in b.text
    b.controls["job.nodes"].value = "1"
    assert not b.stale and "--standalone" in b.text
