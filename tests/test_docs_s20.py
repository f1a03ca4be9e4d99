"""The README's set-up and the docs against the code.

* the Makefile's venv check, run for real on copies of the Makefile and pyproject.toml in a temporary folder (never
  on the project's own .venv): a venv left without pip is made again, a good one is left alone, and a Python that
  cannot make a venv with pip stops make with the fix;
* every ``hpcwidgets …`` command and ``make TARGET`` the README and the docs show exists with the options it names;
* the claims the docs make about the code: the architecture table's imports, the tunnel's environment variable,
  detection's commands, the sweep's option, the shipped profiles' values.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = (README, ROOT / "docs" / "practice-cluster.md", ROOT / "docs" / "profiles.md")
MAKE = shutil.which("make")
# the interpreter this test runs on, outside any venv: what `python3 -m venv` would be on a fresh machine
BASE = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"

need_make = pytest.mark.skipif(MAKE is None or not BASE.exists(), reason="needs make and the base Python")


# ------------------------------------------------------------------------------------------------
# the Makefile's venv, in a copy of the Makefile
# ------------------------------------------------------------------------------------------------
def make_env(folder: Path) -> dict[str, str]:
    """An environment where python3 is the base Python and nothing of an outer make or PYTHON leaks in."""
    bin_dir = folder / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "python3").exists():
        (bin_dir / "python3").symlink_to(BASE)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTHON", "VENV", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def make(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAKE, "--no-print-directory", *args], cwd=folder, env=make_env(folder),
                          capture_output=True, text=True, timeout=600)


def project_copy(folder: Path, requires: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Makefile", folder / "Makefile")
    (folder / "tools").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tools" / "venv_check.py", folder / "tools" / "venv_check.py")   # the Makefile runs it
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if requires:
        text, n = re.subn(r'(?m)^requires-python = .*$', f'requires-python = "{requires}"', text)
        assert n == 1
    (folder / "pyproject.toml").write_text(text, encoding="utf-8")
    return folder


def stamp_name(folder: Path) -> str:
    cksum = subprocess.run(["cksum", "pyproject.toml"], cwd=folder, capture_output=True, text=True, check=True)
    return f".installed-{cksum.stdout.split()[0]}"


def has_pip(venv: Path) -> bool:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True).returncode == 0


def fake_python(folder: Path, body: str) -> Path:
    """A python3 stand-in: ``body`` (shell) runs first, then the real Python with the same arguments."""
    path = folder / "stand-in-python"
    path.write_text(f"#!/bin/sh\n{textwrap.dedent(body)}\nexec '{BASE}' \"$@\"\n", encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def remade(tmp_path_factory):
    """The auditor's reproduction: a venv a `python3 -m venv` left without pip (Debian without python3-venv), with
    the install stamp of an earlier install in it, then `make venv-python`. Returns (folder, make's result)."""
    if MAKE is None or not BASE.exists():
        pytest.skip("needs make and the base Python")
    folder = project_copy(tmp_path_factory.mktemp("venvtrap"))
    subprocess.run([str(BASE), "-m", "venv", "--without-pip", ".venv"], cwd=folder, check=True)
    (folder / ".venv" / stamp_name(folder)).touch()
    assert not has_pip(folder / ".venv")
    return folder, make(folder, "venv-python")


@need_make
def test_a_venv_without_pip_is_made_again(remade):
    folder, result = remade
    assert result.returncode == 0, result.stderr
    assert "making it again with python3" in result.stdout
    assert has_pip(folder / ".venv")
    # --clear took the install stamp with the old venv, so the install runs again
    assert not (folder / ".venv" / stamp_name(folder)).exists()
    dry = make(folder, "-n", "venv")
    assert "-m pip install -q -e '.[lab,ml,dev]'" in dry.stdout, dry.stdout


@pytest.fixture
def good_venv(remade, tmp_path):
    """A copy of the remade project: a good venv with pip, a marker file in it and a current install stamp."""
    folder, result = remade
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "project"
    shutil.copytree(folder, copy, symlinks=True, ignore=shutil.ignore_patterns("fake-bin"))
    (copy / ".venv" / "marker").touch()
    (copy / ".venv" / stamp_name(copy)).touch()
    return copy


@need_make
def test_a_good_venv_is_left_alone_and_the_check_is_quiet(good_venv):
    cfg = good_venv / ".venv" / "pyvenv.cfg"
    before = cfg.stat().st_mtime_ns
    for args in (("venv",), ("venv", f"PYTHON={BASE}")):
        result = make(good_venv, *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "" and result.stderr == ""      # nothing made, nothing installed
    assert (good_venv / ".venv" / "marker").exists()
    assert cfg.stat().st_mtime_ns == before


@need_make
def test_the_oldest_python_is_read_from_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    result = subprocess.run([MAKE, "-s", "--no-print-directory", "--eval", "print-min: ; @echo $(VENV_PY_MIN)",
                             "print-min"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")})
    assert result.returncode == 0, result.stderr
    assert declared == f">={result.stdout.strip()}"


@need_make
@pytest.mark.parametrize("status", [1, 0], ids=["venv-fails", "venv-without-pip"])
def test_a_python_that_cannot_make_a_venv_with_pip_stops_make_with_the_fix(tmp_path, status):
    folder = project_copy(tmp_path / "project")
    subprocess.run([str(BASE), "-m", "venv", "--without-pip", ".venv"], cwd=folder, check=True)
    # Debian's python3 without python3-venv: the venv folder is made, ensurepip is missing, venv says so
    python = fake_python(tmp_path, f"""\
        if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
          shift 2; '{BASE}' -m venv --without-pip "$@" || exit
          echo "The virtual environment was not created successfully because ensurepip is not available." >&2
          exit {status}
        fi""")
    result = make(folder, "venv", f"PYTHON={python}")
    assert result.returncode != 0
    assert "cannot make a venv with pip" in result.stderr
    assert "sudo apt install python3-venv" in result.stderr and f"python{VERSION}-venv" in result.stderr
    assert "make lab PYTHON=" in result.stderr
    assert "pip install" not in result.stdout                # the install never started


@need_make
def test_a_missing_python_is_named(tmp_path):
    folder = project_copy(tmp_path / "project")
    result = make(folder, "venv-python", "PYTHON=/nonexistent/python3.42")
    assert result.returncode != 0
    assert "there is no /nonexistent/python3.42 here" in result.stderr
    assert "make lab PYTHON=" in result.stderr
    assert not (folder / ".venv").exists()


@need_make
def test_a_python_older_than_requires_python_is_refused_and_the_venv_kept(good_venv):
    text = (good_venv / "pyproject.toml").read_text(encoding="utf-8")
    (good_venv / "pyproject.toml").write_text(text.replace('requires-python = ">=3.10"', 'requires-python = ">=3.99"'),
                                              encoding="utf-8")
    result = make(good_venv, "venv-python")
    assert result.returncode != 0
    assert f"python3 is Python {VERSION}; hpcwidgets needs Python >= 3.99" in result.stderr
    assert (good_venv / ".venv" / "marker").exists()          # not cleared for a Python that cannot replace it


@need_make
def test_a_python_named_on_the_command_line_replaces_a_venv_of_another_version(good_venv, tmp_path):
    # a stand-in that says it is Python 3.99 (and cannot make venvs, so the test makes none)
    python = fake_python(tmp_path, """\
        case "$*" in *'print("%d.%d"'*) echo 3.99; exit 0;; esac
        if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then echo "no venv here" >&2; exit 1; fi""")
    kept = make(good_venv, "venv-python")
    assert kept.returncode == 0 and kept.stdout == ""        # without PYTHON=, any good venv will do
    result = make(good_venv, "venv-python", f"PYTHON={python}")
    assert f"or not {python}'s version): making it again" in result.stdout
    assert result.returncode != 0 and "cannot make a venv with pip" in result.stderr


def test_ci_installs_what_the_two_commands_need():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    installs = " ".join(re.findall(r'install -y --no-install-recommends((?:[^\n]*\\\n)*[^\n]*)', ci))
    packages = set(installs.replace("\\", " ").split())
    assert {"python3-venv", "make", "git"} <= packages
    readme = README.read_text(encoding="utf-8")
    two = readme.split("## Two commands", 1)[1].split("```", 1)[0]
    assert "sudo apt install python3 python3-venv make git" in two


# ------------------------------------------------------------------------------------------------
# commands the docs show
# ------------------------------------------------------------------------------------------------
def code_texts(path: Path) -> list[str]:
    """The commands in a Markdown file's shell blocks (console blocks: the `$ ` lines) and inline code spans,
    continuation lines joined; Python blocks and output lines left out."""
    text = path.read_text(encoding="utf-8")
    out: list[str] = []
    for lang, body in re.findall(r"(?ms)^[ \t]*```(\w*)\n(.*?)^[ \t]*```", text):
        if lang not in ("bash", "console", "sh", ""):
            continue
        body = re.sub(r"\\\n\s*", " ", textwrap.dedent(body))
        for line in body.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            out.append(line)
    prose = re.sub(r"(?ms)^[ \t]*```.*?^[ \t]*```", "", text)
    out += re.findall(r"`([^`\n]+)`", prose.replace("\n", " "))
    return out


def commands(path: Path, program: str) -> list[str]:
    """Each `program …` command in the file's code (where a command starts: at the start, after sudo, a path,
    `$(`, a quote, `&&` or `;`), cut where the shell ends it."""
    found = []
    for code in code_texts(path):
        starts = r"(?:^|(?<=[/(\"'])|(?<=&& )|(?<=; )|(?<=sudo ))"
        code = code.strip()
        for m in re.finditer(rf"{starts}{re.escape(program)}\s+", code):
            rest = re.split(r"\s#|&&|\|\||;|\)|\s>\s|\s2>|\|(?!\w)", code[m.end():])[0]
            found.append(rest.strip())
    return found


def subparser(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    while words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or words[0] not in subs[0].choices:
            break
        parser, words = subs[0].choices[words[0]], words[1:]
    return parser, words


def unknown_options(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """The words argparse does not take as options of ``parser`` (an option shown without its value is fine)."""
    words = [w for w in words if w not in ("-h", "--help")]  # (every parser has them; they would exit here)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            _, extras = parser.parse_known_args(words)
        except SystemExit:
            message = err.getvalue()
            if "expected one argument" in message or "required" in message:
                return []
            return [message.strip()]
    return [w for w in extras if w.startswith("-")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_hpcwidgets_command_the_docs_show_exists_with_its_options(doc):
    from hpcwidgets.cli import build_parser
    top = build_parser()
    shown = commands(doc, "hpcwidgets")
    assert shown, f"no hpcwidgets commands found in {doc.name}"
    problems = []
    for command in shown:
        words = shlex.split(command)
        if not words or words[0].startswith("-") and words[0] not in ("--help", "--version"):
            continue
        parser, rest = subparser(top, words)
        if parser is top:
            problems.append(f"{command!r}: {words[0]!r} is not an hpcwidgets command")
            continue
        bad = unknown_options(parser, rest)
        if bad:
            problems.append(f"{command!r}: {bad}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_lab_options_the_docs_name_exist(doc):
    from hpcwidgets.run import lab
    for command in commands(doc, "python -m hpcwidgets.run.lab"):
        assert unknown_options(lab.parser(), shlex.split(command)) == [], command


def test_every_make_target_the_docs_name_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"(?m)^([\w.-]+):", makefile))
    named = {m.split()[0] for doc in DOCS for m in commands(doc, "make") if m and not m.startswith("-")}
    named = {n for n in named if re.fullmatch(r"[a-z][a-z-]*", n)}
    assert {"lab", "test", "venv", "cluster", "slides", "handouts", "check", "bench"} <= named
    assert named <= targets, named - targets


def test_commands_run_as_root_name_the_venv_program():
    for doc in DOCS:
        for code in code_texts(doc):
            assert not re.search(r"\bsudo\s+hpcwidgets\b", code), f"{doc.name}: {code} (sudo resets PATH)"
    practice = ROOT / "docs" / "practice-cluster.md"
    blocks = re.findall(r"(?ms)^```bash\n(.*?)^```", practice.read_text(encoding="utf-8"))
    for line in "\n".join(blocks).splitlines():
        assert not line.startswith("hpcwidgets "), f"practice-cluster.md: {line} (not on PATH after make)"


def test_the_readme_says_how_hpcwidgets_gets_on_path_before_the_quickstart():
    readme = README.read_text(encoding="utf-8")
    before = readme.split("## Quickstart", 1)[1].split("$ hpcwidgets", 1)[0]
    assert "source .venv/bin/activate" in before and ".venv/bin/hpcwidgets" in before
    assert "python -m hpcwidgets.run.lab --notebook-dir notebooks" in readme   # the conda users' next step


def test_slides_options_have_help(capsys):
    from hpcwidgets import slides
    with pytest.raises(SystemExit):
        slides.main(["--help"])
    help_text = capsys.readouterr().out
    entries = re.findall(r"(?m)^  (\{[^}]+\}|-[^\n]*?)(?:  +(\S.*))?\n(?:\s{10,}(\S.*))?", help_text)
    assert entries
    for name, same_line, next_line in entries:
        if name.startswith("-h"):
            continue
        assert same_line or next_line, f"python -m hpcwidgets.slides: {name} has no help text"


# ------------------------------------------------------------------------------------------------
# what the docs say about the code
# ------------------------------------------------------------------------------------------------
PARTS = ("spec", "profiles", "render", "parse", "lint", "fixes", "files", "widgets", "run", "examples", "cli",
         "exercises", "lessons", "payload")
ANY_PART_MAY = {"errors", "_callable", "__version__"}


def package_imports() -> dict[str, dict[str, list[str]]]:
    """{part: {imported part: [file:line, …]}} for every hpcwidgets import, top-level or inside a function."""
    package = ROOT / "hpcwidgets"
    graph: dict[str, dict[str, list[str]]] = {}
    for path in package.rglob("*.py"):
        rel = path.relative_to(package)
        if rel.parts[0] in ("templates", "payload"):
            continue
        me = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        here = list(rel.parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)]
                mod = base + (node.module.split(".") if node.module else [])
                targets = [mod[0]] if mod else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hpcwidgets."):
                targets = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names if a.name.startswith("hpcwidgets.")]
            else:
                continue
            for target in targets:
                if target != me:
                    graph.setdefault(me, {}).setdefault(target, []).append(f"{rel}:{node.lineno}")
    return graph


def test_the_architecture_table_says_what_each_part_imports():
    readme = README.read_text(encoding="utf-8")
    table = readme.split("| part | does | may import |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.strip().splitlines()[1:]]
    graph = package_imports()
    above: set[str] = set()
    checked = set()
    problems = []
    for part_cell, _, may in rows:
        parts = {re.sub(r"\.py$|/$", "", p) for p in re.findall(r"`([\w.]+/?)`", part_cell)}
        allowed = set(ANY_PART_MAY) | {p for p in PARTS if re.search(rf"\b{p}\b", may)}
        if "everything above" in may:
            allowed |= above
        for part in parts:
            checked.add(part)
            for target, where in sorted(graph.get(part, {}).items()):
                if target not in allowed:
                    problems.append(f"{part} imports {target} ({', '.join(where[:3])}); the table allows "
                                    f"{sorted(allowed - ANY_PART_MAY)}")
        above |= parts
    assert {"spec", "render", "parse", "lint", "run", "exercises", "widgets", "cli"} <= checked
    assert not problems, "\n".join(problems)


def test_only_make_lab_reads_hpcw_tunnel(tmp_path):
    """The docs say `jupyter-job` takes --tunnel and ignores HPCW_TUNNEL, and `make lab` reads it."""
    from hpcwidgets.run import lab
    folder = tmp_path / "profiles"
    folder.mkdir()
    generic = (ROOT / "hpcwidgets" / "profiles" / "generic.toml").read_text(encoding="utf-8")
    site, n = re.subn(r'(?m)^name = "generic"$', 'name = "nodesite"\ntunnel = "node"', generic, count=1)
    assert n == 1
    (folder / "nodesite.toml").write_text(site, encoding="utf-8")
    env = {**os.environ, "HPCW_PROFILE_PATH": str(folder), "HPCW_TUNNEL": "login"}

    def tunnel_line(*extra: str) -> str:
        out = subprocess.run([sys.executable, "-m", "hpcwidgets", "jupyter-job", "--profile", "nodesite", *extra],
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return next(line for line in out.stdout.splitlines() if line.startswith("jl_tunnel="))

    assert " -J " in tunnel_line()                            # the profile's node form; HPCW_TUNNEL not read
    assert " -J " not in tunnel_line("--tunnel", "login")     # the option chooses
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPCW_TUNNEL", "node")
        assert lab.parser().parse_args([]).tunnel == "node"
    # (the table between the fields markers is generated from the fields' help in spec/profile.py)
    docs = " ".join(re.sub(r"(?s)<!-- fields:begin -->.*<!-- fields:end -->", "", d.read_text(encoding="utf-8"))
                    for d in DOCS)
    assert "HPCW_TUNNEL still" not in docs and "HPCW_TUNNEL` still" not in docs
    assert "`jupyter-job` does not read `HPCW_TUNNEL`" in " ".join(docs.split())


def test_detection_commands_are_all_in_the_profiles_doc():
    from hpcwidgets.run import detect
    doc = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    steps = " ".join(doc.split("Detection runs", 1)[1].split("`--all` makes Slurm", 1)[0].split()).replace("`", "")
    for argv in (detect.PARTITIONS_ARGV, detect.NODES_ARGV, detect.VERSION_ARGV, detect.CONFIG_ARGV,
                 detect.QOS_ARGV):
        assert " ".join(argv) in steps, argv
    for file_name, argv in detect.SAVED_FILES:
        assert f"{' '.join(argv)} > saved/{file_name}" in doc, file_name


def test_the_sweep_passes_its_value_as_the_readme_says():
    import hpcwidgets as hw
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert 'passes it to the program as `--lr "$lr"`' in readme
    script = hw.render(hw.Workflow.sweep("lr", ["0.1", "0.03"], "train.py", image="$SCRATCH/pytorch.sif"))
    assert 'python train.py --lr "$lr"' in script
    other = hw.render(hw.Workflow.sweep("lr", ["0.1"], "train.py", flag="--learning-rate", image="x.sif"))
    assert '--learning-rate "$lr"' in other


def test_shipped_profiles_are_described_with_their_values():
    from hpcwidgets.profiles import load_profile
    doc = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    midway3 = next(line for line in doc.splitlines() if line.startswith("| `midway3` |"))
    site = load_profile("midway3")
    assert f"`{site.scratch}`" in midway3 and f"`{site.image_dir}`" in midway3
    generic = load_profile("generic")
    readme = README.read_text(encoding="utf-8")
    for text in (readme, next(line for line in doc.splitlines() if line.startswith("| `generic` |"))):
        assert f"`{generic.login_host}`" in text
    for partition in generic.partitions:
        assert f"`{partition.name}`" in readme.split("## Quickstart", 1)[1].split("From Python", 1)[0]
