"""Grid sweeps: several swept variables in one job array (``Workflow.grid``, ``SweepAxis``).

Task id → combination: the first variable varies fastest. The rendered lines are executed by real bash for
every task id, checked by shellcheck and lint, and read back into the same model.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from helpers import need_tool, run_with_stand_ins

import hpcwidgets as hw
from hpcwidgets.errors import ValidationError
from hpcwidgets.parse import parse_script
from hpcwidgets.render.workflow import render_workflow, sweep_block
from hpcwidgets.spec import EnvVar, SlurmJob, Spec, SweepAxis
from hpcwidgets.spec.workflow import Workflow

IMG = "$SCRATCH/images/pytorch_24.05.sif"
GRID = {"lr": ["0.1", "0.03", "0.01"], "batch_size": ["32", "64"]}


def grid(axes=None, **kw) -> Workflow:
    kw.setdefault("image", IMG)
    return Workflow.grid(GRID if axes is None else axes, "train.py", ("--epochs", "3"), **kw)


def messages(w: Workflow) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in w.problems():
        out.setdefault(p.field, []).append(p.message)
    return out


def task_values(block: str, names: list[str], task: int) -> list[str]:
    """The values the sweep lines give ``names`` when bash runs them as array task ``task``."""
    shown = " ".join(f'"${n}"' for n in names)
    script = f"set -eu\n{block}\nprintf '\\0%s' {shown}\n"
    proc = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": str(task)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\0")[1:]


# ------------------------------------------------------------------------------------------------
# the model and its constructor
# ------------------------------------------------------------------------------------------------
class TestModel:
    def test_grid_sets_every_variable_and_the_array(self):
        w = grid(max_parallel=2)
        assert (w.sweep_name, w.sweep_values) == ("lr", ("0.1", "0.03", "0.01"))
        assert w.sweep_grid == (SweepAxis("batch_size", ("32", "64")),)
        assert w.job.array == "0-5%2" and w.sweep_size == 6 and w.job.output == "%x-%A_%a.out"
        assert w.program[-6:] == ("--epochs", "3", "--lr", "$lr", "--batch-size", "$batch_size")
        assert w.problems() == []

    def test_pairs_mapping_and_flags(self):
        pairs = grid([("lr", [0.1, 0.03, 0.01]), ("batch_size", [32, 64])])
        assert pairs == grid()  # values become text, a mapping keeps its order
        flagged = grid(flags={"batch_size": "--bs"})
        assert flagged.program[-2:] == ("--bs", "$batch_size")

    def test_three_variables(self):
        w = grid({**GRID, "seed": [1, 2]})
        assert [a.name for a in w.sweep_grid] == ["batch_size", "seed"] and w.job.array == "0-11"

    def test_a_sweep_is_a_grid_of_one_variable(self):
        assert Workflow.sweep("lr", ["0.1", "0.2"], "t.py", image="i.sif") == \
            Workflow.grid({"lr": ["0.1", "0.2"]}, "t.py", image="i.sif")
        assert Workflow.sweep("lr", ["0.1"], "t.py", image="i.sif").sweep_grid == ()

    def test_no_variable_is_refused(self):
        with pytest.raises(ValueError, match="at least one variable"):
            Workflow.grid({}, "t.py")

    def test_json_round_trip(self):
        w = grid()
        assert Workflow.from_json(w.to_json()) == w
        assert '"kind": "sweep.axis"' in w.to_json()
        axis = SweepAxis("seed", ("1", "2"))
        assert Spec.from_json(axis.to_json()) == axis

    def test_field_metadata(self):
        f = Workflow.field_spec("sweep_grid")
        assert f.base_type is SweepAxis and f.info.role == "internal" and f.info.label and f.info.placeholder
        assert all(g.info.label and g.info.help for g in SweepAxis.field_specs())


# ------------------------------------------------------------------------------------------------
# problems: one message each, naming the fix
# ------------------------------------------------------------------------------------------------
class TestProblems:
    @pytest.mark.parametrize("name", ["BS", "batch-size", "head_node", "1x", "a(b"])
    def test_axis_name_must_be_a_lower_case_shell_name(self, name):
        w = grid().replace(sweep_grid=(SweepAxis(name, ("32", "64")),))
        got = messages(w)
        assert list(got) == ["sweep_grid.name"] and "lower-case shell name" in got["sweep_grid.name"][0]

    @pytest.mark.parametrize("name", ["lr", "lr_values"])
    def test_names_must_not_clash(self, name):
        w = grid().replace(sweep_grid=(SweepAxis(name, ("32", "64")),))
        got = messages(w)
        assert list(got) == ["sweep_grid"] and len(got["sweep_grid"]) == 1
        assert ("more than once" if name == "lr" else "holds the values of lr") in got["sweep_grid"][0]

    def test_an_axis_needs_values(self):
        got = messages(grid().replace(sweep_grid=(SweepAxis("batch_size", ()),)))
        assert list(got) == ["sweep_grid.values"] and "batch_size" in got["sweep_grid.values"][0]

    def test_a_grid_needs_its_first_variable(self):
        got = messages(grid().replace(sweep_name="", sweep_values=()))
        assert list(got) == ["sweep_name"] and "sweep_grid" in got["sweep_name"][0]

    @pytest.mark.parametrize("array, fix, again", [
        ("0-7", "--array=0-5", "tasks 6, 7 run combinations 0, 1 again"),
        ("0-6%2", "--array=0-5%2", "task 6 runs combination 0 again"),
        ("0-10:2", "--array=0-5", "tasks 6, 8, 10 run combinations 0, 2, 4 again"),
        ("0-12", "--array=0-5", "tasks 6, 7, 8, 9, … run combinations 0, 1, 2, 3, … again"),
        ("", "--array=0-5", "")])
    def test_the_array_runs_no_combination_twice(self, array, fix, again):
        w = grid()
        got = messages(w.replace(job=w.job.replace(array=array)))
        assert list(got) == ["job.array"] and got["job.array"][0].endswith(fix)
        assert "lr × batch_size: 3 × 2" in got["job.array"][0] and again in got["job.array"][0]

    @pytest.mark.parametrize("array", ["3,4", "0-3", "0-3%2", "5", "1-5:2"])
    def test_a_rerun_of_some_combinations_is_fine(self, array):
        # resubmitting the combinations that failed runs each of them once: nothing repeats or lacks a value
        w = grid()
        assert w.replace(job=w.job.replace(array=array)).problems() == []

    def test_a_rerun_script_reads_back_into_a_workflow(self):
        # the script of a rerun opens in the form and the CLI (workflow --from) as it is, and renders back unchanged
        text = render_workflow(grid()).replace("--array=0-5", "--array=3,4")
        back = parse_script(text)
        assert back.job.array == "3,4" and back.problems() == [] and render_workflow(back) == text

    def test_throttled_or_listed_arrays_that_cover_the_grid_are_fine(self):
        w = grid()
        assert w.replace(job=w.job.replace(array="0-5%3")).problems() == []
        assert w.replace(job=w.job.replace(array="0,1,2,3-5")).problems() == []

    def test_every_variable_must_reach_the_step(self):
        w = grid()
        got = messages(w.replace(program=w.program[:-2]))
        assert list(got) == ["sweep_grid"] and "$batch_size" in got["sweep_grid"][0]
        assert '--batch_size "$batch_size"' in got["sweep_grid"][0]
        got = messages(w.replace(program=w.program[:-4]))
        assert set(got) == {"sweep_name", "sweep_grid"}

    def test_an_exported_or_own_line_use_counts(self):
        w = grid()
        w = w.replace(program=w.program[:-2], exports=(EnvVar("BATCH", "${batch_size}"),))
        assert w.problems() == []

    def test_a_name_with_pattern_characters_is_reported_not_raised(self):
        # the name went into a regular expression unescaped: "a(" raised re.error from problems()
        w = Workflow(program=("t",), sweep_name="a(", sweep_values=("1",), job=SlurmJob(array="0"))
        assert "sweep_name" in messages(w)


# ------------------------------------------------------------------------------------------------
# rendering, checked by bash, shellcheck and lint
# ------------------------------------------------------------------------------------------------
class TestRender:
    def test_the_grid_lines(self):
        text = render_workflow(grid({**GRID, "seed": ["1", "a b"]}))
        assert "\n".join([
            "# Job array: each task takes its lr, batch_size and seed from these lists by its task id "
            "(lr varies fastest)",
            "lr_values=(0.1 0.03 0.01)",
            "batch_size_values=(32 64)",
            "seed_values=(1 'a b')",
            "lr=${lr_values[SLURM_ARRAY_TASK_ID % 3]}",
            "batch_size=${batch_size_values[SLURM_ARRAY_TASK_ID / 3 % 2]}",
            "seed=${seed_values[SLURM_ARRAY_TASK_ID / 6 % 2]}",
            'echo "array task $SLURM_ARRAY_TASK_ID: lr=$lr batch_size=$batch_size seed=$seed"',
        ]) + "\n" in text
        assert text.index("seed=") < text.index("apptainer exec")

    def test_a_bad_axis_name_is_refused_at_render_time(self):
        w = grid().replace(sweep_grid=(SweepAxis("x;id", ("1",)),))
        with pytest.raises(ValidationError, match="sweep_grid"):
            render_workflow(w)

    def test_every_task_runs_a_different_combination(self):
        axes = {"lr": ["0.1", "0.03", "0.01"], "batch_size": ["32", "64"], "seed": ["$(id)", "a b", "*"]}
        block = sweep_block(grid(axes)).text
        names = list(axes)
        got = [tuple(task_values(block, names, task)) for task in range(18)]
        # the first variable varies fastest: task i is the i-th combination with the last variable outermost
        expected = [tuple(reversed(c)) for c in itertools.product(*(axes[n] for n in reversed(names)))]
        assert got == expected
        assert sorted(got) == sorted(itertools.product(*axes.values()))  # each combination exactly once

    def test_the_program_receives_its_task_values(self, tmp_path):
        script = render_workflow(grid())
        calls = run_with_stand_ins(script, tmp_path, ["apptainer"], env={"SLURM_ARRAY_TASK_ID": "4",
                                                                          "SCRATCH": "/scratch"})
        assert calls[-1]["argv"][-4:] == ["--lr", "0.03", "--batch-size", "64"]

    @pytest.mark.parametrize("w", [
        grid(),
        grid({**GRID, "seed": ["1", "a b"]}, gpus_per_node=4, partition="gpu", max_parallel=4),
        grid(use_srun=True, gpus_per_node=1),
    ], ids=["plain", "torchrun", "srun"])
    def test_bash_shellcheck_and_lint_are_clean(self, w, tmp_path):
        text = render_workflow(w)
        path = tmp_path / "job.sh"
        path.write_text(text)
        syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        check = subprocess.run([need_tool("shellcheck"), "-s", "bash", "-S", "warning", str(path)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        assert [f for f in hw.lint(text) if f.severity != "info"] == []


# ------------------------------------------------------------------------------------------------
# reading back
# ------------------------------------------------------------------------------------------------
class TestReadBack:
    @pytest.mark.parametrize("w", [grid(), grid({**GRID, "seed": ["1", "a b", "$(id)"]}, max_parallel=2),
                                   grid(gpus_per_node=4)], ids=["two", "three", "torchrun"])
    def test_round_trip(self, w):
        text = render_workflow(w)
        assert parse_script(text) == w
        assert render_workflow(parse_script(text)) == text

    @pytest.mark.parametrize("old, new", [
        ("SLURM_ARRAY_TASK_ID / 3 % 2", "SLURM_ARRAY_TASK_ID / 2 % 2"),        # another order of the tasks
        ("SLURM_ARRAY_TASK_ID % 3", "$((SLURM_ARRAY_TASK_ID % 3))"),           # another spelling
        ("[SLURM_ARRAY_TASK_ID % 3]", "[$SLURM_ARRAY_TASK_ID]"),                # not a grid's index
        ("batch_size=$batch_size\"", "bs=$batch_size\""),                      # the echo says something else
        ("batch_size_values=(32 64)", "batch_size_values=($(cat sizes.txt))"),  # values from a command
    ])
    def test_a_hand_written_variant_stays_as_its_own_lines(self, old, new):
        text = render_workflow(grid())
        assert old in text
        edited = text.replace(old, new, 1)
        w = parse_script(edited)
        assert w.sweep_name == "" and w.sweep_grid == ()
        assert any(new in line for line in w.job.setup)
        assert new in render_workflow(w)

    def test_a_command_after_the_echo_is_kept(self):
        # a command on the echo's line was read as part of the sweep and dropped
        text = render_workflow(Workflow.sweep("lr", ["0.1", "0.2"], "t.py", image="i.sif"))
        line = 'echo "array task $SLURM_ARRAY_TASK_ID: lr=$lr"'
        w = parse_script(text.replace(line, line + "; touch done"))
        assert "touch done" in render_workflow(w)
