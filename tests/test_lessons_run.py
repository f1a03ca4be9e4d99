"""``lessons.run_job``: where a lesson's job runs and what it leaves behind (Slurm replaced by a stand-in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import need
from hpcwidgets import lessons
from hpcwidgets.run import slurm

LOG = "epoch 1 loss 2.0\nepoch 2 loss 1.0\n"


class _Job:
    """Writes its log into the submission directory, as sbatch's default --output would."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        (cwd / "slurm-7.out").write_text(LOG)

    def wait(self, timeout: float) -> str:
        return "COMPLETED"

    def output(self) -> str:
        return (self.cwd / "slurm-7.out").read_text()

    def info(self):  # noqa: ANN201
        return type("Info", (), {"nodes": "n1"})()

    def cancel(self) -> None:
        raise AssertionError("a finished job is not cancelled")


@pytest.fixture()
def submitted(monkeypatch):
    where: list[Path] = []

    def submit(text, *, env=None, cwd=None):  # noqa: ANN001, ANN202
        where.append(Path(cwd))
        return _Job(Path(cwd))
    monkeypatch.setattr(slurm, "submit", submit)
    return where


def test_a_job_without_workdir_leaves_no_directory_behind(submitted):
    result = lessons.run_job("#!/bin/bash\necho hi\n")
    assert result.state == "COMPLETED" and result.nodelist == "n1"
    assert "epoch 2 loss 1.0" in result.output_tail
    assert submitted[0].name.startswith("hpcw-lesson-job-")
    assert not submitted[0].exists()


def test_a_job_with_a_workdir_keeps_its_log_there(submitted, tmp_path):
    result = lessons.run_job("#!/bin/bash\necho hi\n", workdir=tmp_path / "runs")
    assert submitted == [tmp_path / "runs"]
    assert (tmp_path / "runs" / "slurm-7.out").read_text() == LOG
    assert result.state == "COMPLETED"


# ---------------------------------------------------------------------------------------------
# the top of a lesson's hand-written script: it fits the site, so an example shows only its own mistake

@pytest.mark.parametrize("profile", ["generic", "midway3", "local"])
def test_a_gpu_example_on_the_site_head_has_only_the_mistake_it_teaches(profile):
    from hpcwidgets.lint import lint
    from hpcwidgets.profiles import load_profile
    site = load_profile(profile)
    head = lessons.job_head(site, gpus=1)
    assert head.startswith("#!/bin/bash\n#SBATCH --partition=")
    no_flag = head + f'{site.apptainer_binary} exec "$SCRATCH/images/pytorch_24.05.sif" python train.py\n'
    # what the lesson's findings table shows: HPC416 about a runtime the cluster only renders (the practice
    # cluster's Apptainer) is left out there, with a note, as every Apptainer example would repeat it
    shown = {f.code for f in lessons.findings_shown(lint(no_flag, profile)) if f.severity != "info"}
    assert shown == {"HPC201"}, shown
    fixed = no_flag.replace("exec ", "exec --nv ")
    assert {f.code for f in lessons.findings_shown(lint(fixed, profile)) if f.severity != "info"} == set()
    # left out of the table only where the profile lists Apptainer as render-only
    hidden = {f.code for f in lint(fixed, profile)} - {f.code for f in lessons.findings_shown(lint(fixed, profile))}
    assert hidden == ({"HPC416"} if "apptainer" in site.runtimes_render_only else set()), hidden


def test_the_head_names_the_gpu_partition_the_options_and_the_module():
    from hpcwidgets.profiles import load_profile
    generic, local = load_profile("generic"), load_profile("local")
    assert lessons.job_head(generic, "--nodes=2", gpus=4) == (
        "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --time=01:00:00\n#SBATCH --nodes=2\n#SBATCH --gres=gpu:4\n"
        "module load apptainer\n")
    assert lessons.job_head(generic, "--time=10") == \
        "#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --time=10\nmodule load apptainer\n"
    assert lessons.site_modules(local) == () and "module" not in lessons.job_head(local, gpus=1)


def test_two_findings_tables_in_one_cell_stay_apart(capsys):
    lessons.findings_table([], "mpirun inside the container")
    assert capsys.readouterr().out == "mpirun inside the container:\nno findings\n"


def test_a_scaling_run_leaves_nothing_in_the_temporary_folder(tmp_path, monkeypatch):
    import importlib.util
    import tempfile
    need(importlib.util.find_spec("torch") is not None, "torch is needed to run torchrun (pip install 'hpcwidgets[ml]')")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    runs = lessons.scaling_run((1,), epochs=1)
    assert runs[1]["world_size"] == 1
    assert list(scratch.iterdir()) == []  # torchrun's torchelastic_* log folders went with the run's own folder
