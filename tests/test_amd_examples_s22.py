"""An AMD site whose default GPU partition gives every job whole nodes (tests/data/profiles/amd_whole_s22.toml).

* The examples that use part of a node (one GPU) go to the partition that shares nodes, the one HPC415 names
  (spec.profile.partition_sharing_nodes); the multi-node example keeps the whole-node partition; the examples then
  lint clean. ``profile check``'s note for such a default (spec.profile.whole_node_default_note).
* ``python -m hpcwidgets.slides check``: the other GPU vendor's flag, tools and images, and an apptainer command on a
  SingularityCE-only site, left in the hand-written text (slides.vendor_leftovers).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpcwidgets import slides
from hpcwidgets.examples import examples
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.profile import (Partition, partition_sharing_nodes, sharing_partitions, whole_node_default_note,
                                     whole_node_warnings)
from hpcwidgets.spec.slurm import SlurmJob

PROFILE_PATH = str(Path(__file__).parent / "data" / "profiles" / "amd_whole_s22.toml")
PART_OF_NODE = ("single-gpu", "array-sweep", "charliecloud")


@pytest.fixture(scope="module")
def site():
    return load_profile(PROFILE_PATH)


def _partition(script: str) -> str:
    found = re.search(r"^#SBATCH --partition=(\S+)$", script, re.M)
    return found.group(1) if found else ""


def _with_partitions(profile, change):
    """The profile with ``change(partition)`` applied to each partition (it returns the new one, or None to drop)."""
    parts = tuple(p for p in (change(p) for p in profile.partitions) if p is not None)
    return profile.replace(partitions=parts)


# ------------------------------------------------------------------------------------------------
# B1: the examples' partition
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made(site):
    return {name: ex.render() for name, ex in examples(site).items()}


@pytest.mark.parametrize("name", PART_OF_NODE)
def test_a_one_gpu_example_leaves_the_whole_node_default_for_the_partition_that_shares_nodes(made, site, name):
    script = made[name]
    assert site.default(gpu=True).name == "gpu-whole"
    assert _partition(script) == "gpu-shared"
    # the dev partition also shares nodes, but is not for production (HPC415 does not name it either)
    assert "#SBATCH --gpus-per-node=1" in script or "--gres=gpu:1" in script


@pytest.mark.parametrize("name", PART_OF_NODE)
def test_a_one_gpu_example_lints_clean_where_it_lands(made, site, name):
    findings = [f for f in lint(made[name], site) if f.severity in ("error", "warning")]
    assert findings == []


def test_the_description_says_why_the_example_is_not_on_the_default(site):
    desc = examples(site)["single-gpu"].description
    assert "partition gpu-shared" in desc and "Partition gpu-whole (the default GPU partition)" in desc


def test_the_multi_node_example_keeps_the_whole_node_partition_with_every_gpu(made, site):
    script = made["multi-node-torchrun"]
    assert _partition(script) == "gpu-whole"
    assert not [f for f in lint(script, site) if f.code == "HPC415"]


def test_without_a_sharing_partition_the_example_stays_on_the_default_and_hpc415_still_warns(site):
    only_whole = _with_partitions(site, lambda p: p if p.name in ("gpu-whole", "cpu-shared") else None)
    script = examples(only_whole)["single-gpu"].render()
    assert _partition(script) == "gpu-whole"
    assert "which shares nodes" not in examples(only_whole)["single-gpu"].description
    assert [f.code for f in lint(script, only_whole) if f.code == "HPC415"] == ["HPC415"]


def test_a_sharing_partition_that_takes_no_jobs_or_is_restricted_is_not_picked(site):
    for change in ({"state": "DOWN"}, {"restricted": True}):
        changed = _with_partitions(site, lambda p: p.replace(**change) if p.name == "gpu-shared" else p)
        assert _partition(examples(changed)["single-gpu"].render()) == "gpu-whole", change


def test_the_examples_pick_the_partition_hpc415_names(site):
    job = SlurmJob(partition="gpu-whole", account="proj0001", gpus_per_node=1, cpus_per_task=8)
    named = [p.name for p in sharing_partitions(site, site.default(gpu=True), job)]
    assert named == ["gpu-shared"]
    [warning] = whole_node_warnings(site, job)
    assert warning.message.endswith("or use a partition that shares nodes: gpu-shared")
    assert partition_sharing_nodes(site, site.default(gpu=True), job).name == "gpu-shared"


def test_a_job_that_uses_whole_nodes_is_not_moved(site):
    whole = site.default(gpu=True)
    all_gpus = SlurmJob(partition="gpu-whole", gpus_per_node=4)
    assert partition_sharing_nodes(site, whole, all_gpus) is None
    shared = next(p for p in site.partitions if p.name == "gpu-shared")
    assert partition_sharing_nodes(site, shared, SlurmJob(partition="gpu-shared", gpus_per_node=1)) is None
    # three nodes: gpu-shared allows two, so nothing fits
    assert partition_sharing_nodes(site, whole, SlurmJob(partition="gpu-whole", nodes=3, gpus_per_node=1)) is None


def test_a_site_without_gpus_moves_a_few_cpus_off_a_whole_node_default(site):
    cpu_site = _with_partitions(site, lambda p: None if p.has_gpus else p).replace(
        gpu_vendor="none", default_gpu_partition="", default_partition="cpu-whole")
    cpu_site = cpu_site.replace(partitions=(Partition(name="cpu-whole", max_time="1-00:00:00", max_nodes=32,
                                                      cpus_per_node=128, mem_per_node="256G", whole_nodes=True),
                                            *cpu_site.partitions))
    script = examples(cpu_site)["single-gpu"].render()
    assert _partition(script) == "cpu-shared"
    assert not [f for f in lint(script, cpu_site) if f.code == "HPC415"]
    assert "(the default partition)" in examples(cpu_site)["single-gpu"].description


@pytest.mark.parametrize("name", ["midway3", "generic", "local"])
def test_shipped_profiles_keep_their_default_gpu_partition(name):
    profile = load_profile(name)
    default = profile.default(gpu=True) or profile.default()
    script = examples(profile)["single-gpu"].render()
    assert _partition(script) == (default.name if default is not None else "")


def test_profile_check_notes_a_whole_node_default_gpu_partition(site):
    note = whole_node_default_note(site)
    assert "default_gpu_partition gpu-whole gives every job whole nodes" in note
    assert 'set default_gpu_partition = "gpu-shared"' in note
    assert whole_node_default_note(site.replace(default_gpu_partition="gpu-shared")) == ""
    no_sharing = _with_partitions(site, lambda p: p if p.name != "gpu-shared" else None)
    assert whole_node_default_note(no_sharing) == ""
    for name in ("midway3", "generic", "local"):
        assert whole_node_default_note(load_profile(name)) == ""


# ------------------------------------------------------------------------------------------------
# B5: the other vendor's words in the deck
# ------------------------------------------------------------------------------------------------
AMD_DECK = """\
# Containers

