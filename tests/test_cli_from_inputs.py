"""Session 17: what --from says about a file it cannot start from.

Each odd input gets one message that names the file and what --from takes (or how to convert it), exit status 2,
nothing written and no traceback.
"""

from __future__ import annotations

import io
import pytest

from hpcwidgets.cli import main

#: what the job commands' --from takes, as the messages say it
TAKES = "a model saved with --format json -o FILE (or TOML), or a job script that starts with #! or #SBATCH"


def refused(capsys, *argv: str) -> str:
    """The one error line of a command that must refuse its --from file (exit 2, nothing on stdout)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


@pytest.mark.parametrize("command", [["sbatch"], ["workflow"], ["jupyter-job"]])
@pytest.mark.parametrize("name, data", [("empty.sh", b""), ("blank.sh", b"  \n\n\t\n"), ("empty.json", b""),
                                        ("empty.toml", b"")])
def test_an_empty_file_is_called_empty(command, name, data, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    line = refused(capsys, *command, "--from", str(path))
    assert line == f"hpcwidgets: error: {path} is empty; name a file that holds {TAKES}"


def test_a_command_that_takes_only_models_says_so(tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text("")
    line = refused(capsys, "apptainer", "exec", "--from", str(path))
    assert line.endswith("is empty; name a file that holds a model saved with --format json -o FILE (or TOML)")


def test_empty_standard_input_asks_for_a_file_name(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    line = refused(capsys, "sbatch", "--from", "-")
    assert line == f"hpcwidgets: error: standard input is empty; give a file name, or pipe in {TAKES}"


@pytest.mark.parametrize("text, said", [("#!/bin/bash\n", "its #! line"),
                                        ("#!/bin/bash -l\n\n# TODO: add the job\n##SBATCH --time=1:00:00\n",
                                         "its #! line and comments")])
def test_a_script_with_nothing_after_its_shebang_is_refused(text, said, tmp_path, capsys):
    path = tmp_path / "job.sh"
    path.write_text(text)
    for command in (["sbatch"], ["workflow"]):
        line = refused(capsys, *command, "--from", str(path))
        assert line == (f"hpcwidgets: error: {path} holds only {said} (no #SBATCH line, no command); "
                        f"name a file that holds {TAKES}")


@pytest.mark.parametrize("text", ["#!/bin/bash\n#SBATCH --time=01:00:00\n", "#!/bin/bash\nsrun hostname\n"])
def test_a_short_script_that_holds_something_still_loads(text, tmp_path, capsys):
    path = tmp_path / "job.sh"
    path.write_text(text)
    assert main(["sbatch", "--from", str(path)]) == 0
    assert capsys.readouterr().out.startswith("#!/bin/bash")


def test_a_directory_is_named_as_one(tmp_path, capsys):
    line = refused(capsys, "workflow", "--from", str(tmp_path))
    assert line == f"hpcwidgets: error: cannot read {tmp_path}: it is a directory; give the name of a file in it"


def test_a_binary_file_is_not_read_as_text(tmp_path, capsys):
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 4)
    line = refused(capsys, "sbatch", "--from", str(path))
    assert f"{path} is not a text file" in line


@pytest.mark.parametrize("data, says", [
    ("#!/bin/bash\n#SBATCH --job-name=café\nsrun python train.py\n".encode("cp1252"), "iconv -f cp1252 -t utf-8"),
    ("#!/bin/bash\n#SBATCH --time=01:00:00\n".encode("utf-16"), "iconv -f utf-16 -t utf-8"),
])
def test_a_windows_encoded_file_gets_the_command_that_converts_it(data, says, tmp_path, capsys):
    path = tmp_path / "job.sh"
    path.write_bytes(data)
    line = refused(capsys, "workflow", "--from", str(path))
    assert str(path) in line and says in line


def test_windows_line_ends_are_read_and_written_as_unix_ones(tmp_path, capsys):
    path = tmp_path / "job.sh"
    path.write_bytes(b"#!/bin/bash\r\n#SBATCH --time=01:00:00\r\nsrun python train.py\r\n")
    assert main(["sbatch", "--from", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and "#SBATCH --time=01:00:00\n" in out


def test_text_that_is_no_model_says_what_from_takes(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n")
    line = refused(capsys, "sbatch", "--from", str(path))
    assert line.endswith(f"is not a saved model; --from takes {TAKES}")
