"""``lessons.run_job``: where a lesson's job runs and what it leaves behind (Slurm replaced by a stand-in)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
