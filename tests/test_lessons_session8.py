"""Lesson helpers for the audit-8 gaps: staging data on the node-local disk (lesson 10), running a shown model with
this machine's image (lesson 06), and what the installed torchrun reads (lesson 09's two spellings)."""

from __future__ import annotations

import subprocess

import pytest

import hpcwidgets as hw
from hpcwidgets import lessons
from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.lint import lint
from hpcwidgets.render import render


def _staged(profile: str):
    site = hw.load_profile(profile)
    return site, lessons.stage_to_node_local(lessons.example("single-gpu", profile),
                                             f"{site.scratch}/datasets/digits.tar", site)


@pytest.mark.parametrize("profile", ["generic", "midway3"])
def test_staging_unpacks_on_the_node_then_binds_the_copy_read_only(profile):
    site, staged = _staged(profile)
    text = render(staged)
    # a node-local folder named by a variable the job may lack ($TMPDIR) falls back to /tmp (scripts run with set -u)
    root = "${TMPDIR:-/tmp}" if site.node_local == "$TMPDIR" else site.node_local
    assert f'job_local="{root}/$SLURM_JOB_ID"' in text
    local = "$job_local/data"
    unpack = text.index(f'tar -xf "{site.scratch}/datasets/digits.tar" -C "{local}"')
    assert text.index(f'mkdir -p "{local}"') < unpack < text.index("apptainer exec")
    assert f'--bind "{local}:/data:ro"' in text
    assert text.rstrip().endswith("--data-dir /data")
    assert [f.code for f in lint(text, profile)] == []


def test_staging_with_charliecloud_binds_the_first_free_mount_point():
    _, staged = _staged("local")
    assert [b.dst for b in staged.container.binds] == ["/mnt/0", "/mnt/1", "/mnt/2"]
    assert staged.container.binds[-1].mode == ""  # ch-run binds are read-write; it has no :ro
    assert "--data-dir /mnt/2" in render(staged)
    assert [f.code for f in lint(render(staged), "local")] == []


def test_the_staging_lines_copy_the_archive_to_the_node_local_directory(tmp_path):
    """The lines run in bash: paths with spaces arrive whole, and the program's folder then holds the data."""
    data = tmp_path / "my data"
    data.mkdir()
    (data / "data.npz").write_bytes(b"npz")
    archive = tmp_path / "digits archive.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(data), "data.npz"], check=True)
    site = hw.load_profile("generic").replace(node_local=str(tmp_path / "node disk"))
    staged = lessons.stage_to_node_local(lessons.example("single-gpu", "generic"), str(archive), site)
    lines = [line for line in staged.job.setup[-4:] if not line.startswith("trap ")]
    subprocess.run(["bash", "-euc", "\n".join(lines)], check=True, env={"SLURM_JOB_ID": "42"})
    assert (tmp_path / "node disk" / "42" / "data" / "data.npz").read_bytes() == b"npz"


def test_staging_for_several_nodes_makes_a_copy_on_each():
    """The batch shell runs on the first node only: each node unpacks its own copy, one task per node, and lint
    (HPC523) has nothing to say about the result."""
    multi = lessons.example("multi-node-torchrun", "generic")
    staged = lessons.stage_to_node_local(multi, "$SCRATCH/d.tar", "generic")
    every = 'srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 '
    assert all(line.startswith(every) for line in staged.job.setup[-2:])
    assert staged.job.setup[-3] == f"trap '{every}rm -rf \"$job_local\"' EXIT"  # each node removes its own copy
    text = render(staged)
    assert every + "tar -xf" in text
    assert not [f for f in lint(text, "generic") if f.code in ("HPC523", "HPC226") or f.severity == "error"]
    unstaged = multi.replace(job=staged.job.replace(setup=tuple(line.replace(every, "") for line in staged.job.setup)),
                             container=staged.container)
    assert [f.code for f in lint(render(unstaged), "generic") if f.code == "HPC523"] == ["HPC523"]


def test_staging_refuses_a_job_without_container():
    bare = lessons.example("single-gpu", "generic").replace(container=None)
    with pytest.raises(HpcWidgetsError, match="no container"):
        lessons.stage_to_node_local(bare, "$SCRATCH/d.tar", "generic")


def test_run_command_runs_the_shown_model_with_this_machines_image(monkeypatch):
    import hpcwidgets.run.container as container
    ran = []

    def fake(model, **kw):  # noqa: ANN001, ANN003, ANN202
        ran.append(model)
        return type("Result", (), {"output": "ok\n"})()
    monkeypatch.setattr(container, "run_container", fake)
    shown = hw.ChRun(image="$SCRATCH/images/trainer", command=("id", "-u"))
    assert lessons.run_command(shown, image="/var/tmp/hpcw-images/trainer") == "ok\n"
    assert ran == [shown.replace(image="/var/tmp/hpcw-images/trainer")]
    lessons.run_command(shown)
    assert ran[-1] == shown


def test_torchrun_reads_both_spellings_and_refuses_an_unknown_option():
    pytest.importorskip("torch")
    assert lessons.torchrun_reads("--nproc_per_node=4") == lessons.torchrun_reads("--nproc-per-node=4") \
        == {"nproc_per_node": "4"}
    with pytest.raises(HpcWidgetsError, match="--nprocs=4"):
        lessons.torchrun_reads("--nprocs=4")
