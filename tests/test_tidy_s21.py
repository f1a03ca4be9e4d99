"""Four tidied places, each checked by what it does:

* spec/_toml.py writes a value with one function, ``scalar``;
* profiles: the explanations of the TOML reader's messages are tables; every entry is a message the installed reader
  gives, and a profile file with that mistake gets the entry's explanation;
* tools/venv_check.py, the Makefile's venv check, run directly with stand-in interpreters and venvs (shell scripts
  that answer as a Python of a chosen version would), and by the oldest Python 3 on the machine;
* the lessons never import the exercises (the kernel both start lives in lessons/kernel.py).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpcwidgets import profiles
from hpcwidgets.errors import ProfileError
from hpcwidgets.profiles import profile_from_toml
from hpcwidgets.spec import _toml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "venv_check.py"
MAKE = shutil.which("make")


# ------------------------------------------------------------------------------------------------
# spec/_toml.py: one writer for a value
# ------------------------------------------------------------------------------------------------
def test_one_function_writes_a_toml_value():
    assert not hasattr(_toml, "_scalar")
    assert _toml.scalar(["a\"b", 4, True, 1.5, {"k": None, "j": "x y"}]) == '["a\\"b", 4, true, 1.5, { j = "x y" }]'
    assert _toml.dumps({"t": {"v": ["x"]}}) == '[t]\nv = ["x"]\n'
    with pytest.raises(TypeError, match="cannot write object as TOML"):
        _toml.scalar(object())


def test_a_profile_is_written_with_the_same_writer_and_read_back_equal():
    import dataclasses
    from hpcwidgets.profiles import load_profile, profile_to_toml
    from hpcwidgets.spec.profile import Module
    site = dataclasses.replace(load_profile("generic"), description='say "hi"\tthen \x1b[0m\\ done',
                               modules=(Module("my tool", "tool/1.0"),))
    text = profile_to_toml(site, comments=False)
    assert 'description = "say \\"hi\\"\\tthen \\u001b[0m\\\\ done"' in text
    assert '"my tool" = "tool/1.0"' in text
    assert profile_from_toml(text, validate=False) == site


def test_a_module_given_as_a_list_is_shown_as_toml_writes_it():
    with pytest.raises(ProfileError) as err:     # spec/profile.py shows the value with scalar
        profile_from_toml('name = "x"\n[modules]\napptainer = ["a", "b"]\n', source="site.toml")
    assert 'apptainer = ["a", "b"] is a list' in str(err.value)


# ------------------------------------------------------------------------------------------------
# profiles: the TOML reader's messages, explained from tables
# ------------------------------------------------------------------------------------------------
#: a profile file for each entry of the tables: (the entry, the text, words of the explanation)
READER_MESSAGES = [
    ("Unterminated string", 'name = "x"\ndescription = """open\n', "a string in triple quotes"),
    ("Expected \"'''\"", "name = \"x\"\ndescription = '''open\n", "a string in triple quotes"),
    ("Invalid statement", 'name = "x"\n= 4\n', "this line is not a TOML statement"),
    ("Expected ']' at the end of a table declaration", 'name = "x"\n[examples\n', "write it as [name] with"),
    ("Expected ']]' at the end of an array declaration", 'name = "x"\n[[partitions]\n', "write it as [[name]] with"),
    ("Unclosed array", 'name = "x"\nruntimes = ["a" "b"]\n', "the list in the value of runtimes is not closed"),
    ("Unclosed inline table", 'name = "x"\nt = { a = 1 b = 2 }\n', "the inline table { … } in the value of t is not "
                                                                 "closed: separate its entries with commas and end it "
                                                                 "with } on the same line"),
    ("Unescaped '\\' in a string", 'name = "x"\nscratch = "C:\\data"\n', "write \\\\ for one backslash"),
    ("Invalid hex value", 'name = "x"\nscratch = "\\uZZZZ"\n', "write \\u with 4 hex digits or \\U with 8"),
    ("Escaped character is not a Unicode scalar value", 'name = "x"\nscratch = "\\uD800"\n', "\\U with 8"),
    ("Illegal character '\\n'", 'name = "x\naccount = "a"\n', "the value of name starts a quoted string that is "
                                                             "not closed on its line"),
    ("Expected \"'\"", "name = 'x\n", "the value of name starts a quoted string"),
    ("Illegal character", 'name = "x\x07"\n', "the control character '\\x07' is not allowed here"),
    ("Found invalid character", 'name = "x" # \x01\n', "the control character '\\x01' is not allowed here"),
    ("Illegal character '\\r'", 'name = "x\ry"\n', "the value of name starts a quoted string"),
    ("Invalid date or datetime", 'name = "x"\nlogin_host = 2024-02-30\n',
     "the value of login_host reads as a date but is not one: put it in quotes if it is text"),
    ("Invalid initial character for a key part", 'name = "x"\n[examples.]\n', "put any other key in quotes"),
    ("Cannot mutate immutable namespace", 'name = "x"\nexamples = { epochs = 2 }\nexamples.lr = 1\n',
     "which TOML closes where it is written"),
    ("Duplicate inline table key", 'name = "x"\nexamples = { epochs = 2, epochs = 3 }\n',
     "the inline table { … } sets 'epochs' twice: keep one"),
]


