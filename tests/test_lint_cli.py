"""``hpcwidgets lint`` and ``hpcwidgets parse`` through ``hpcwidgets.cli.main``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hpcwidgets.cli import main

BAD = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$SLURM_JOB_NODELIST:29500 train.py
"""
WARN_ONLY = "#!/bin/bash\n#SBATCH --gres=gpu:1\nexport CUDA_LAUNCH_BLOCKING=1\npython train.py\n"
GOOD = "#!/bin/bash\n#SBATCH --gres=gpu:1\npython train.py\n"
BROKEN = '#!/bin/bash\n#SBATCH --time=00:10:00\necho "starting\npython train.py\n'


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_text_output_and_exit_1(tmp_path, capsys) -> None:
    p = write(tmp_path, "job.sh", BAD)
    assert main(["lint", str(p)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{p}:4: error HPC102 ")


def test_warnings_exit_0_and_clean_exit_0(tmp_path, capsys) -> None:
    assert main(["lint", str(write(tmp_path, "w.sh", WARN_ONLY))]) == 0
    assert "warning HPC506" in capsys.readouterr().out
    assert main(["lint", str(write(tmp_path, "g.sh", GOOD))]) == 0
    assert capsys.readouterr().out == ""


def test_json_output(tmp_path, capsys) -> None:
    p = write(tmp_path, "job.sh", BAD)
    assert main(["lint", "--format", "json", str(p)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in data] == ["HPC102"]
    assert set(data[0]) == {"path", "line", "code", "rule", "severity", "message", "fix"}
    assert data[0]["rule"] == "rendezvous-node-list"
    assert data[0]["path"] == str(p) and data[0]["line"] == 4 and data[0]["fix"]["start_line"] == 4


def test_select_and_ignore(tmp_path, capsys) -> None:
    p = write(tmp_path, "job.sh", BAD)
    assert main(["lint", "--ignore", "HPC102", str(p)]) == 0
    assert "HPC102" not in capsys.readouterr().out
    assert main(["lint", "--select", "HPC101", str(p)]) == 0
    assert main(["lint", "--select", "HPC102,HPC101", str(p)]) == 1
    capsys.readouterr()
    assert main(["lint", "--select", "HPC9999", str(p)]) == 2
    assert "unknown rule code HPC9999" in capsys.readouterr().err


def test_stdin(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(BAD))
    assert main(["lint", "-"]) == 1
    assert capsys.readouterr().out.startswith("<stdin>:4: error HPC102")


def test_unreadable_and_unparseable_exit_2(tmp_path, capsys) -> None:
    assert main(["lint", str(tmp_path / "missing.sh")]) == 2
    assert "missing.sh" in capsys.readouterr().err
    p = write(tmp_path, "broken.sh", BROKEN)
    assert main(["lint", str(p), str(write(tmp_path, "job.sh", BAD))]) == 2
    out = capsys.readouterr().out
    assert f"{p}:3: error HPC000" in out and "HPC102" in out   # the other file is still checked


def test_profile_option(tmp_path, capsys) -> None:
    p = write(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --partition=nope\npython x.py\n")
    assert main(["lint", str(p)]) == 0
    assert main(["lint", "--profile", "generic", str(p)]) == 1
    assert "HPC401" in capsys.readouterr().out
    assert main(["lint", "--profile", "no-such-site", str(p)]) == 2


def test_fix_writes_atomically_with_backup(tmp_path, capsys) -> None:
    p = write(tmp_path, "job.sh", BAD)
    assert main(["lint", "--fix", str(p)]) == 0
    captured = capsys.readouterr()
    assert "fixed HPC102" in captured.err and "job.sh.bak" in captured.err
    assert (tmp_path / "job.sh.bak").read_text() == BAD
    new = p.read_text()
    assert "scontrol show hostnames" in new and "$head_node:29500" in new
    assert main(["lint", str(p)]) == 0


def test_fix_reports_what_remains(tmp_path, capsys) -> None:
    p = write(tmp_path, "job.sh", BAD.replace("train.py", "train.py\nexport CUDA_LAUNCH_BLOCKING=1"))
    assert main(["lint", "--fix", str(p)]) == 0
    captured = capsys.readouterr()
    assert "HPC506" in captured.out and "HPC102" not in captured.out


def test_fix_refuses_stdin(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(BAD))
    assert main(["lint", "--fix", "-"]) == 2
    assert "--fix" in capsys.readouterr().err


def test_a_folder_stands_for_the_job_scripts_in_it(tmp_path, capsys) -> None:
    (tmp_path / "runs" / "old").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "node_modules").mkdir()
    write(tmp_path, "runs/old/bad.sbatch", BAD)
    write(tmp_path, "runs/warn.sh", WARN_ONLY)
    write(tmp_path, "submit_me", GOOD)                       # no ending: a job script all the same
    write(tmp_path, "runs/helper.sh", "#!/bin/bash\necho not a job\n")
    write(tmp_path, "notes.txt", "#SBATCH --time=1 is how you set it\n")
    write(tmp_path, ".git/hook.sh", BAD)
    write(tmp_path, "node_modules/x.sh", BAD)
    write(tmp_path, "runs/old/bad.sbatch.bak", BAD)           # --fix's backups are not checked again
    assert main(["lint", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert {line.split(":")[0] for line in captured.out.splitlines()} == {
        str(tmp_path / "runs" / "old" / "bad.sbatch"), str(tmp_path / "runs" / "warn.sh")}
    assert "in 3 file(s)" in captured.err


def test_a_folder_without_job_scripts_is_an_error(tmp_path, capsys) -> None:
    write(tmp_path, "helper.sh", "#!/bin/bash\necho hi\n")
    assert main(["lint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no job scripts in" in err and "#SBATCH" in err and "Traceback" not in err


def test_parse_json_and_toml(tmp_path, capsys) -> None:
    p = write(tmp_path, "job.sh", BAD)
    assert main(["parse", str(p)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "workflow" and data["job"]["nodes"] == 2
    assert data["launcher"]["nproc_per_node"] == "1"
    assert main(["parse", "--format", "toml", str(p)]) == 0
    out = capsys.readouterr().out
    assert 'kind = "workflow"' in out and "[launcher]" in out


def test_parse_malformed_exit_2(tmp_path, capsys) -> None:
    p = write(tmp_path, "broken.sh", BROKEN)
    assert main(["parse", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{p}:3:") and "quote" in err
    assert main(["parse", str(tmp_path / "nope.sh")]) == 2


@pytest.mark.parametrize("command", ["lint", "parse"])
def test_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "FILE" in capsys.readouterr().out


def test_a_code_prefix_selects_its_group(tmp_path, capsys) -> None:
    from hpcwidgets.lint import rule_codes, rules
    assert rule_codes("HPC2") == {c for c in rules() if c.startswith("HPC2")}
    assert rule_codes("hpc10") == {c for c in rules() if c.startswith("HPC10")}
    assert rule_codes("HPC10, HPC201") == {c for c in rules() if c.startswith("HPC10")} | {"HPC201"}
    p = write(tmp_path, "job.sh", BAD)
    assert main(["lint", "--select", "HPC2", str(p)]) == 0  # HPC102 is not in the group
    assert main(["lint", "--select", "HPC1", str(p)]) == 1
    assert main(["lint", "--ignore", "HPC1", str(p)]) == 0
    capsys.readouterr()
    for nothing in ("HPC9", "HPC", "HPC1X"):  # a group with no rule, or no group at all, is still an error
        assert main(["lint", "--select", nothing, str(p)]) == 2
        assert f"unknown rule code {nothing}" in capsys.readouterr().err


def test_explain_prints_one_rule_and_reads_no_file(tmp_path, capsys) -> None:
    from hpcwidgets.lint import rules
    r = rules()["HPC201"]
    for name in ("HPC201", "hpc201", r.name):
        assert main(["lint", "--explain", name]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"HPC201 {r.name} (error)\n")
        assert "Why it matters: " in out and "Fix: " in out
        assert "    apptainer exec pytorch_2.3.sif python train.py" in out  # the flagged example, indented
        assert "    apptainer exec --nv pytorch_2.3.sif python train.py" in out
    assert main(["lint", "--explain", "HPC2O1"]) == 2
    assert "no rule 'HPC2O1' (did you mean HPC201?)" in capsys.readouterr().err
    assert main(["lint", "--explain", "HPC201", str(write(tmp_path, "job.sh", BAD))]) == 2
    assert "checks no file" in capsys.readouterr().err


def test_list_rules_has_a_line_per_rule(capsys) -> None:
    from hpcwidgets.lint import rules
    assert main(["lint", "--list-rules"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(rules())
    assert lines[0].split()[1:3] == [rules()["HPC101"].severity, rules()["HPC101"].name]


def test_lint_without_files_says_what_to_give(capsys) -> None:
    assert main(["lint"]) == 2
    assert "give the job scripts to check" in capsys.readouterr().err
