"""Session 11: the command line's handling of bad input (audit H2, findings 1, 2, 5, 6, 8, 9, 10, 12, 13, 17, 18)."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import FileError, OverwriteError
from hpcwidgets.files import read_text, special_kind, write_atomic

BOM = b"\xef\xbb\xbf"
GOOD = "#!/bin/bash\n#SBATCH --time=10\nsrun hostname\n"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    return code, out, err


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("hpcwidgets: error:")]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket(tmp_path: Path):
    path = tmp_path / "sock.sh"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    yield path
    server.close()


# ==============================================================================================
# finding 1: apptainer instance start|stop|list, as apptainer spells them

def test_instance_commands_take_apptainers_own_form(capsys) -> None:
    code, out, _ = run(capsys, "apptainer", "instance", "start", "--nv", "img.sif", "myinst")
    assert code == 0 and out.strip() == "apptainer instance start --nv img.sif myinst"
    code, out, _ = run(capsys, "apptainer", "instance", "stop", "myinst")
    assert code == 0 and out.strip() == "apptainer instance stop myinst"
    code, out, _ = run(capsys, "apptainer", "instance", "list")
    assert code == 0 and out.strip() == "apptainer instance list"


def test_instance_stop_has_no_start_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["apptainer", "instance", "stop", "--nv", "myinst"])
    assert exc.value.code == 2 and "unrecognized arguments: --nv" in capsys.readouterr().err
    code, _, err = run(capsys, "apptainer", "instance", "stop")
    assert code == 2 and errors(err) == ["hpcwidgets: error: name: instance stop needs an instance name"]


def test_a_model_field_named_like_an_output_option_stays_apart(tmp_path, capsys) -> None:
    """apptainer pull has its own --force (written --force-value here): -o's --force must not turn it on."""
    target = tmp_path / "pull.sh"
    target.write_text("old\n")
    code, _, _ = run(capsys, "apptainer", "pull", "-o", str(target), "--force", "x.sif", "docker://a/b:1")
    assert code == 0 and target.read_text() == "apptainer pull x.sif docker://a/b:1\n"
    code, out, _ = run(capsys, "apptainer", "pull", "--force-value", "x.sif", "docker://a/b:1", "-o", "-")
    assert code == 0 and out.strip() == "apptainer pull --force x.sif docker://a/b:1"
    code, _, err = run(capsys, "apptainer", "pull", "--force-value", "x.sif", "docker://a/b:1", "-o", str(target))
    assert code == 2 and "already exists" in err  # the model's --force does not allow -o to replace the file


# ==============================================================================================
# finding 2: never replace what is not a regular file

@pytest.mark.parametrize("force", [[], ["--force"]])
def test_output_never_replaces_a_fifo(fifo, capsys, force) -> None:
    code, _, err = run(capsys, "examples", "single-gpu", "-o", str(fifo), *force)
    assert code == 2 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (line,) = errors(err)
    assert "is a named pipe (FIFO), not a regular file" in line and "leave -o out" in line
    assert "allow replacing it" not in line  # --force would not help: it is not offered


def test_output_never_replaces_a_socket_or_what_a_link_points_to(unix_socket, tmp_path) -> None:
    link = tmp_path / "link.sh"
    link.symlink_to(unix_socket)
    for target in (unix_socket, link):
        with pytest.raises(FileError, match="is a socket, not a regular file") as info:
            write_atomic(target, "x\n", force=True)
        assert not isinstance(info.value, OverwriteError)
    assert stat.S_ISSOCK(os.lstat(unix_socket).st_mode) and link.is_symlink()


def test_special_kind_names_the_kind(fifo, tmp_path) -> None:
    assert special_kind(fifo) == "a named pipe (FIFO)"
    assert special_kind(tmp_path) == "" and special_kind(tmp_path / "missing") == ""
    assert special_kind("/dev/null") == "a character device"