@pytest.mark.parametrize("entry,text,said", READER_MESSAGES, ids=[m[0] for m in READER_MESSAGES])
def test_each_explained_message_is_one_the_reader_gives_and_a_profile_gets_its_explanation(entry, text, said):
    with pytest.raises(tomllib.TOMLDecodeError) as read:
        tomllib.loads(text)
    plain = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(read.value))
    assert plain == entry or plain.startswith(entry), plain
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text, source="site.toml")
    message = str(err.value)
    assert said in message, message
    assert "{" not in message.replace("{ … }", "") and "check the TOML syntax" not in message


def test_every_table_entry_is_checked_against_the_reader():
    checked = {m[0] for m in READER_MESSAGES}
    in_tables = set(profiles._TOML_MESSAGES) | {start for start, _ in profiles._TOML_MESSAGE_STARTS}
    # a line break spelt as the reader spells a control character in a comment: the same explanation as
    # "Illegal character '\\n'", kept for readers that say it so
    assert in_tables - checked == {"Found invalid character '\\n'"}


def test_an_open_triple_quoted_literal_string_is_explained():
    with pytest.raises(ProfileError) as err:
        profile_from_toml("name = 'x'\ndescription = '''several\nlines\n", source="site.toml")
    assert str(err.value) == ("site.toml:3:6: not valid TOML: a string in triple quotes (\"\"\" or ''') is not closed "
                              "before the end of the file: add the closing quotes where the text ends")


