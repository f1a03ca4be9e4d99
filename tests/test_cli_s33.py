"""Session 33: the command line after the review of session 32's work and this session's audits."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main

_HELD = ("#!/bin/bash\n#SBATCH --gpus-per-node=4\n"
         "time srun apptainer exec --nv old.sif torchrun --standalone train.py\n")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("setting", ["srun.ntasks=2", "launcher.nnodes=2", "container.image=new.sif",
                                     "srun=srun --ntasks=2", "container=apptainer exec new.sif"])
def test_a_layer_the_program_holds_is_not_started_again_around_it(tmp_path, capsys, setting):
    # a step read back whole as its program (time before srun) already runs srun, the container and torchrun: a
    # new default srun around it would run srun inside srun
    (tmp_path / "job.sh").write_text(_HELD)
    code, out, err = run(capsys, "workflow", "--from", str(tmp_path / "job.sh"), "--set", setting)
    layer = setting.split("=", 1)[0].split(".", 1)[0]
    assert code == 2 and out == ""
    assert f"{layer} is not set: the step is held whole as the program (time srun apptainer exec" in err
    assert "--program" in err


def test_a_program_that_runs_no_layer_takes_a_new_one(tmp_path, capsys):
    (tmp_path / "job.sh").write_text("#!/bin/bash\n#SBATCH --nodes=2\npython train.py\n")
    code, out, err = run(capsys, "workflow", "--from", str(tmp_path / "job.sh"), "--set", "srun.ntasks_per_node=1")
    assert code == 0 and "srun --ntasks-per-node=1 python train.py\n" in out