def test_the_own_output_streams_point_at_leaving_o_out(fifo, capsys, monkeypatch) -> None:
    """-o /dev/stdout is the pipe or terminal behind it: refused with the advice to print instead."""
    fd = os.open(fifo, os.O_RDWR)
    try:
        with pytest.raises(FileError, match=r"/dev/fd/\d+ is a named pipe.*to print the text, leave -o out"):
            write_atomic(f"/dev/fd/{fd}", "x\n", force=True)
    finally:
        os.close(fd)


def test_a_file_that_cannot_be_replaced_is_not_offered_force(tmp_path, monkeypatch) -> None:
    job = tmp_path / "job.sh"
    job.write_text("mine\n")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path else real_access(p, mode))
    for force in (False, True):
        with pytest.raises(FileError, match=f"the folder {tmp_path} is not writable for you") as info:
            write_atomic(job, "new\n", force=force)
        assert not isinstance(info.value, OverwriteError) and "--force" not in str(info.value)
    assert job.read_text() == "mine\n"


def test_a_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch) -> None:
    import tempfile

    def denied(*a, **kw):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(FileError, match=f"Permission denied: the folder {tmp_path} is not writable for you; "
                                        "choose a folder you can write to"):
        write_atomic(tmp_path / "new.sh", "x\n")


def test_output_dash_prints_and_an_empty_name_is_refused(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "examples", "single-gpu", "-o", "-")
    assert code == 0 and out.startswith("#!/bin/bash") and not (tmp_path / "-").exists()
    code, out, err = run(capsys, "examples", "single-gpu", "-o", "")
    assert code == 2 and out == "" and "no file name given" in err


# ==============================================================================================
# finding 5: a byte-order mark is the finding HPC315, like any other

def test_lint_reports_a_bom_as_hpc315_in_json(tmp_path, capsys) -> None:
    p = tmp_path / "bom.sh"
    p.write_bytes(BOM + GOOD.encode())
    code, out, err = run(capsys, "lint", "--format", "json", str(p))
    found = json.loads(out)
    assert code == 1 and [f["code"] for f in found] == ["HPC315"] and found[0]["fix"]
    assert "byte-order mark" in found[0]["message"] and "byte-order mark" not in err
    code, out, err = run(capsys, "lint", "--ignore", "HPC315", str(p))
    assert code == 0 and out == "" and err.startswith("0 error(s)")
    code, out, _ = run(capsys, "lint", "--select", "HPC101", str(p))
    assert code == 0 and out == ""


def test_lint_fix_removes_a_bom_as_the_hpc315_fix(tmp_path, capsys) -> None:
    p = tmp_path / "bom.sh"
    p.write_bytes(BOM + GOOD.encode())
    code, _, err = run(capsys, "lint", "--fix", str(p))
    assert code == 0 and "fixed HPC315" in err and p.read_bytes() == GOOD.encode()


def test_a_bom_in_a_file_that_switches_hpc315_off_is_not_reported(tmp_path, capsys) -> None:
    p = tmp_path / "bom.sh"
    p.write_bytes(BOM + b"#!/bin/bash\n# hpcw: disable-file=HPC315\n#SBATCH --time=10\nsrun hostname\n")
    code, out, _ = run(capsys, "lint", str(p))
    assert code == 0 and "HPC315" not in out


def test_lint_fix_leaves_a_socket_a_read_only_file_and_says_so(unix_socket, tmp_path, capsys) -> None:
    code, _, err = run(capsys, "lint", "--fix", str(unix_socket))
    assert code == 2 and "is a socket, not a regular file, and --fix rewrites files in place" in err
    ro = tmp_path / "ro.sh"
    ro.write_bytes(BOM + GOOD.encode())
    ro.chmod(0o444)
    code, _, err = run(capsys, "lint", "--fix", str(ro))
    assert code == 2 and "read-only (mode 444)" in err and "chmod u+w" in err
    assert ro.read_bytes() == BOM + GOOD.encode() and not (tmp_path / "ro.sh.bak").exists()


