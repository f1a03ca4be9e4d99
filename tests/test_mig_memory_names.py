"""MIG slices named by their model and memory (a100_10g, as NJIT's Wulver names them) are slices, not whole GPUs."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.run.detect import gpus_per_node
from hpcwidgets.spec.profile import gpu_type_vendor, is_mig_type, mig_size


@pytest.mark.parametrize("name,mig,size", [
    ("a100_10g", True, (0, 10)),
    ("a100_20g", True, (0, 20)),
    ("A100-5gb", True, (0, 5)),
    ("nvidia_a100_10g", True, (0, 10)),
    ("h100_20g", True, (0, 20)),
    ("a30_6g", True, (0, 6)),
    ("a100_40g", False, (0, 0)),   # a whole 40 GB A100, or a slice of an 80 GB one: taken for the whole GPU
    ("a100_80g", False, (0, 0)),
    ("h100_80gb", False, (0, 0)),
    ("gh200_96g", False, (0, 0)),
    ("v100_16g", False, (0, 0)),   # V100s have no MIG
    ("a100", False, (0, 0)),
    ("3g.40gb", True, (3, 40)),
])
def test_memory_named_slices(name, mig, size):
    assert is_mig_type(name) is mig
    assert mig_size(name) == size
    assert gpu_type_vendor(name) == "nvidia"


def test_slices_named_by_memory_are_no_full_gpus_of_a_node():
    assert gpus_per_node([{"a100": 4}, {"a100_10g": 7, "a100_20g": 3}]) == 4
    assert gpus_per_node([{"a100_10g": 7}]) == 7  # a partition of slices only counts them


def test_two_workers_on_two_memory_named_slices_are_reported():
    script = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:{t}:2\n"
              "#SBATCH --time=00:59:00\nsrun apptainer exec --nv pt.sif torchrun --standalone --nproc-per-node=2 "
              "train.py\n")
    assert "HPC142" in {f.code for f in lint(script.format(t="a100_10g"))}
    assert "HPC142" not in {f.code for f in lint(script.format(t="a100_80g"))}
