"""Session 17: one edit of the job means the same in the form and on the command line.

The rule of what follows what (nodes → torchrun's --nnodes; GPUs per node → --nproc-per-node and the container's
--nv/--rocm) lives in the model (:func:`hpcwidgets.spec.workflow.follow`); the workflow form and ``hpcwidgets workflow
--set`` both apply it, and a value the person gives (typed in the form, given on the same command line) wins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.parse import parse_script
from hpcwidgets.spec.workflow import Workflow, follow, followed, gpu_vendor_of, make_container
from hpcwidgets.widgets import WorkflowBuilder

CORPUS = Path(__file__).parent / "data" / "corpus"


def cli_text(tmp_path: Path, capsys, script: str, *args: str) -> tuple[int, str, str]:
    """``hpcwidgets workflow --from CORPUS/script ARGS -o FILE``: its exit status, the file written, its stderr."""
    out = tmp_path / "out.sh"
    code = main(["workflow", "--from", str(CORPUS / script), *args, "-o", str(out), "--force"])
    err = capsys.readouterr().err
    return code, out.read_text() if out.exists() else "", err


def form_text(script: str, *edits: tuple[str, str]) -> str:
    """The workflow form's preview of ``script`` after setting each control in turn, as a person types."""
    b = WorkflowBuilder.from_script((CORPUS / script).read_text(), submit=False)
    for name, value in edits:
        b.controls[name].value = value
    assert not b.stale, [f.message for f in b.findings if f.severity == "error"]
    return b.text


# ------------------------------------------------------------------------------------------------
# the model's rule

def multi_node(**kw) -> Workflow:
    return Workflow.multi_node("train.py", nodes=2, gpus_per_node=4, image="i.sif", **kw)


def test_follow_names_the_fields_as_set_does():
    before = multi_node()
    after = before.replace(job=before.job.replace(nodes=3, gpus_per_node=2))
    assert follow(before, after) == {"launcher.nproc_per_node": "2", "container.nv": True, "launcher.nnodes": "3"}
    assert follow(before, after, gpu_vendor="amd")["container.rocm"] is True
    assert "container.nv" not in follow(before, after, gpu_vendor="intel")
    assert follow(before, before) == {}, "nothing follows when the job is unchanged"


def test_a_given_value_or_layer_wins():
    before = multi_node()
    after = before.replace(job=before.job.replace(nodes=3, gpus_per_node=2))
    assert follow(before, after, ["launcher.nnodes"]) == {"launcher.nproc_per_node": "2", "container.nv": True}
    assert follow(before, after, ["launcher", "container"]) == {}


def test_a_count_that_is_no_number_and_a_missing_field_are_left_alone():
    before = multi_node()
    before = before.replace(launcher=before.launcher.replace(nnodes="$SLURM_NNODES", nproc_per_node="gpu"))
    after = before.replace(job=before.job.replace(nodes=3, gpus_per_node=2))
    assert follow(before, after) == {"container.nv": True}
    ch = before.replace(container=make_container("charliecloud", "/var/tmp/img"))
    assert follow(ch, ch.replace(job=after.job)) == {}, "ch-run has no GPU flag"


def test_no_gpus_switches_the_flag_off_and_keeps_the_process_count():
    before = multi_node()
    after = followed(before, before.replace(job=before.job.replace(gpus_per_node=0)))
    assert after.container.nv is False and after.launcher.nproc_per_node == before.launcher.nproc_per_node


def test_the_gpu_vendor_is_the_profiles_else_the_containers():
    amd = multi_node().replace(container=make_container("apptainer", "i.sif", rocm=True))
    assert gpu_vendor_of(None, multi_node()) == "nvidia"
    assert gpu_vendor_of(None, multi_node(), amd) == "amd"

    class Site:
        gpu_vendor = "intel"
    assert gpu_vendor_of(Site(), amd) == "intel"


# ------------------------------------------------------------------------------------------------
# the form and the command line give the same script

#: corpus scripts with torchrun counts written as numbers, as $SLURM_NNODES, with --rocm, and single-node ones
SCRIPTS = ["ok_multi_node_bare.sh", "ok_multi_node_more_tasks.sh", "ok_multi_node_apptainer.sh", "ok_amd_rocm.sh",
           "ok_multi_gpu_standalone.sh", "ok_legacy_module_launcher.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_gpus_per_node_gives_the_same_script_in_the_form_and_on_the_command_line(script, tmp_path, capsys):
    code, text, err = cli_text(tmp_path, capsys, script, "--set", "job.gpus_per_node=3")
    assert text == form_text(script, ("job.gpus_per_node", "3"))
    assert "--nproc-per-node=3" in text and code == 0, err


@pytest.mark.parametrize("script", [s for s in SCRIPTS if "multi_node" in s])
def test_nodes_give_the_same_script_in_the_form_and_on_the_command_line(script, tmp_path, capsys):
    code, text, err = cli_text(tmp_path, capsys, script, "--set", "job.nodes=3")
    assert text == form_text(script, ("job.nodes", "3"))
    # srun's task count of one a node follows too (--ntasks=2 --ntasks-per-node=1 on 2 nodes: 3 on 3), in both
    assert code == 0, err
    if "more_tasks" in script:
        assert "srun --ntasks=3 --ntasks-per-node=1" in text
    launcher = parse_script(text).launcher
    loaded = parse_script((CORPUS / script).read_text()).launcher
    assert launcher.nnodes == ("3" if loaded.nnodes.isdigit() else loaded.nnodes)


def test_a_value_given_on_the_same_command_line_wins_as_a_typed_one_does(tmp_path, capsys):
    script = "ok_multi_node_bare.sh"
    for order in (["launcher.nproc_per_node=8", "job.gpus_per_node=2"],
                  ["job.gpus_per_node=2", "launcher.nproc_per_node=8"]):
        code, text, err = cli_text(tmp_path, capsys, script, *[w for s in order for w in ("--set", s)])
        assert "--nproc-per-node=8" in text and "HPC108" in err and code == 1
        assert text == form_text(script, ("launcher.nproc_per_node", "8"), ("job.gpus_per_node", "2"))


def test_a_launcher_given_whole_is_kept(tmp_path, capsys):
    code, text, err = cli_text(tmp_path, capsys, "ok_multi_node_bare.sh", "--set", "job.nodes=3",
                               "--launcher", "torchrun --nnodes=$SLURM_NNODES --nproc-per-node=4 --rdzv-backend=c10d "
                                             "--rdzv-endpoint=$head_node:29500 pretrain.py")
    assert "--nnodes=$SLURM_NNODES" in text and code == 0, err


def test_the_set_help_says_values_follow(capsys):
    with pytest.raises(SystemExit):
        main(["workflow", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Values follow the job as in the form: job.nodes sets launcher.nnodes" in help_text
    assert "--set job.nodes=4 --set launcher.nnodes=4" not in help_text, "the example no longer needs both"
