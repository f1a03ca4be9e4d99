"""run_container: real ch-run runs in the trainer image, plus checks that need no container runtime."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from helpers import need, need_tool
from hpcwidgets.errors import RunError, ValidationError
from hpcwidgets.run.container import ContainerRun, run_container
from hpcwidgets.run.images import TRAINER_IMAGE, check_image
from hpcwidgets.spec._words import Verbatim
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.common import Bind

IMAGE = str(TRAINER_IMAGE)
PRINT_ARGS = "import sys, json; print(json.dumps(sys.argv[1:]))"


@pytest.fixture(scope="module")
def image_ok() -> tuple[bool, str]:
    if shutil.which("ch-run") is None:
        return False, "ch-run is not installed"
    try:
        check_image(TRAINER_IMAGE)
    except RunError as exc:
        return False, f"the trainer image {IMAGE} does not pass its checks: {exc}"
    return True, ""


@pytest.fixture
def image(image_ok) -> str:
    need_tool("ch-run")
    ok, reason = image_ok
    need(ok, reason)
    return IMAGE


def py(image: str, code: str, *args: str, **fields) -> ChRun:
    return ChRun(image=image, command=("python", "-c", code, *args), **fields)


# --- real ch-run runs -------------------------------------------------------------------------------

def test_prints_are_streamed_and_collected(image, capsys):
    run = run_container(py(image, "print(1+1)"))
    assert isinstance(run, ContainerRun)
    assert run.returncode == 0 and run.ok
    assert run.output == "2\n"
    assert capsys.readouterr().out == "2\n"  # written to stdout as it arrived
    assert run.argv[:2] == ("ch-run", image) and run.argv[-3:] == ("python", "-c", "print(1+1)")
    assert run.seconds >= 0


def test_on_line_gets_lines_in_order_while_the_program_runs(image, tmp_path, capsys):
    # the program prints, then waits until the host has seen that line; only streaming can unblock it
    code = ("import os, sys, time\n"
            "print('first', flush=True)\n"
            "print('second on stderr', file=sys.stderr, flush=True)\n"
            "for _ in range(300):\n"
            "    if os.path.exists('/mnt/0/seen'):\n"
            "        print('streamed', flush=True); break\n"
            "    time.sleep(0.1)\n"
            "else:\n"
            "    print('not streamed', flush=True)\n"
            "print('last', flush=True)\n")
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "first":
            (tmp_path / "seen").write_text("yes")

    run = run_container(py(image, code, binds=(Bind(str(tmp_path), "/mnt/0"),)), on_line=on_line, timeout=50)
    assert seen == ["first", "second on stderr", "streamed", "last"]
    assert run.output == "first\nsecond on stderr\nstreamed\nlast\n"
    assert capsys.readouterr().out == ""  # on_line replaces printing


def test_bind_makes_a_file_written_inside_appear_on_the_host(image, tmp_path):
    model = py(image, "open('/mnt/0/from-inside.txt', 'w').write('written inside')",
               binds=(Bind(str(tmp_path), "/mnt/0"),))
    run_container(model, on_line=lambda line: None)
    assert (tmp_path / "from-inside.txt").read_text() == "written inside"


def test_set_env_reaches_the_program(image):
    run = run_container(py(image, "import os; print(os.environ['X'])", set_env=("X=hello",)),
                        on_line=lambda line: None)
    assert run.output == "hello\n"


def test_references_expand_from_the_environment(image, tmp_path):
    model = py(image, PRINT_ARGS, "$HOME/data", "${HPCW_T_VAR}-x", "\\$HOME", "$HPCW_T_UNSET.",
               set_env=("Y=$HPCW_T_VAR",), binds=(Bind("$HPCW_T_DIR", "/mnt/0"),))
    code_y = "import os; print(os.environ['Y'])"
    env = {"HOME": "/home/someone", "HPCW_T_VAR": "value with spaces", "HPCW_T_DIR": str(tmp_path)}
    env.pop("HPCW_T_UNSET", None)
    run = run_container(model, env=env, on_line=lambda line: None)
    assert json.loads(run.output) == ["/home/someone/data", "value with spaces-x", "$HOME", "."]
    assert f"--bind={tmp_path}:/mnt/0" in run.argv
    y = run_container(py(image, code_y, set_env=("Y=$HPCW_T_VAR",)), env=env, on_line=lambda line: None)
    assert y.output == "value with spaces\n"


def test_hostile_values_arrive_intact(image):
    hostile = ["it's", 'say "hi"', "$(id)", "`id`", "a;b", "a && b", "two words", "line1\nline2", "*", "~",
               "|", "> out", "", "\t", "-x", "--"]
    run = run_container(py(image, PRINT_ARGS, *hostile), on_line=lambda line: None)
    assert json.loads(run.output) == hostile


def test_nonzero_exit_raises_with_status_and_tail(image):
    model = py(image, "import sys; print('about to fail'); sys.exit(3)")
    with pytest.raises(RunError) as info:
        run_container(model, on_line=lambda line: None)
    assert info.value.returncode == 3
    assert "exit status 3" in str(info.value)
    assert "about to fail" in str(info.value)
    assert info.value.argv[0] == "ch-run"
    run = run_container(model, on_line=lambda line: None, check=False)
    assert run.returncode == 3 and not run.ok and run.output == "about to fail\n"


def test_separate_stderr(image):
    code = "import sys; print('out'); sys.stdout.flush(); print('err', file=sys.stderr)"
    seen: list[str] = []
    run = run_container(py(image, code), on_line=seen.append, merge_stderr=False)
    assert run.output == "out\n" and run.stderr == "err\n"
    assert sorted(seen) == ["err", "out"]


def _live_processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # the process ended while we looked
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_timeout_stops_the_program_and_what_it_started(image):
    token = f"hpcw-timeout-{uuid.uuid4().hex}"
    # the program starts a grandchild that ignores SIGTERM, then sleeps itself
    code = ("import subprocess, sys, time\n"
            "child = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'\n"
            "subprocess.Popen([sys.executable, '-c', child, sys.argv[1]])\n"
            "print('started', flush=True)\n"
            "time.sleep(120)\n")
    with pytest.raises(RunError) as info:
        run_container(py(image, code, token), on_line=lambda line: None, timeout=3)
    assert "did not finish within 3 s" in str(info.value)
    assert "started" in str(info.value)  # the output tail
    assert _live_processes_with(token) == []


# --- no runtime needed ----------------------------------------------------------------------------

def test_missing_program_names_the_fix():
    model = ApptainerRun(image="/images/x.sif", command=("python", "-c", "print(1)"))
    if shutil.which("apptainer") is None:
        with pytest.raises(RunError) as info:
            run_container(model)
        assert "apptainer is not installed" in str(info.value)
        assert "cluster" in str(info.value)
    # a PATH without ch-run behaves the same way for Charliecloud, wherever the test runs
    with pytest.raises(RunError) as info:
        run_container(ChRun(image=IMAGE, command=("true",)), env={"PATH": "/nonexistent-hpcw"})
    assert "ch-run is not installed" in str(info.value)
    assert "apt-get install charliecloud-runtime" in str(info.value)


def test_invalid_model_is_rejected_before_running():
    with pytest.raises(ValidationError) as info:
        run_container(ChRun(image="", command=()))
    fields = {p.field for p in info.value.problems}
    assert {"image", "command"} <= fields


def test_verbatim_shell_text_is_refused():
    model = ChRun(image=IMAGE, command=("ls", Verbatim("$(pwd)")))
    with pytest.raises(RunError) as info:
        run_container(model)
    assert "$(pwd)" in str(info.value)
    assert "without a shell" in str(info.value)


def test_other_models_are_a_type_error():
    from hpcwidgets.spec.charliecloud import ChImageBuild
    with pytest.raises(TypeError, match="ChRun or ApptainerRun"):
        run_container(ChImageBuild(tag="x"))


def test_stand_in_runtime_gets_user_and_expanded_words(tmp_path):
    # a stand-in "ch-run" (first on PATH) prints its argv and USER: works where Charliecloud is absent
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ch-run"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "print(json.dumps({'argv': sys.argv[1:], 'user': os.environ.get('USER')}))\n")
    fake.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ.get('PATH', '')}", "USER": "", "HPCW_T_VAR": "v"}
    run = run_container(ChRun(image="/img", command=("echo", "$HPCW_T_VAR", "$(id)")), env=env,
                        on_line=lambda line: None)
    data = json.loads(run.output)
    assert data["argv"] == ["/img", "--", "echo", "v", "$(id)"]
    assert data["user"]  # filled in because it was empty
