"""lint --fix on the layouts where a mechanical fix used to be wrong: it must now be right or not offered."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint


def fixed(text: str, profile=None) -> tuple[str, list[str]]:
    new, done = fix_script(text, profile)
    return new, [f.code for f in done]


def bash_reads(text: str) -> bool:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-n"], input=text, text=True, capture_output=True).returncode == 0


def test_hpc527_on_a_step_ending_in_a_semicolon_keeps_the_script_readable():
    text = "#!/bin/bash\n#SBATCH --ntasks=1\nsrun python train.py;\necho done\n"
    new, done = fixed(text)
    assert done == ["HPC527"] and "srun python train.py || exit $?\n" in new and bash_reads(new)


@pytest.mark.parametrize("report", ["sacct -j $SLURM_JOB_ID", "seff $SLURM_JOB_ID"])
def test_hpc527_offers_no_exit_that_would_skip_the_jobs_report(report):
    text = f"#!/bin/bash\n#SBATCH --ntasks=1\nsrun python train.py\n{report}\n"
    assert [f.code for f in lint(text)].count("HPC527") == 1
    assert fixed(text) == (text, [])


@pytest.mark.parametrize("script", [
    # --export=NONE: HPC516 would put unset SLURM_EXPORT_ENV between the && and the step
    "#!/bin/bash\n#SBATCH --export=NONE\n#SBATCH --ntasks=2\ncd \"$SCRATCH/run\" && \\\n  srun ./mpi_app\n",
    # two nodes and --standalone: HPC113 would put the head-node line there
    "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\ntest -f data.bin &&\n"
    "  srun torchrun --standalone --nproc-per-node=4 train.py\n",
])
def test_no_line_is_put_between_an_and_and_the_step_it_guards(script):
    new, _ = fixed(script)
    lines = new.splitlines()
    for k, line in enumerate(lines[:-1]):
        if line.rstrip().endswith(("&&", "&& \\")):
            assert lines[k + 1].lstrip().startswith("srun"), new  # the guarded command is still the step
    assert bash_reads(new)


@pytest.mark.parametrize("line", ["#xSBATCH --reservation=course_2023", "#noSBATCH --output=/dev/null",
                                  "#XSBATCH --mail-type=ALL",
                                  "#sbatch --dependency=afterok:12345 next.sh   <- how to chain the next one"])
def test_directives_switched_off_on_purpose_and_prose_stay_comments(line):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\n{line}\npython train.py\n"
    assert [f.code for f in lint(text) if f.code == "HPC321"] == []
    assert fixed(text)[0] == text


@pytest.mark.parametrize("line", ["#SBTACH --time=02:00:00", "#sbatch --time=02:00:00", "#SBACTH -p gpu"])
def test_slips_of_sbatch_are_still_fixed(line):
    new, done = fixed(f"#!/bin/bash\n{line}\npython train.py\n")
    assert done == ["HPC321"] and new.splitlines()[1].startswith("#SBATCH ")


def test_sbatch_without_its_hash_after_the_first_command_is_reported_but_not_made_a_dead_directive():
    text = "#!/bin/bash\n#SBATCH --time=01:00:00\nmodule load python\nSBATCH --mem=16G\npython train.py\n"
    found = [f for f in lint(text) if f.code == "HPC321"]
    assert len(found) == 1 and "move above the first command" in found[0].message and found[0].fix is None


def test_hpc309_leaves_background_pipelines_and_groups_unfixed():
    from hpcwidgets.profiles import load_profile
    text = ("#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=8\nsrun -n 1 python a.py | tee a.log &\n"
            "( srun -n 1 python b.py ) &\nwait\n")
    profile = load_profile("generic")
    assert [f.line for f in lint(text, profile) if f.code == "HPC309"] == [4, 5]
    assert "HPC309" not in fixed(text, profile)[1]


def test_hpc607s_line_is_posix_so_it_works_under_sh():
    text = ("#!/bin/sh\n#SBATCH --time=01:00:00\njupyter lab --no-browser --ip=0.0.0.0 --port=8888\n")
    new, done = fixed(text)
    assert "HPC607" in done and "[[" not in new
    dash = shutil.which("dash")
    if dash:
        assert subprocess.run([dash, "-n"], input=new, text=True).returncode == 0


@pytest.mark.parametrize("where", ["#SBATCH --partition=debug", "#SBATCH --qos=test", ""])
def test_a_short_limit_on_a_test_queue_is_not_stretched_to_hours(where):
    comment = "" if where else "  # quick smoke test"
    text = f"#!/bin/bash\n{where}\n#SBATCH --time=2:00{comment}\npython smoke.py\n"
    assert [f.code for f in lint(text) if f.code == "HPC320"] == []
    plain = "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --time=2:00\npython train.py\n"
    assert [f.code for f in lint(plain) if f.code == "HPC320"] == ["HPC320"]


def test_the_wait_hpc519_adds_does_not_copy_the_steps_comment():
    text = ("#!/bin/bash\n#SBATCH --ntasks=2\nsrun --exact -n 1 python a.py &\n"
            "srun --exact -n 1 python b.py &  # second half\n")
    new, done = fixed(text)
    assert "HPC519" in done and new.endswith("srun --exact -n 1 python b.py &  # second half\nwait\n")


@pytest.mark.parametrize("module", ["singularity", "singularity/3.6.1-gcc-9.1.0"])
def test_a_module_named_for_the_runtime_counts_as_loading_it(module):
    from hpcwidgets.profiles import load_profile
    text = (f"#!/bin/bash\n#SBATCH --gres=gpu:1\nmodule load {module}\n"
            "singularity exec --nv \"$SCRATCH/monai.sif\" python train.py\n")
    assert [f for f in lint(text, load_profile("generic")) if f.code == "HPC409"] == []
    bare = "#!/bin/bash\n#SBATCH --gres=gpu:1\nsingularity exec --nv \"$SCRATCH/monai.sif\" python train.py\n"
    assert [f.code for f in lint(bare, load_profile("generic")) if f.code == "HPC409"] == ["HPC409"]


def test_curly_quotes_that_echo_prints_are_text_not_a_slip():
    text = "#!/bin/bash\necho \u201cStarting job\u201d\npython train.py \u201c--lr\u201d 0.1\n"
    assert [(f.code, f.line) for f in lint(text) if f.code == "HPC515"] == [("HPC515", 3)]
    assert fixed(text)[0].splitlines()[1] == "echo \u201cStarting job\u201d"


def test_hpc515_offers_no_fix_that_would_leave_a_quote_open():
    text = "#!/bin/bash\n#SBATCH --ntasks=1\npython train.py --title \u201cbasel\n"
    found = [f for f in lint(text) if f.code == "HPC515"]
    assert len(found) == 1 and found[0].fix is None
    assert fixed(text) == (text, [])


def test_hpc201_adds_the_flag_to_every_gpu_container_step_at_once():
    text = ("#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:1\n"
            'apptainer exec "$SCRATCH/img/pytorch_24.05.sif" python pretrain.py  # stage 1\n'
            "cd \"$SCRATCH/run\"\n"
            'apptainer exec "$SCRATCH/img/pytorch_24.05.sif" python finetune.py\n')
    assert [f.line for f in lint(text) if f.code == "HPC201"] == [4, 6]
    new, done = fixed(text)
    # one at a time, the second step would have looked like a CPU helper beside the first (HPC220) and kept no GPU
    assert done == ["HPC201", "HPC201"] and new.count("apptainer exec --nv ") == 2
    assert "python pretrain.py  # stage 1\ncd \"$SCRATCH/run\"\n" in new
    assert [f.code for f in lint(new) if f.code in ("HPC201", "HPC220")] == []
