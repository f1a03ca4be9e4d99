"""Bad input never escapes as a traceback, and saving never replaces a person's file.

Cross-cutting checks for the CLI (exit status 2 and one message per problem), the widget builders
(the problem in the status or the findings, never an exception out of a handler), model loading
(wrongly typed JSON/TOML), and the shared file layer (atomic writes, fresh backup names, symbolic
links, encodings).
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest

from hpcwidgets.cli import emit, main
from hpcwidgets.errors import FileError, OverwriteError, ValidationError
from hpcwidgets.files import read_text, write_atomic, write_file
from hpcwidgets.fixes import apply_fix
from hpcwidgets.lint import Fix
from hpcwidgets.spec import SlurmJob
from hpcwidgets.spec._meta import Spec
from hpcwidgets.spec.workflow import Workflow

BAD = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$SLURM_JOB_NODELIST:29500 train.py
"""
GOOD = "#!/bin/bash\n#SBATCH --time=10\n#SBATCH --gres=gpu:1\npython train.py\n"
BOM = b"\xef\xbb\xbf"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    """The single ``hpcwidgets: error:`` line of ``err`` (and no traceback)."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("hpcwidgets: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ==============================================================================================
# loading models: wrongly typed JSON/TOML is a ValidationError naming the field and the type

@pytest.mark.parametrize("data, expected", [
    ({"kind": "slurm.job", "job_name": 5}, "job_name: expected text, got 5"),
    ({"kind": "slurm.job", "job_name": ["train"]}, "job_name: expected text, got a list ['train']"),
    ({"kind": "slurm.job", "nodes": 2.5}, "nodes: expected a whole number, got 2.5"),
    ({"kind": "slurm.job", "nodes": True}, "nodes: expected a whole number, got True"),
    ({"kind": "slurm.job", "exclusive": "maybe"}, "exclusive: expected true or false, got 'maybe'"),
    ({"kind": "slurm.job", "commands": ["echo a", 3]}, "commands[1]: expected text, got 3"),
    ({"kind": "workflow", "container": {"kind": "apptainer.run", "image": "a.sif", "binds": [{"src": 5}]}},
     "container.binds[0].src: expected text, got 5"),
    ({"kind": "workflow", "container": {"image": "a.sif"}}, 'container: say which model this is: add "kind"'),
    ({"kind": "workflow", "container": {"kind": "slurm.job"}}, "container: expected one of apptainer.run"),
    ({"kind": "workflow", "container": "a.sif"}, "container: expected an object"),
    ({"kind": "workflow", "job": [1]}, "job: expected a SlurmJob (an object)"),
    ({"kind": 5}, "kind: expected the model's kind as text"),
])
def test_from_dict_refuses_wrong_types(data, expected) -> None:
    with pytest.raises(ValidationError) as info:
        Spec.from_dict(data)
    assert any(str(p).startswith(expected) for p in info.value.problems), info.value.problems


def test_from_dict_lists_every_problem_and_keeps_what_problems_reports() -> None:
    with pytest.raises(ValidationError) as info:
        SlurmJob.from_dict({"job_name": 5, "time": 10, "nodes": 2})
    assert [p.field for p in info.value.problems] == ["job_name", "time"]
    # text in a whole-number field is kept (a parsed script may hold "1-2" or "$N"); problems() judges it
    assert SlurmJob.from_dict({"nodes": "$N"}).nodes == "$N"
    # a round trip of a real model is unchanged
    wf = Workflow.from_dict(json.loads(Workflow.single_node("train.py", image="a.sif", gpus_per_node=2).to_json()))
    assert wf.container.image == "a.sif"


def test_from_json_nested_too_deeply_is_a_parse_error() -> None:
    from hpcwidgets.errors import ParseError
    with pytest.raises(ParseError, match="nested too deeply"):
        Spec.from_json("{" + '"a":{' * 5000 + "}" * 5001)


def test_cli_from_toml_with_wrong_type_names_file_and_field(tmp_path, capsys) -> None:
    p = tmp_path / "job.toml"
    p.write_text('kind = "slurm.job"\njob_name = 5\n')
    code, out, err = run(capsys, "sbatch", "--from", str(p))
    assert code == 2 and out == ""
    assert one_error(err) == f'hpcwidgets: error: {p}: job_name: expected text, got 5; write it in quotes: "5"'


@pytest.mark.parametrize("name, data, expected", [
    ("bad.json", b"\xff\xfe{}", "is UTF-16 text, not UTF-8; convert it: iconv -f utf-16"),
    ("cp.json", b'{"kind": "slurm.job", "job_name": "caf\xe9"}', "is not UTF-8 text (byte 0xe9 on line 1)"),
    ("deep.json", ("{" + '"a":{' * 5000 + "}" * 5001).encode(), "nested too deeply"),
    ("bad.toml", b'kind = "slurm.job"\njob_name = \n', "bad.toml:2:"),
    ("unknown.json", b'{"kind": "slurm.job", "nope": 1}', "unknown.json: SlurmJob has no field 'nope'"),
])
def test_cli_from_bad_files_exit_2_naming_the_file(tmp_path, capsys, name, data, expected) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    code, out, err = run(capsys, "sbatch", "--from", str(p))
    assert code == 2 and out == ""
    line = one_error(err)
    assert expected in line and name in line


def test_cli_from_json_with_bom_loads(tmp_path, capsys) -> None:
    p = tmp_path / "job.json"
    p.write_bytes(BOM + SlurmJob(job_name="x", time="10").to_json().encode())
    code, out, _ = run(capsys, "sbatch", "--from", str(p))
    assert code == 0 and "#SBATCH --job-name=x" in out


# ==============================================================================================
# writing: atomic, no silent overwrite, fresh backups, symbolic links, unencodable text

def test_write_refuses_empty_name_and_directories(tmp_path) -> None:
    with pytest.raises(FileError, match="no file name given; type a file name"):
        write_atomic("", "x")
    with pytest.raises(FileError, match="is a directory; give a file name"):
        write_atomic(tmp_path, "x", force=True)


def test_backup_never_replaces_an_existing_file(tmp_path) -> None:
    job = tmp_path / "job.sh"
    job.write_text("v1\n")
    (tmp_path / "job.sh.bak").write_text("my notes\n")
    first = write_file(job, "v2\n", force=True, backup=True)
    second = write_file(job, "v3\n", force=True, backup=True)
    assert (first.backup, second.backup) == (tmp_path / "job.sh.bak.1", tmp_path / "job.sh.bak.2")
    assert (tmp_path / "job.sh.bak").read_text() == "my notes\n"
    assert first.backup.read_text() == "v1\n" and second.backup.read_text() == "v2\n"
    assert job.read_text() == "v3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.sh", "job.sh.bak", "job.sh.bak.1", "job.sh.bak.2"]


def test_backup_without_hard_links_copies_exclusively(tmp_path, monkeypatch) -> None:
    job = tmp_path / "job.sh"
    job.write_text("v1\n")
    (tmp_path / "job.sh.bak").write_text("mine\n")

    def no_links(*_a, **_k):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_links)
    written = write_file(job, "v2\n", force=True, backup=True)
    assert written.backup == tmp_path / "job.sh.bak.1" and written.backup.read_text() == "v1\n"
    assert (tmp_path / "job.sh.bak").read_text() == "mine\n" and job.read_text() == "v2\n"
    with pytest.raises(OverwriteError):  # the fallback still refuses an existing file
        write_atomic(job, "v3\n")


def test_write_through_a_symbolic_link_keeps_the_link(tmp_path) -> None:
    real = tmp_path / "real.sh"
    real.write_text("old\n")
    link = tmp_path / "link.sh"
    link.symlink_to("real.sh")
    with pytest.raises(OverwriteError):
        write_atomic(link, "new\n")
    written = write_file(link, "new\n", force=True, backup=True)
    assert link.is_symlink() and real.read_text() == "new\n"
    assert written.path == real and written.backup == tmp_path / "real.sh.bak"


def test_dangling_link_counts_as_existing(tmp_path) -> None:
    link = tmp_path / "d.sh"
    link.symlink_to("missing.sh")
    with pytest.raises(OverwriteError, match="symbolic link to .*missing.sh, which does not exist"):
        write_atomic(link, "x\n")
    assert write_atomic(link, "x\n", force=True) == tmp_path / "missing.sh"
    assert link.is_symlink() and (tmp_path / "missing.sh").read_text() == "x\n"


def test_link_loop_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(FileError, match="too many levels of symbolic links"):
        write_atomic(tmp_path / "a", "x", force=True)


def test_unencodable_text_is_a_file_error_and_nothing_is_written(tmp_path) -> None:
    with pytest.raises(FileError, match=r"line 2, column 3.*cannot be saved as UTF-8"):
        write_atomic(tmp_path / "x.sh", "ok\nab\ud800c\n")
    assert list(tmp_path.iterdir()) == []


def test_cli_output_file_errors_exit_2(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "sbatch", "--time", "10", "-o", str(blocker / "job.sh"))
    assert code == 2 and one_error(err).startswith(f"hpcwidgets: error: cannot write {blocker / 'job.sh'}: ")
    code, _, err = run(capsys, "sbatch", "--time", "10", "-o", "/proc/job.sh")
    assert code == 2 and "cannot write /proc/job.sh" in one_error(err)


def test_cli_output_to_dangling_link_needs_force(tmp_path, capsys) -> None:
    link = tmp_path / "d.sh"
    link.symlink_to("missing.sh")
    code, _, err = run(capsys, "sbatch", "--time", "10", "-o", str(link))
    assert code == 2 and "does not exist" in one_error(err) and not (tmp_path / "missing.sh").exists()
    code, _, _ = run(capsys, "sbatch", "--time", "10", "-o", str(link), "--force")
    assert code == 0 and link.is_symlink() and (tmp_path / "missing.sh").read_text().startswith("#!")


def test_emit_unprintable_output_is_an_error(monkeypatch) -> None:
    import argparse
    from hpcwidgets.errors import HpcWidgetsError
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    with pytest.raises(HpcWidgetsError, match="line 2.*not valid UTF-8"):
        emit(argparse.Namespace(output_file=None), "ok\nbad \udcff\n")


# ==============================================================================================
# reading: encodings and byte-order marks

def test_read_text_names_the_encoding_fix(tmp_path) -> None:
    p = tmp_path / "latin1.sh"
    p.write_bytes(b"#!/bin/bash\n#SBATCH --time=10\necho 'r\xe9sum\xe9'\n")
    with pytest.raises(FileError, match=r"not UTF-8 text \(byte 0xe9 on line 3\).*iconv -f cp1252 -t utf-8"):
        read_text(p)
    with pytest.raises(FileError, match="cannot read .*: No such file"):
        read_text(tmp_path / "nope.sh")
    b = tmp_path / "bom.sh"
    b.write_bytes(BOM + b"#!/bin/bash\r\n#SBATCH --time=10\r\n")
    loaded = read_text(b)
    assert loaded.bom and loaded.text == "#!/bin/bash\n#SBATCH --time=10\n" and "byte-order mark" in loaded.notes[0]


def test_lint_bom_file_is_one_clear_error_not_hpc501(tmp_path, capsys) -> None:
    p = tmp_path / "bom.sh"
    p.write_bytes(BOM + GOOD.encode())
    code, out, err = run(capsys, "lint", str(p))
    assert code == 1 and "HPC501" not in out
    assert f"{p}:1: error HPC315" in out and "byte-order mark" in out  # a finding like any other (--format json too)
    code, _, err = run(capsys, "lint", "--fix", str(p))
    assert code == 0 and "fixed HPC315" in err
    assert p.read_bytes() == GOOD.encode() and (tmp_path / "bom.sh.bak").read_bytes().startswith(BOM)


def test_lint_and_parse_non_utf8_exit_2(tmp_path, capsys) -> None:
    p = tmp_path / "cp.sh"
    p.write_bytes(b"#!/bin/bash\n# \x93quoted\x94\npython t.py\n")
    for command in ("lint", "parse"):
        code, _, err = run(capsys, command, str(p))
        assert code == 2 and "iconv" in one_error(err)


def test_parse_bom_warns_and_reads_the_directives(tmp_path, capsys) -> None:
    p = tmp_path / "bom.sh"
    p.write_bytes(BOM + GOOD.encode())
    code, out, err = run(capsys, "parse", str(p))
    assert code == 0 and json.loads(out)["job"]["time"] == "10" and "byte-order mark" in err


# ==============================================================================================
# lint --fix: fresh backup names, symbolic links, trailing comments

def test_lint_fix_keeps_an_existing_bak(tmp_path, capsys) -> None:
    p = tmp_path / "job.sh"
    p.write_text(BAD)
    (tmp_path / "job.sh.bak").write_text("my notes\n")
    code, _, err = run(capsys, "lint", "--fix", str(p))
    assert code == 0 and f"the original is kept as {tmp_path / 'job.sh.bak.1'}" in err
    assert (tmp_path / "job.sh.bak").read_text() == "my notes\n" and (tmp_path / "job.sh.bak.1").read_text() == BAD


def test_lint_fix_through_a_link_edits_the_target(tmp_path, capsys) -> None:
    real = tmp_path / "real.sh"
    real.write_text(BAD)
    link = tmp_path / "link.sh"
    link.symlink_to("real.sh")
    code, _, err = run(capsys, "lint", "--fix", str(link))
    assert code == 0 and link.is_symlink() and "scontrol show hostnames" in real.read_text()
    assert (tmp_path / "real.sh.bak").read_text() == BAD and "the file the link points to" in err


def test_fix_keeps_a_trailing_comment() -> None:
    text = "#!/bin/bash\npython old.py  # hpcw: disable=HPC209\necho done\n"
    fixed = apply_fix(text, Fix("new", 2, 2, words=("python", "new.py")))
    assert fixed.split("\n")[1] == "python new.py  # hpcw: disable=HPC209"


# ==============================================================================================
# CLI input: word fields, bash syntax, messages

def test_set_and_options_split_word_fields_like_the_forms(capsys) -> None:
    for argv in (("--set", "program=python train.py --epochs 10"), ("--program", "python train.py --epochs 10"),
                 ("--program", "python", "--program", "train.py", "--program", "--epochs 10")):
        code, out, _ = run(capsys, "workflow", *argv)
        assert code == 0 and out.rstrip().endswith("python train.py --epochs 10"), argv
    code, out, _ = run(capsys, "workflow", "--program", "python 'my script.py'")
    assert code == 0 and out.rstrip().endswith("python 'my script.py'")


def test_set_unclosed_quote_exit_2(capsys) -> None:
    code, _, err = run(capsys, "workflow", "--set", 'program=python "train.py')
    assert code == 2 and "close the quote" in one_error(err)
    code, _, err = run(capsys, "torchrun", "--standalone", "--set", 'args=--lr "0.1', "train.py")
    assert code == 2 and "close the quote" in one_error(err)


def test_stray_words_after_a_command_option_get_a_hint(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["workflow", "--program", "python", "train.py", "--epochs", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: train.py --epochs 3" in err
    assert "quote it (--program 'python train.py --epochs 3') or repeat --program" in err


@pytest.mark.parametrize("argv, line", [
    (("sbatch", "--commands", 'echo "hi'), 'echo "hi'),
    (("workflow", "--after", 'echo "x', "--program", "python", "--program", "t.py"), 'echo "x'),
])
def test_cli_refuses_to_print_invalid_bash(tmp_path, capsys, argv, line) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    message = one_error(err)
    assert f"({line!r})" in message and "close every quote" in message
    code, _, _ = run(capsys, *argv, "-o", str(tmp_path / "job.sh"))
    assert code == 2 and not (tmp_path / "job.sh").exists()


def test_convert_one_quoted_command(capsys) -> None:
    code, out, _ = run(capsys, "convert", "apptainer exec --nv img.sif python t.py")
    assert code == 0 and "ch-run" in out and out.rstrip().endswith("-- python t.py")
    code, _, err = run(capsys, "convert", 'apptainer exec "img.sif python t.py')
    assert code == 2 and "pass the command as separate words" in one_error(err)


def test_unexpected_exception_is_one_message_not_a_traceback(monkeypatch, capsys) -> None:
    import hpcwidgets.cli.lint as lint_cli

    def broken(args):
        raise TypeError("boom")
    monkeypatch.setattr(lint_cli, "run", broken)
    monkeypatch.delenv("HPCW_DEBUG", raising=False)
    code, _, err = run(capsys, "lint", "x.sh")
    assert code == 2 and "internal error (TypeError: boom)" in one_error(err)


# ==============================================================================================
# widgets: nothing escapes a handler or load()

widgets = pytest.importorskip("ipywidgets")
from hpcwidgets.widgets.builder import SlurmBuilder, WorkflowBuilder  # noqa: E402


def status(builder) -> str:
    return builder.status.value


def test_builder_turns_a_crashing_check_into_a_finding(monkeypatch, caplog) -> None:
    def broken(self):
        raise TypeError("'>' not supported between instances of 'int' and 'str'")
    monkeypatch.setattr(SlurmJob, "_check", broken)
    with caplog.at_level(logging.DEBUG, logger="hpcwidgets.widgets.builder"):
        b = WorkflowBuilder(submit=False, profile="generic")
        assert b.load(GOOD) is True
        b.controls["slurm.ntasks_per_node"].value = "-5"
    found = {f.code: f for f in b.findings}
    assert "CHECK" in found and "TypeError" in found["CHECK"].message and "bug in hpcwidgets" in found["CHECK"].message
    assert any(r.exc_info for r in caplog.records)


def test_builder_turns_a_crashing_linter_into_a_finding(monkeypatch) -> None:
    import hpcwidgets.lint as lint_module

    def broken(*_a, **_k):
        raise TypeError("bad operand type for unary -: 'str'")
    monkeypatch.setattr(lint_module, "lint", broken)
    b = SlurmBuilder.from_script(GOOD, submit=False, profile="generic")
    assert [f.code for f in b.findings if f.code == "LINT"] == ["LINT"]
    b.controls["job_name"].value = "other"  # a handler runs: no exception
    assert "#SBATCH --job-name=other" in b.text


def test_audit_scripts_load_without_raising() -> None:
    r6 = "#!/bin/bash\n#SBATCH --nodes=1-2\n#SBATCH --ntasks=4\n#SBATCH --ntasks-per-node=2\n#SBATCH --time=10\npython t.py\n"
    WorkflowBuilder(submit=False, profile="generic").load(r6)
    s = SlurmBuilder.from_script("#!/bin/bash\n#SBATCH --mem=8GB\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\npython t.py\n",
                                 submit=False, profile="generic")
    s.controls["ntasks_per_node"].value = "-5"
    assert any(f.field == "ntasks_per_node" for f in s.findings if hasattr(f, "field"))


@pytest.mark.parametrize("text, expected", [
    ('{"kind": "slurm.job", "job_name": ["train"]}', "job_name: expected text, got a list"),
    ('{"kind":"workflow","program":["python","t.py"],"container":{"kind":"apptainer.run","image":"a.sif",'
     '"binds":[{"src":5}]}}', "container.binds[0].src: expected text, got 5"),
    ("{" + '"a":{' * 5000 + "}" * 5001, "nested too deeply"),
])
def test_builder_load_of_bad_json_returns_false_with_a_finding(text, expected) -> None:
    b = WorkflowBuilder(submit=False, profile="generic") if "workflow" in text or '"a"' in text else \
        SlurmBuilder(submit=False, profile="generic")
    before = b.text
    assert b.load(text) is False
    assert b.findings[0].code == "LOAD" and expected in b.findings[0].message
    assert b.text == before


def test_builder_load_of_non_text_is_refused() -> None:
    b = SlurmBuilder(submit=False, profile="generic")
    assert b.load(b"#!/bin/bash\n") is False and "decode" in b.findings[0].message


def test_builder_open_non_utf8_and_bom_files(tmp_path) -> None:
    b = WorkflowBuilder(submit=False, profile="generic")
    latin = tmp_path / "latin1_job.sh"
    latin.write_bytes(b"#!/bin/bash\n#SBATCH --time=10\necho 'caf\xe9'\n")
    b.path_text.value = str(latin)
    b._on_open()
    assert "hpcw-status-error" in status(b) and "iconv -f cp1252 -t utf-8" in status(b)
    bom = tmp_path / "bom.sh"
    bom.write_bytes(BOM + GOOD.encode())
    b.path_text.value = str(bom)
    b._on_open()
    assert "byte-order mark" in status(b) and "hpcw-status-error" not in status(b)
    assert "HPC501" not in [f.code for f in b.findings] and not b.text.startswith("\ufeff")
    b.path_text.value = str(tmp_path)
    b._on_open()
    assert "is a directory" in status(b)


def test_builder_save_errors_are_statuses(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = SlurmBuilder(submit=False, profile="generic")
    s.controls["job_name"].value = "a\ud800b"
    s.path_text.value = "x.sh"
    s._on_save()
    assert "Not saved" in status(s) and "cannot be saved as UTF-8" in status(s) and not (tmp_path / "x.sh").exists()
    with pytest.raises(FileError, match="type a file name"):
        s.save("")
    s.controls["job_name"].value = "ok"
    s.path_text.value = str(tmp_path)
    s._on_save()
    assert "is a directory" in status(s) and s.replace_button.layout.display == "none"


def test_builder_save_to_dangling_link_asks_first(tmp_path) -> None:
    link = tmp_path / "d.sh"
    link.symlink_to("missing.sh")
    s = SlurmBuilder(submit=False, profile="generic")
    s.path_text.value = str(link)
    s._on_save()
    assert s.replace_button.layout.display == "" and not (tmp_path / "missing.sh").exists()
    s._on_replace()
    assert link.is_symlink() and (tmp_path / "missing.sh").read_text() == s.text


def test_handler_exception_becomes_a_status(monkeypatch) -> None:
    b = SlurmBuilder(submit=False, profile="generic")

    def broken(*_a, **_k):
        raise RuntimeError("boom")
    monkeypatch.setattr(b, "_refresh_now", broken)
    b.controls["job_name"].value = "x"  # the refresh fails inside the handler
    assert "RuntimeError: boom" in status(b) and "hpcw-status-error" in status(b)
    monkeypatch.setattr(b, "reset", broken)
    b._on_reset()
    assert "boom" in status(b)


MULTI = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --time=01:00:00
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$(hostname):29500 train.py
"""