def test_lint_fix_says_other_hard_links_keep_the_old_text(tmp_path, capsys) -> None:
    p = tmp_path / "job.sh"
    p.write_bytes(BOM + GOOD.encode())
    os.link(p, tmp_path / "other.sh")
    code, _, err = run(capsys, "lint", "--fix", str(p))
    assert code == 0 and "had another name (a hard link), which keeps the original text" in err


# ==============================================================================================
# finding 6: options after the image; our own options swallowed by the program's words

def test_an_option_after_the_image_is_refused(capsys) -> None:
    code, out, err = run(capsys, "apptainer", "exec", "img.sif", "--nv", "python", "train.py")
    assert code == 2 and out == ""
    (line,) = errors(err)
    assert "--nv comes after IMAGE, so it would be run as the program" in line
    assert "hpcwidgets apptainer exec --nv … IMAGE python …" in line


def test_runscript_arguments_may_be_options(capsys) -> None:
    code, out, _ = run(capsys, "apptainer", "run", "img.sif", "--epochs", "3")
    assert code == 0 and out.strip() == "apptainer run img.sif --epochs 3"


def test_output_options_among_the_programs_words_are_warned_about(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "apptainer", "exec", "img.sif", "python", "t.py", "-o", "run.sh")
    assert code == 0 and out.strip() == "apptainer exec img.sif python t.py -o run.sh"
    assert "warning: -o run.sh came after IMAGE, so it became part of the command" in err
    assert not (tmp_path / "run.sh").exists()
    code, _, err = run(capsys, "torchrun", "train.py", "--epochs", "3", "--format=json")
    assert code == 0 and "--format=json came after SCRIPT" in err
    code, _, err = run(capsys, "apptainer", "exec", "-o", "-", "img.sif", "python", "t.py", "-o", "out/")
    assert code == 0 and "warning" not in err  # -o was given where hpcwidgets reads it: the program's is its own