# ------------------------------------------------------------------------------------------------
# tools/venv_check.py
# ------------------------------------------------------------------------------------------------
def stand_in_python(path: Path, version: str, *, venv_pip: bool = True, venv_status: int = 0) -> Path:
    """A shell script answering as Python ``version`` would to the questions the script asks; its ``-m venv --clear
    DIR`` makes a stand-in venv of the same version (with pip or not) and exits ``venv_status``."""
    path.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
          shift 3
          rm -rf "$1"
          mkdir -p "$1/bin"
          printf '#!/bin/sh\\necho {version} {venv_pip}\\n' > "$1/bin/python"
          chmod +x "$1/bin/python"
          exit {venv_status}
        fi
        echo {version}
        """), encoding="utf-8")
    path.chmod(0o755)
    return path


def stand_in_venv(folder: Path, version: str, pip: bool = True) -> Path:
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho {version} {pip}\n", encoding="utf-8")
    python.chmod(0o755)
    (folder / "marker").touch()
    return folder


def venv_check(cwd: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, str(SCRIPT), "--min", "3.10", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_a_good_venv_is_left_alone_without_a_word(tmp_path):
    stand_in_venv(tmp_path / "v", "3.11")
    for extra in ((), ("--check-only",), ("--python", str(stand_in_python(tmp_path / "py", "3.11")), "--named")):
        result = venv_check(tmp_path, "--venv", "v", *extra)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "v" / "marker").exists()


def test_the_quick_check_run_by_the_venv_s_own_python_needs_no_second_python(tmp_path):
    # this test's interpreter is a venv's: asked about its own venv it answers from itself, and its venv has pip
    assert sys.prefix != sys.base_prefix
    result = venv_check(tmp_path, "--venv", sys.prefix, "--check-only")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    older = venv_check(tmp_path, "--venv", sys.prefix, "--check-only", "--min", "3.99")
    assert older.returncode == 1 and older.stdout == older.stderr == ""


@pytest.mark.parametrize("venv", [None, ("3.11", False), ("3.9", True)], ids=["no-venv", "no-pip", "too-old"])
def test_the_quick_check_only_says_no(tmp_path, venv):
    if venv:
        stand_in_venv(tmp_path / "v", *venv)
    result = venv_check(tmp_path, "--venv", "v", "--check-only", "--python", "/nonexistent/python3")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")
    assert (tmp_path / "v").exists() == bool(venv)


def test_a_venv_without_pip_is_made_again_with_the_python_named(tmp_path):
    stand_in_venv(tmp_path / "v", "3.11", pip=False)
    python = stand_in_python(tmp_path / "py", "3.12")
    result = venv_check(tmp_path, "--venv", "v", "--python", str(python))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"v is not usable (no pip, or a Python that is gone or older than 3.10): making it again "
                             f"with {python} (Python 3.12)\n")
    assert venv_check(tmp_path, "--venv", "v", "--check-only").returncode == 0


def test_a_missing_venv_is_made(tmp_path):
    python = stand_in_python(tmp_path / "py", "3.10")
    result = venv_check(tmp_path, "--venv", "v", "--python", str(python))
    assert result.returncode == 0 and result.stdout == f"making v with {python} (Python 3.10)\n"


def test_a_python_named_of_another_version_replaces_the_venv(tmp_path):
    stand_in_venv(tmp_path / "v", "3.11")
    python = stand_in_python(tmp_path / "py", "3.12")
    assert venv_check(tmp_path, "--venv", "v", "--python", str(python)).stdout == ""   # not named: any good venv
    result = venv_check(tmp_path, "--venv", "v", "--python", str(python), "--named")
    assert result.returncode == 0
    assert f", or not {python}'s version): making it again with {python} (Python 3.12)" in result.stdout
    assert not (tmp_path / "v" / "marker").exists()


@pytest.mark.parametrize("status", [1, 0], ids=["venv-fails", "venv-without-pip"])
def test_a_python_that_cannot_make_a_venv_with_pip_stops_with_the_fix(tmp_path, status):
    python = stand_in_python(tmp_path / "py", "3.12", venv_pip=False, venv_status=status)
    result = venv_check(tmp_path, "--venv", "v", "--python", str(python))
    assert result.returncode == 1
    assert result.stderr == (f"error: {python} (Python 3.12) cannot make a venv with pip: its ensurepip is missing. On "
                             "Debian or Ubuntu: sudo apt install python3-venv (python3.12-venv for a python3.12 that "
                             "is not the default python3), then run make again; or name another Python: make lab "
                             "PYTHON=python3.11\n")


def test_a_python_too_old_is_refused_and_the_venv_kept(tmp_path):
    stand_in_venv(tmp_path / "v", "3.11", pip=False)
    python = stand_in_python(tmp_path / "py", "3.8")
    result = venv_check(tmp_path, "--venv", "v", "--python", str(python))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"error: {python} is Python 3.8; hpcwidgets needs Python >= 3.10: name a newer one, e.g. "
                             "make lab PYTHON=python3.11\n")
    assert (tmp_path / "v" / "marker").exists()


def test_a_missing_or_broken_python_is_named(tmp_path):
    result = venv_check(tmp_path, "--venv", "v", "--python", "/nonexistent/python3.42")
    assert result.returncode == 1
    assert result.stderr == ("error: there is no /nonexistent/python3.42 here; hpcwidgets needs Python >= 3.10: install "
                             "it, or name another: make lab PYTHON=python3.11\n")
    broken = venv_check(tmp_path, "--venv", "v", "--python", shutil.which("true") or "/bin/true")
    assert broken.returncode == 1 and "does not run as a Python" in broken.stderr and "Traceback" not in broken.stderr
    assert not (tmp_path / "v").exists()


def test_a_minimum_that_is_not_a_version_is_said():
    result = subprocess.run([sys.executable, str(SCRIPT), "--min", "3.1x"], capture_output=True, text=True)
    assert result.returncode == 1 and "--min 3.1x is not a Python version X.Y" in result.stderr


def oldest_python3() -> str | None:
    """The oldest Python 3 older than this one on this machine (pyenv's versions, python3.N on PATH), if any."""
    found = []
    for path in [*Path.home().glob(".pyenv/versions/3.*/bin/python3"),
                 *(Path(p) for n in range(4, sys.version_info[1]) if (p := shutil.which(f"python3.{n}")))]:
        answer = subprocess.run([str(path), "-c", "import sys; print(sys.version_info[1])"], capture_output=True,
                                text=True)
        if answer.returncode == 0 and int(answer.stdout) < sys.version_info[1]:
            found.append((int(answer.stdout), str(path)))
    return min(found)[1] if found else None


def test_the_script_runs_on_an_old_python3_and_judges_the_one_it_is_asked_about(tmp_path):
    old = oldest_python3()
    if old is None:
        pytest.skip("no Python 3 older than this one here")
    stand_in_venv(tmp_path / "v", "3.11", pip=False)
    result = venv_check(tmp_path, "--venv", "v", "--python", old, python=old)
    version = subprocess.run([old, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                             text=True).stdout.strip()
    if tuple(map(int, version.split("."))) < (3, 10):
        assert result.returncode == 1
        assert f"error: {old} is Python {version}; hpcwidgets needs Python >= 3.10" in result.stderr
    else:
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr
    quick = venv_check(tmp_path, "--venv", "v", "--check-only", python=old)
    assert (quick.returncode, quick.stderr) == (1, "")


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_the_makefile_runs_the_script_with_the_venv_s_python_first():
    result = subprocess.run([MAKE, "-n", "--no-print-directory", "venv-python", "VENV=some-venv"],
                            cwd=ROOT, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "PYTHON")})
    first = result.stdout.splitlines()[0]
    assert first.startswith("some-venv/bin/python tools/venv_check.py --venv 'some-venv' --min '3.10' ")
    assert "--check-only 2> /dev/null ||" in first and "--named" not in result.stdout


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_without_any_python_make_names_the_one_it_needs(tmp_path):
    folder = tmp_path / "project"
    (folder / "tools").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "tools/venv_check.py"):
        shutil.copy(ROOT / name, folder / name)
    bin_dir = tmp_path / "bin"        # make and the shell tools the Makefile uses, and no Python
    bin_dir.mkdir()
    for tool in ("make", "bash", "sh", "sed", "cksum", "cut"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = subprocess.run([MAKE, "--no-print-directory", "venv-python"], cwd=folder, capture_output=True, text=True,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=60)
    assert result.returncode != 0
    assert ("error: there is no python3 here; hpcwidgets needs Python >= 3.10: install it, or name another: make lab "
            "PYTHON=python3.11") in result.stderr
    assert not (folder / ".venv").exists()


# ------------------------------------------------------------------------------------------------
# exercises → lessons, never back
# ------------------------------------------------------------------------------------------------
def imported_parts(folder: Path) -> set[str]:
    """The hpcwidgets parts the modules of ``folder`` import (top level or inside functions)."""
    out = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                out.add((node.module or "").split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hpcwidgets."):
                out.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("hpcwidgets.")}
    return out


def test_the_lessons_never_import_the_exercises():
    assert "exercises" not in imported_parts(ROOT / "hpcwidgets" / "lessons")
    assert "lessons" in imported_parts(ROOT / "hpcwidgets" / "exercises")


def test_lessons_and_workshop_start_the_kernel_the_same_way():
    from hpcwidgets.exercises import runner
    from hpcwidgets.lessons import kernel, refresh
    assert runner.kernel_start_failed is refresh.kernel_start_failed is kernel.kernel_start_failed
    assert (runner.KERNEL, runner.START_ATTEMPTS, runner.START_TIMEOUT) == (refresh.KERNEL, refresh.START_ATTEMPTS,
                                                                           refresh.START_TIMEOUT)
    assert kernel.kernel_start_failed("RuntimeError: Kernel died before replying to kernel_info")
    assert not kernel.kernel_start_failed("cell 3: ValueError: bad value")
