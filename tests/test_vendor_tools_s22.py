"""One reading of GPU vendors for lint, the slides check and profile check: image names (spec.profile.image_vendor,
including PyTorch's -cu121 tags) and each vendor's tools (spec.profile.GPU_TOOLS)."""

from __future__ import annotations

import pytest

from hpcwidgets import lint, load_profile
from hpcwidgets import slides
from hpcwidgets.spec.profile import GPU_TOOLS, image_vendor


@pytest.mark.parametrize("source, vendor", [
    ("docker://nvcr.io/nvidia/pytorch:24.05-py3", "nvidia"),
    ("docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", "nvidia"),
    ("ghcr.io/lab/train:torch2.3-cu121", "nvidia"),
    ("docker://example.org/ml:py3.11-cu118-ubuntu22.04", "nvidia"),
    ("docker://rocm/pytorch:rocm6.2_ubuntu22.04_py3.10_pytorch_release_2.3.0", "amd"),
    ("docker://pytorch/pytorch:latest", ""),
    ("$SCRATCH/images/acu121.sif", ""),       # letters before: a name, not a tag
    ("$SCRATCH/images/cu12.sif", ""),          # too short for a CUDA 11/12 tag
    ("docker://example.org/cuddly:1.0", ""),
])
def test_image_vendor_reads_cuda_and_rocm_builds(source, vendor):
    assert image_vendor(source) == vendor


def test_a_cu121_image_on_an_amd_site_is_reported_by_lint(tmp_path):
    from pathlib import Path
    amd = Path(__file__).parent / "data" / "profiles" / "amd_s22.toml"
    script = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=00:10:00\n"
              "singularity exec --rocm docker://ghcr.io/lab/train:torch2.3-cu121 python train.py\n")
    codes = {f.code for f in lint(script, profile=load_profile(str(amd)))}
    assert "HPC237" in codes


def test_lint_and_the_slides_check_name_the_same_tools():
    """The slides check's patterns and advice are built from GPU_TOOLS, as HPC417's are."""
    for vendor, tools in GPU_TOOLS.items():
        pattern = next(p for p, kind, _ in slides._VENDOR_WORDS[vendor] if kind == "tool")
        import re
        assert all(re.search(pattern, f"run {tool} now") for tool in tools)
        other = "amd" if vendor == "nvidia" else "nvidia"
        assert {slides._VENDOR_ADVICE[t] for t in tools} == {GPU_TOOLS[other][0]}
