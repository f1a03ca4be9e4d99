"""HPC224: ch-run starts in the image's / and mounts only /tmp (and $HOME with --home) from the host."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def hpc224(body: str) -> list[str]:
    return [f.message for f in lint(HEAD + body) if f.code == "HPC224"]


@pytest.mark.parametrize("body, says", [
    ("ch-run /var/tmp/img -- python train.py\n", "looked for as /train.py"),
    ("ch-run --home /var/tmp/img -- python -u train.py --epochs 3\n", "looked for as /train.py"),
    ("ch-run /var/tmp/img -- ./run.sh\n", "looked for as /run.sh"),
    ("srun ch-run /var/tmp/img -- torchrun --nproc-per-node=2 train.py\n", "looked for as /train.py"),
    ('ch-run /var/tmp/img -- python /opt/train.py --data "$SCRATCH/data"\n', "$SCRATCH/data is in a host folder"),
    ("ch-run /var/tmp/img -- python /opt/t.py --out=$SCRATCH/out\n", "$SCRATCH/out is in a host folder"),
    ('ch-run /var/tmp/img -- python "$HOME/proj/train.py"\n', "only with --home"),
    ('ch-run /var/tmp/img -- python "${SLURM_SUBMIT_DIR}/train.py"\n', "host folder"),
    ('ch-run -b "$PWD:/mnt/0" /var/tmp/img -- python "$PWD/train.py"\n', "$PWD/train.py is in a host folder"),
])
def test_a_path_ch_run_cannot_see(body, says):
    found = hpc224(body)
    assert len(found) == 1 and says in found[0], found


@pytest.mark.parametrize("body", [
    'ch-run -b "$PWD:/mnt/0" -c /mnt/0 /var/tmp/img -- python train.py\n',
    "ch-run /var/tmp/img -- python /opt/app/train.py\n",
    "ch-run /var/tmp/img -- python -m pkg.train\n",
    'ch-run -b "$SCRATCH/data" /var/tmp/img -- python /opt/train.py --data "$SCRATCH/data/x"\n',
    'ch-run --home /var/tmp/img -- python "$HOME/proj/train.py"\n',
    "ch-run /var/tmp/img -- python /tmp/t.py\n",
    'D=/mnt/0\nch-run -b "$PWD:$D" /var/tmp/img -- python "$D/t.py"\n',
    "ch-run /var/tmp/img -- bash -c 'cd /mnt/0 && python train.py'\n",
    "apptainer exec img.sif python train.py\n",   # Apptainer starts in the current directory
])
def test_a_path_ch_run_sees(body):
    assert hpc224(body) == []


@pytest.mark.real
def test_what_the_rule_says_is_what_ch_run_does(tmp_path):
    """Checked against the real ch-run and the practice cluster's image: a relative script is looked for in
    the image's /, the same command with -b and -c runs."""
    image = Path("/var/tmp/hpcw-images/trainer")
    need(shutil.which("ch-run") is not None and image.is_dir(),
         "needs ch-run and the practice cluster's trainer image (hpcwidgets practice-cluster up)")
    (tmp_path / "train.py").write_text("print('ran')\n")
    env = dict(os.environ, USER=os.environ.get("USER") or "root")
    bad = subprocess.run(["ch-run", str(image), "--", "python3", "train.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "train.py" in bad.stderr
    good = subprocess.run(["ch-run", "-b", f"{tmp_path}:/mnt/0", "-c", "/mnt/0", str(image), "--", "python3",
                           "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and good.stdout.strip() == "ran", good.stderr
    assert hpc224("ch-run IMG -- python3 train.py\n") and not hpc224(
        'ch-run -b "$PWD:/mnt/0" -c /mnt/0 IMG -- python3 train.py\n')