def test_apply_fix_refuses_a_finding_from_an_earlier_text() -> None:
    b = WorkflowBuilder.from_script(MULTI, submit=False, profile="generic")
    old = next(f for f in b.findings if f.code == "HPC101")
    b.controls["slurm.modules"].value = "cuda/12.1\nnccl"  # the preview moves down two lines
    before = b.text
    assert b.apply_fix(old) is False
    assert b.text == before and "earlier version" in status(b)
    current = next(f for f in b.findings if f.code == "HPC101")
    assert current.line != old.line
    assert b.apply_fix(current) is True
    assert "HPC101" not in [f.code for f in b.findings]
    assert b.text.count("train.py") == 1 and "--rdzv-backend=c10d \\\n" not in b.text.split("torchrun")[0]


def test_apply_fix_accepts_an_equal_finding_from_lint() -> None:
    from hpcwidgets.lint import lint
    b = WorkflowBuilder.from_script(MULTI, submit=False, profile="generic")
    same = next(f for f in lint(b.text, b.profile) if f.code == "HPC101")
    assert b.apply_fix(same) is True


def test_save_writes_no_backup_and_refuses_existing(tmp_path) -> None:
    s = SlurmBuilder(submit=False, profile="generic")
    target = tmp_path / "job.sh"
    s.save(target)
    with pytest.raises(OverwriteError):
        s.save(target)
    s.save(target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.sh"]


def test_read_text_of_a_path_object(tmp_path) -> None:
    p = Path(tmp_path / "ok.sh")
    p.write_text(GOOD)
    assert read_text(p).text == GOOD and read_text(p).notes == ()


@pytest.mark.parametrize("text,says", [
    ("Bootstrap: docker\nFrom: ubuntu:22.04\n%post\n  apt-get update\n", "is an Apptainer definition file"),
    ("FROM ubuntu:22.04\nRUN apt-get update\n", "is a Dockerfile"),
    ("apptainer exec --nv img.sif python t.py\n", "is a command line"),
    ("hello\n", "is not a saved model"),
])
def test_from_a_file_that_is_not_a_model_says_what_it_is(tmp_path, capsys, text, says) -> None:
    path = tmp_path / "thing.txt"
    path.write_text(text)
    assert main(["workflow", "--from", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and "--format json" in err and "Traceback" not in err


def test_a_misspelt_option_gets_the_command_usage_and_a_suggestion(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sbatch", "--partiton", "gpu"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: hpcwidgets sbatch" in err and "did you mean --partition?" in err