def test_help_says_where_the_trailing_words_go(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["apptainer", "exec", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Every word after IMAGE is passed on as written, options too" in out


# ==============================================================================================
# finding 8: an empty layer removes it

@pytest.fixture
def torchrun_job(tmp_path, capsys) -> Path:
    path = tmp_path / "job.json"
    assert main(["examples", "multi-node-torchrun", "--format", "json", "-o", str(path)]) == 0
    capsys.readouterr()
    return path


def test_an_empty_layer_option_removes_the_layer(torchrun_job, capsys) -> None:
    code, out, _ = run(capsys, "workflow", "--from", str(torchrun_job), "--srun", "", "--format", "json")
    assert code == 0 and "srun" in torchrun_job.read_text() and json.loads(out).get("srun") is None
    code, out, _ = run(capsys, "workflow", "--from", str(torchrun_job), "--set", "launcher=", "--set",
                       "program=python t.py", "--format", "json")
    assert code == 0 and json.loads(out).get("launcher") is None and json.loads(out)["program"] == ["python", "t.py"]
    code, out, _ = run(capsys, "workflow", "--from", str(torchrun_job), "--prepare", "", "--format", "json")
    assert code == 0 and "prepare" in torchrun_job.read_text() and json.loads(out).get("prepare", []) == []


def test_set_takes_a_layers_command_line(torchrun_job, capsys) -> None:
    code, out, _ = run(capsys, "workflow", "--from", str(torchrun_job), "--set",
                       "srun=srun --ntasks-per-node=1 --label", "--format", "json")
    assert code == 0 and json.loads(out)["srun"]["label"] is True


def test_the_layer_help_says_what_empty_does(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["workflow", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "An empty value ('') removes it." in out and "An empty value ('') empties the list." in out


# ==============================================================================================
# finding 9: submit

@pytest.fixture
def no_sbatch(monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("sbatch must not be called")
    monkeypatch.setattr("hpcwidgets.run.slurm.submit", refuse)


def stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_submit_names_a_directory_and_empty_input(tmp_path, capsys, monkeypatch, no_sbatch) -> None:
    code, _, err = run(capsys, "submit", str(tmp_path))
    assert code == 2 and "it is a directory; give the name of a file in it" in err
    stdin(monkeypatch, b"")
    code, _, err = run(capsys, "submit", "-")
    assert code == 2 and errors(err)[0].startswith("hpcwidgets: error: standard input is empty")
    stdin(monkeypatch, b"srun hostname")
    code, _, err = run(capsys, "submit", "-")
    assert code == 2 and "does not start with a #! line" in err


@pytest.mark.parametrize("data,said,fixable", [
    (b"", "the file is empty", False),
    (GOOD.replace("\n", "\r\n").encode(), "Windows line endings", True),
    (BOM + GOOD.encode(), "byte-order mark", True),
])
def test_submit_refuses_what_sbatch_refuses(tmp_path, capsys, no_sbatch, data, said, fixable) -> None:
    p = tmp_path / "job.sh"
    p.write_bytes(data)
    code, _, err = run(capsys, "submit", str(p))
    assert code == 2 and said in err and "nothing was submitted" in err
    assert ("hpcwidgets lint --fix" in err) == fixable


# ==============================================================================================
# finding 10: parse

def test_parse_says_a_saved_model_is_rendered_with_from(tmp_path, capsys) -> None:
    for fmt, cmd in (("json", "workflow"), ("toml", "workflow")):
        path = tmp_path / f"job.{fmt}"
        assert main(["examples", "single-gpu", "--format", fmt, "-o", str(path)]) == 0
        capsys.readouterr()
        code, _, err = run(capsys, "parse", str(path))
        (line,) = errors(err)
        assert code == 2 and "is a saved model" in line and f"hpcwidgets {cmd} --from {path}" in line
    path = tmp_path / "sbatch.json"
    assert main(["sbatch", "--time", "10", "--format", "json", "-o", str(path)]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "parse", str(path))
    assert code == 2 and f"hpcwidgets sbatch --from {path}" in err


def test_parse_refuses_an_empty_file_and_warns_about_crlf(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.sh"
    empty.write_text("")
    code, out, err = run(capsys, "parse", str(empty))
    assert code == 2 and out == "" and "the file is empty" in err
    crlf = tmp_path / "crlf.sh"
    crlf.write_bytes(GOOD.replace("\n", "\r\n").encode())
    code, out, err = run(capsys, "parse", str(crlf))
    assert code == 0 and json.loads(out)["job"]["time"] == "10"
    assert "warning" in err and "Windows line endings" in err and f"hpcwidgets lint --fix {crlf}" in err


# ==============================================================================================
# finding 12: convert speaks of the command typed

def test_convert_without_an_action_lists_the_actions(capsys) -> None:
    code, _, err = run(capsys, "convert", "apptainer")
    (line,) = errors(err)
    assert code == 2 and "convert translates apptainer exec, run and shell commands" in line
    assert "not a command this reader knows" not in line


def test_convert_reports_the_input_commands_problems(capsys) -> None:
    code, _, err = run(capsys, "convert", "apptainer", "exec")
    assert code == 2 and all(line.startswith("hpcwidgets: error: apptainer exec: ") for line in errors(err))
    assert "ch-run" not in err
    code, _, err = run(capsys, "convert", "ch-run", "./img")
    assert code == 2 and errors(err) == ["hpcwidgets: error: ch-run: command: ch-run needs a command after --, "
                                         "e.g. python train.py"]


# ==============================================================================================
# finding 13: --set on a value that has no fields

def test_set_into_a_plain_value_says_so(torchrun_job, capsys) -> None:
    code, _, err = run(capsys, "workflow", "--from", str(torchrun_job), "--set", "job.nodes.x=3")
    (line,) = errors(err)
    assert code == 2 and "nodes is a single value (2), not a layer" in line and "--set job.nodes=VALUE" in line
    assert "--from" not in line
    code, _, err = run(capsys, "workflow", "--from", str(torchrun_job), "--set", "container.binds.src=/x")
    assert code == 2 and "binds is a list" in err and "--set container.binds= empties" in err


# ==============================================================================================
# finding 17: values that are options

def test_other_options_take_an_option_as_their_value(capsys) -> None:
    code, out, _ = run(capsys, "sbatch", "--extra-directives", "--signal=USR1@90")
    assert code == 0 and "#SBATCH --signal=USR1@90" in out
    code, out, _ = run(capsys, "srun", "--extra", "--overlap", "true")
    assert code == 0 and out.strip() == "srun --overlap true"
    code, out, _ = run(capsys, "apptainer", "exec", "img.sif", "python", "t.py", "--extra", "--x")
    assert code == 0 and out.strip() == "apptainer exec img.sif python t.py --extra --x"  # the program's words


def test_a_missing_value_says_how_to_write_one_that_starts_with_a_dash(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sbatch", "--partition"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "written joined to it: --partition=-VALUE" in err


# ==============================================================================================
# finding 18: smaller messages

def test_reading_a_missing_file_suggests_a_close_name_and_names_a_dangling_link(tmp_path) -> None:
    (tmp_path / "job.sh").write_text(GOOD)
    with pytest.raises(FileError, match="No such file or directory; did you mean .*job.sh\\?"):
        read_text(tmp_path / "jb.sh")
    link = tmp_path / "link.sh"
    link.symlink_to("gone.sh")
    with pytest.raises(FileError, match="it is a symbolic link to gone.sh, which does not exist"):
        read_text(link)


def test_examples_list_follows_format(capsys) -> None:
    code, out, _ = run(capsys, "examples", "--format", "json")
    listed = json.loads(out)
    assert code == 0 and {"name", "description"} == set(listed[0]) and "single-gpu" in [e["name"] for e in listed]


def test_submit_passes_a_pipes_text_not_the_emptied_pipe(fifo, capsys, monkeypatch) -> None:
    """hpcwidgets submit <(…): the pipe is read for the checks, so sbatch gets its text, not the pipe."""
    import threading
    from types import SimpleNamespace
    given = []
    monkeypatch.setattr("hpcwidgets.run.slurm.submit",
                        lambda script, **kw: given.append(script) or SimpleNamespace(created_dirs=(), id="7"))
    writer = threading.Thread(target=lambda: fifo.write_text(GOOD))
    writer.start()
    code, out, _ = run(capsys, "submit", str(fifo))
    writer.join()
    assert code == 0 and out == "7\n" and given == [GOOD]


def test_workshop_build_never_reads_or_replaces_a_pipe(tmp_path, capsys) -> None:
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    solution = sorted((Path(__file__).parents[1] / "solutions").glob("*.ipynb"))[0]
    (tmp_path / "solutions" / solution.name).write_bytes(solution.read_bytes())
    os.mkfifo(tmp_path / "exercises" / solution.name)
    code, _, err = run(capsys, "workshop", "build", "--root", str(tmp_path))
    assert code == 2 and "is a named pipe (FIFO), not a regular file" in err
    assert stat.S_ISFIFO(os.lstat(tmp_path / "exercises" / solution.name).st_mode)


def test_profile_list_says_which_folder_it_skipped(monkeypatch, capsys):
    """A folder on the search path that cannot be read is skipped by list_profiles, which says so in its notes:
    the CLI prints them, so a user knows why their site's profiles are missing."""
    import hpcwidgets.profiles as profiles
    real = profiles.list_profiles

    def listing(*, notes=None):
        if notes is not None:
            notes.append("cannot read /srv/site-profiles (Permission denied); skipped")
        return real()
    monkeypatch.setattr(profiles, "list_profiles", listing)
    from hpcwidgets.cli import main
    assert main(["profile", "list"]) == 0
    out, err = capsys.readouterr()
    assert "generic" in out and "note: cannot read /srv/site-profiles" in err
