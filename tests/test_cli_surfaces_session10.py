"""Option tables of current tool versions (audit a1 of session 10): options that take a value read with it, pflag's
``--env A=1,B=2`` read as two variables, clusters of short switches (``-eC``, ``srun -lK``, ``ch-run -tw``) read as
every switch they hold, torchrun's ``--run-path`` read as a switch, ch-run's CDI options and sbatch's ``--stepmgr``."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse.argv import parse_argv
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.workflow import parse_script
from hpcwidgets.render import render
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.common import EnvVar
from hpcwidgets.spec.convert import to_charliecloud

HEAD = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n#SBATCH --time=01:00:00\n" \
       'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
TORCHRUN = "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 " \
           "--rdzv-id=$SLURM_JOB_ID train.py"
ONE_GPU = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n"


def codes(text: str) -> list[str]:
    return sorted(f.code for f in lint(text))


# 1. value options missing from the tables: their value was read as the program or the image

def test_srun_bcast_exclude_takes_its_value_so_the_launcher_is_found():
    script = f"{HEAD}srun --bcast=/tmp/venv.tar --bcast-exclude NONE {TORCHRUN}\n"
    w = parse_script(script)
    assert w.launcher is not None and w.launcher.nproc_per_node == "4"
    assert w.srun.extra == ("--bcast=/tmp/venv.tar", "--bcast-exclude", "NONE")
    assert "HPC101" in codes(script)


def test_srun_tree_width_takes_its_value():
    w = parse_script(f"{HEAD}srun --tree-width 2 {TORCHRUN}\n")
    assert w.launcher is not None and w.srun.extra == ("--tree-width", "2")


def test_a_cdi_device_is_an_option_with_a_value_and_gives_the_container_its_gpus():
    script = f"{HEAD}srun singularity exec --oci --device nvidia.com/gpu=all pytorch.sif {TORCHRUN}\n"
    w = parse_script(script)
    assert w.container.image == "pytorch.sif" and w.launcher is not None
    found = codes(script)
    assert "HPC101" in found and "HPC201" not in found
    other = f"{ONE_GPU}singularity exec --oci --device vendor.com/fpga=0 img.sif python train.py\n"
    assert "HPC201" in codes(other)  # a CDI device that is not a GPU gives none


@pytest.mark.parametrize("option", ["--cdi-dirs /etc/cdi", "--netns-path /run/netns/a", "--proot /usr/bin/proot"])
def test_singularityce_value_options_keep_the_image_in_place(option):
    run = parse_argv(["singularity", "exec", *option.split(), "pytorch.sif", "python", "train.py"]).model
    assert run.image == "pytorch.sif" and run.command == ("python", "train.py")


# 2. --env A=1,B=2 sets two variables (pflag's StringToString)

def test_env_with_several_pairs_is_read_as_several_variables():
    script = f"{ONE_GPU}apptainer exec --nv --env OMP_NUM_THREADS=8,PYTHONNOUSERSITE=1 img.sif python train.py\n"
    env = parse_script(script).container.env
    assert env == (EnvVar("OMP_NUM_THREADS", "8"), EnvVar("PYTHONNOUSERSITE", "1"))
    assert "HPC209" not in codes(script)
    assert render(parse_script(script)) == script  # unedited, the step stays as written
    assert "--env OMP_NUM_THREADS=8 \\\n  --env PYTHONNOUSERSITE=1" in render(without_layout(parse_script(script)))


def test_converting_env_pairs_gives_one_set_env_each():
    run = parse_argv(["apptainer", "exec", "--env", "OMP_NUM_THREADS=8,PYTHONNOUSERSITE=1", "img.sif",
                      "python", "train.py"]).model
    assert to_charliecloud(run, image_dir="./img").result.set_env == ("OMP_NUM_THREADS=8", "PYTHONNOUSERSITE=1")


def test_env_with_one_pair_stays_one_variable():
    def env(value):
        return parse_argv(["apptainer", "exec", "--env", value, "img.sif", "true"]).model.env
    assert env('"A=x,y=z"') == (EnvVar("A", "x,y=z"),)  # a CSV-quoted field is one pair
    assert env("A=x,y") == (EnvVar("A", "x,y"),)  # one '=': one pair, commas and all
    assert env("A=x=y") == (EnvVar("A", "x=y"),)


def test_an_env_value_apptainer_would_split_is_a_problem_that_names_the_fix():
    run = ApptainerRun(image="img.sif", command=("true",), env=(EnvVar("X", "a,b=c"), EnvVar("Y", "a,b")))
    (problem,) = run.problems()
    assert problem.field == "env" and "--env-file" in problem.message and "APPTAINERENV_X='a,b=c'" in problem.message


# 3. clusters of short switches

def test_apptainer_cluster_keeps_every_switch_through_a_round_trip():
    script = f"{ONE_GPU}apptainer exec --nv -eC img.sif python train.py\n"
    c = parse_script(script).container
    assert c.cleanenv and c.containall
    assert render(parse_script(script)) == script  # unedited, the step stays as written
    assert "--cleanenv --containall" in render(without_layout(parse_script(script)))
    assert "HPC209" not in codes(script)


def test_srun_cluster_keeps_kill_on_bad_exit():
    script = f"{HEAD.replace('=4', '=1', 1)}srun -lK {TORCHRUN}\n"
    w = parse_script(script)
    assert w.srun.label and w.srun.kill_on_bad_exit
    assert render(w, validate=False) == script  # unedited, the step stays as written
    assert "srun --label --kill-on-bad-exit" in render(without_layout(w), validate=False)


def test_ch_run_cluster_keeps_write():
    run = parse_argv(["ch-run", "-tw", "./img", "--", "python", "train.py"]).model
    assert run.private_tmp and run.write


@pytest.mark.parametrize("words, field, value, extra", [
    (["srun", "-lK0", "x"], "label", True, ("-K0",)),              # getopt: an optional value only attached
    (["apptainer", "exec", "-ex", "i.sif", "x"], "cleanenv", False, ("-ex",)),   # x is no option: as written
])
def test_clusters_follow_the_programs_rules(words, field, value, extra):
    model = parse_argv(words).model
    assert getattr(model, field) is value and tuple(model.extra) == extra


def test_a_value_option_ending_a_cluster_takes_the_rest_or_the_next_word():
    run = parse_argv(["apptainer", "exec", "-eB", "/data", "img.sif", "python"]).model
    assert run.cleanenv and [b.src for b in run.binds] == ["/data"] and run.image == "img.sif"
    run = parse_argv(["apptainer", "exec", "-eB/data", "img.sif", "python"]).model
    assert run.cleanenv and [b.src for b in run.binds] == ["/data"]
    assert parse_argv(["srun", "-K1", "x"]).model.kill_on_bad_exit  # one option and its value, as before


# 4. torchrun --run-path is a switch

def test_torchrun_run_path_is_a_switch_and_the_script_follows_it():
    script = ONE_GPU.replace("gpu:1", "gpu:4") + \
        "torchrun --standalone --nproc-per-node=4 --run-path /project/train.py --lr 0.1\n"
    launcher = parse_script(script).launcher
    assert launcher.script == "/project/train.py" and launcher.args == ("--lr", "0.1")
    assert "HPC114" not in codes(script)
    underscored = parse_argv(["torchrun", "--run_path", "train.py"]).model
    assert underscored.script == "train.py" and underscored.option_style == "underscores"  # written back so


# 5. ch-run's CDI options and --warnings are options, not stray words

@pytest.mark.parametrize("option", ["--device nvidia.com/gpu=all", "--cdi-dirs /etc/cdi", "--warnings 3"])
def test_ch_run_cdi_options_are_not_stray_words(option):
    script = f'{ONE_GPU}ch-run {option} -c /mnt/0 -b "$PWD:/mnt/0" "$SCRATCH/img" -- python train.py\n'
    assert "HPC219" not in codes(script)


# 6. sbatch --stepmgr

def test_stepmgr_is_an_sbatch_option():
    script = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --time=00:10:00\n#SBATCH --stepmgr\nsrun hostname\n"
    assert "HPC313" not in codes(script)


ENV_IN_A_VARIABLE = """#!/bin/bash
#SBATCH --ntasks=1
CENV="PYTHONPATH=/workspace/src,PYTHONUNBUFFERED=1"
singularity exec --env "$CENV" img.sif python3 run.py
"""


def test_env_given_by_a_variable_holding_pairs_is_no_bad_name():
    """--env "$CENV": bash expands the word, then Apptainer reads the pairs it holds. Its names are known only when
    the job runs: no problem, the word written back as it was, and the Charliecloud translation says what to do."""
    assert [f.code for f in lint(ENV_IN_A_VARIABLE) if f.code == "HPC219"] == []
    wf = parse_script(ENV_IN_A_VARIABLE)
    assert wf.problems() == []
    assert 'singularity exec --env "$CENV" img.sif python3 run.py' in render(wf)
    run = parse_argv(["singularity", "exec", "--env", "$CENV", "--env", "A=1", "img.sif", "true"]).model
    conversion = to_charliecloud(run)
    assert any('--env "$CENV" passes the NAME=value pairs' in n for n in conversion.notes)
    assert "--set-env=A=1" in render(conversion.commands[-1]) and "CENV" not in render(conversion.commands[-1])