- Pull once, then `exec` with `--nv` on the GPU node
- `--nv` for NVIDIA GPUs, `--rocm` for AMD ones
- Read it outside in: srun → apptainer exec --nv → torchrun
- `singularity exec` and `apptainer exec` take the same options
- Prefer official or NGC images, pinned
- Check the GPUs with `nvidia-smi`

<!-- hpcw: example single-gpu -->
```bash
```

```bash
nvidia-smi
```

```text
docker://nvcr.io/nvidia/pytorch:24.05-py3
```
"""


def _deck(tmp_path: Path, text: str, profile: str) -> Path:
    path = tmp_path / slides.DECK_NAME
    path.write_text(text, encoding="utf-8")
    slides.sync_deck(path, profile=profile)
    return path


def test_check_reports_nvidia_words_and_apptainer_on_an_amd_singularity_site(tmp_path):
    path = _deck(tmp_path, AMD_DECK, PROFILE_PATH)
    text = path.read_text(encoding="utf-8")
    assert "singularity exec" in text and "--rocm" in text  # the generated block uses the site's program and flag
    found = slides.vendor_leftovers(text, PROFILE_PATH)
    lines = [int(p.split(":")[1]) for p in found]
    gen_start = text.splitlines().index("<!-- hpcw: example single-gpu -->") + 1
    gen_end = text.splitlines().index("```", gen_start) + 1
    assert not [n for n in lines if gen_start < n <= gen_end], found  # nothing in the generated block
    by_line = {n: [p for p in found if p.startswith(f"workshop.md:{n}:")] for n in set(lines)}
    assert "'--nv' is the GPU flag for NVIDIA GPUs" in by_line[3][0] and "write --rocm" in by_line[3][0]
    assert 4 not in by_line  # names the site's flag too: a comparison
    assert sorted(p.split(": ", 1)[1][:16] for p in by_line[5]) == ["'--nv' is the GP", "'apptainer exec'"]
    assert "write singularity" in next(p for p in by_line[5] if "apptainer exec" in p)
    assert 6 not in by_line  # names singularity too
    assert "'NGC' is NVIDIA's image registry" in by_line[7][0] and "docker://rocm/pytorch" in by_line[7][0]
    assert "write rocm-smi" in by_line[8][0]
    bash_line = text.splitlines().index("nvidia-smi") + 1
    ngc_line = text.splitlines().index("docker://nvcr.io/nvidia/pytorch:24.05-py3") + 1
    assert "'nvidia-smi' is AMD" not in by_line[bash_line][0] and "NVIDIA's GPU tool" in by_line[bash_line][0]
    # one problem for the line: the whole reference, not also its registry
    assert len(by_line[ngc_line]) == 1 and "'docker://nvcr.io/nvidia/pytorch:24.05-py3' is a CUDA image" in \
        by_line[ngc_line][0]
    assert set(lines) == {3, 5, 7, 8, bash_line, ngc_line}
    # check_deck reports them with the linter's problems, and the CLI fails
    assert set(found) <= set(slides.check_deck(path, PROFILE_PATH))
    assert slides.main(["check", "--slides-dir", str(tmp_path), "--profile", PROFILE_PATH]) == 1


def test_a_gpu_flag_in_a_bash_block_is_left_to_the_linter(tmp_path):
    text = "# x\n\n```bash\napptainer exec --nv img.sif python train.py\n```\n"
    assert slides.vendor_leftovers(text, PROFILE_PATH) == []
    path = _deck(tmp_path, text, PROFILE_PATH)
    problems = slides.check_deck(path, PROFILE_PATH)
    assert any("HPC218" in p for p in problems) and any("HPC414" in p for p in problems)


def test_check_reports_amd_words_on_an_nvidia_site():
    text = ("# GPUs\n\n- `--rocm` on the GPU node\n- `--nv` on NVIDIA, `--rocm` on AMD\n"
            "- pull docker://rocm/pytorch:rocm6.2_ubuntu22.04_py3.10_pytorch_release_2.3.0\n- `rocm-smi` shows them\n")
    found = slides.vendor_leftovers(text, "midway3")
    assert [p.split(":")[1] for p in found] == ["3", "5", "6"]
    assert "write --nv" in found[0] and "midway3's GPUs are NVIDIA" in found[0]
    assert "'docker://rocm/pytorch:" in found[1] and "a ROCm image" in found[1]
    assert "write nvidia-smi" in found[2]
    # a line that names the site's own tool too compares the two
    assert slides.vendor_leftovers("# x\n\n- `nvidia-smi` here, `rocm-smi` on AMD nodes\n", "midway3") == []
    # midway3 has Apptainer: its commands are fine there
    assert slides.vendor_leftovers("# x\n\nRun apptainer exec --nv img.sif\n", "midway3") == []


def test_a_site_with_both_vendors_or_none_is_not_checked_for_vendor_words(site):
    text = "# x\n\n- Check with `nvidia-smi`\n"
    assert len(slides.vendor_leftovers(text, PROFILE_PATH)) == 1
    assert slides._site_vendor(site) == "amd"
    assert slides._site_vendor(load_profile("midway3")) == "nvidia"
    both = _with_partitions(site, lambda p: p.replace(gpu_vendor="nvidia") if p.name == "gpu-dev" else p)
    assert slides._site_vendor(both) == ""
    assert slides._site_vendor(_with_partitions(site, lambda p: None if p.has_gpus else p).replace(
        gpu_vendor="none")) == ""


@pytest.mark.parametrize("name", ["midway3", "generic", "local"])
def test_the_shipped_deck_has_no_vendor_leftovers_for_the_shipped_profiles(name):
    text = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
    assert slides.vendor_leftovers(text, name) == []
