"""Adapting the workshop to another site: what ``slides check --profile`` finds that the linter cannot
(another site's login host in a hand-written tunnel, ``--profile NAME`` of another site, diagrams drawn for
another profile), lesson 00's first job following the ``profile`` parameter, and the texts that tell an
instructor how lessons and deck behave for their site.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from hpcwidgets import slides
from hpcwidgets.lint import lint

ROOT = slides.SLIDES_DIR.parent
NOTEBOOKS = ROOT / "notebooks"
MIDWAY3_TOML = ROOT / "hpcwidgets" / "profiles" / "midway3.toml"
OTHER_LOGIN = "login.other.example.org"

#: a site whose GPU partition is not called gpu and which has no apptainer module (as SURF Snellius)
SNELLIUS_LIKE = """\
name = "gpusite"
description = "a test site: gpu_a100 partition, Apptainer on PATH without a module"
login_host = "gpusite.example.org"
runtimes = ["apptainer"]
scratch = "/scratch-shared/$USER"
image_dir = "/scratch-shared/$USER/containers"
cache_dir = "/scratch-shared/$USER/.apptainer/cache"
gpu_vendor = "nvidia"
default_partition = "rome"
default_gpu_partition = "gpu_a100"
partitions_complete = true

[[partitions]]
name = "rome"
max_time = "5-00:00:00"
cpus_per_node = 128
mem_per_node = "224G"
is_default = true

[[partitions]]
name = "gpu_a100"
max_time = "5-00:00:00"
cpus_per_node = 72
mem_per_node = "480G"
gpus_per_node = 4
gpu_types = ["a100"]
"""


@pytest.fixture
def sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A profile folder on HPCW_PROFILE_PATH with ``othersite`` (midway3 with another name, login host and image
    folder: the deck's hand-written scripts still lint clean for it), ``nologin`` (no login host) and
    ``gpusite``."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    midway3 = MIDWAY3_TOML.read_text(encoding="utf-8")
    other = (midway3.replace('name = "midway3"', 'name = "othersite"')
             .replace('login_host = "midway3.rcc.uchicago.edu"', f'login_host = "{OTHER_LOGIN}"')
             .replace("/sif_files", "/containers"))
    (folder / "othersite.toml").write_text(other, encoding="utf-8")
    nologin = midway3.replace('name = "midway3"', 'name = "nologin"').replace(
        'login_host = "midway3.rcc.uchicago.edu"', 'login_host = ""')
    (folder / "nologin.toml").write_text(nologin, encoding="utf-8")
    (folder / "gpusite.toml").write_text(SNELLIUS_LIKE, encoding="utf-8")
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    return folder


def _copy_slides(tmp_path: Path) -> Path:
    """The deck and its diagram source, as an instructor's copy (never the checkout's slides/)."""
    copy = tmp_path / "deck"
    (copy / "diagrams").mkdir(parents=True)
    shutil.copy(slides.SLIDES_DIR / slides.DECK_NAME, copy / slides.DECK_NAME)
    for path in (slides.SLIDES_DIR / "diagrams").iterdir():
        if path.suffix in (".py", ".svg"):
            shutil.copy(path, copy / "diagrams" / path.name)
    return copy


def _line_of(text: str, needle: str) -> list[int]:
    return [i for i, line in enumerate(text.split("\n"), start=1) if needle in line]


# ------------------------------------------------------------------------------------------------
# slides check: the leftovers of the source site
# ------------------------------------------------------------------------------------------------
def test_the_committed_deck_passes_the_whole_check_for_its_own_site() -> None:
    assert slides.check_deck() == []


def test_check_names_every_leftover_of_the_source_site_then_passes_once_they_are_replaced(
        sites: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deck_dir = _copy_slides(tmp_path)
    deck = deck_dir / slides.DECK_NAME
    assert slides.main(["sync", "--slides-dir", str(deck_dir), "--profile", "othersite"]) == 0
    capsys.readouterr()
    assert slides.main(["check", "--slides-dir", str(deck_dir), "--profile", "othersite"]) == 1
    err = capsys.readouterr().err
    text = deck.read_text(encoding="utf-8")
    tunnel = _line_of(text, "@midway3.rcc.uchicago.edu")
    assert len(tunnel) == 1
    assert (f"workshop.md:{tunnel[0]}: the tunnel goes to midway3.rcc.uchicago.edu, not to othersite's login host "
            f"{OTHER_LOGIN}") in err
    named = _line_of(text, "--profile midway3")
    assert len(named) >= 4, "commands, notes and prose of the deck name the source profile"
    for line in named:
        assert f"workshop.md:{line}: --profile midway3 names another site" in err
    assert ("diagrams/container-workflow.svg is not what diagrams/draw.py draws for othersite; redraw it with: "
            "python -m hpcwidgets.slides diagrams --profile othersite") in err

    deck.write_text(text.replace("alice@midway3.rcc.uchicago.edu", f"alice@{OTHER_LOGIN}")
                    .replace("--profile midway3", "--profile othersite"), encoding="utf-8")
    assert slides.main(["diagrams", "--slides-dir", str(deck_dir), "--profile", "othersite"]) == 0
    assert "…/containers/pytorch_24.05.sif" in (deck_dir / "diagrams" / "container-workflow.svg").read_text()
    capsys.readouterr()
    assert slides.main(["check", "--slides-dir", str(deck_dir), "--profile", "othersite"]) == 0, \
        capsys.readouterr().err


def _deck(tmp_path: Path, body: str) -> Path:
    path = tmp_path / slides.DECK_NAME
    path.write_text(f"# x\n\n{body}", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [
    "ssh -N -L 8888:node-7:23456 alice@login.other.example.org",
    "ssh -N -L8888:node-7:23456 -p 2222 alice@LOGIN.other.example.org.",
    "ssh -N -L 8888:node-7:23456 ssh://alice@login.other.example.org:2222",
    "ssh -NL 8888:node-7:23456 -J alice@login.other.example.org alice@node-7",
    'ssh -N -L 8888:node-7:23456 "$USER@$LOGIN_HOST"',  # a variable: the reader's choice, nothing to compare
    "ssh midway3-0123 nvidia-smi",  # no tunnel: a hop from the login node to a node of the job
])
def test_tunnels_to_the_profiles_login_host_pass(sites: Path, tmp_path: Path, command: str) -> None:
    path = _deck(tmp_path, f"```bash\n{command}\n```\n")
    assert slides.site_leftovers(path.read_text(encoding="utf-8"), "othersite") == []


@pytest.mark.parametrize("command", [
    "ssh -N -L 8888:node-7:23456 alice@midway3.rcc.uchicago.edu",
    "ssh -o ServerAliveInterval=60 -N -L 8888:node-7:23456 midway3.rcc.uchicago.edu",
    "ssh -N -L 8888:node-7:23456 -J gw.example.org alice@midway3.rcc.uchicago.edu",
])
def test_a_tunnel_to_another_host_is_named_with_the_profiles_host(sites: Path, tmp_path: Path,
                                                                  command: str) -> None:
    path = _deck(tmp_path, f"On your laptop:\n\n```bash\n{command}\n```\n")
    assert slides.site_leftovers(path.read_text(encoding="utf-8"), "othersite") == [
        f"workshop.md:6: the tunnel goes to midway3.rcc.uchicago.edu, not to othersite's login host {OTHER_LOGIN}; "
        f"write the destination as USER@{OTHER_LOGIN}"]


def test_a_tunnel_cannot_be_checked_against_a_profile_without_a_login_host(sites: Path, tmp_path: Path) -> None:
    path = _deck(tmp_path, "```bash\nssh -N -L 8888:n1:23456 alice@midway3.rcc.uchicago.edu\n```\n")
    assert slides.site_leftovers(path.read_text(encoding="utf-8"), "nologin") == [
        "workshop.md:4: the tunnel goes to midway3.rcc.uchicago.edu, and profile nologin names no login host to "
        "check it against; set login_host in the profile"]


def test_profile_options_must_name_the_checked_profile_or_the_blocks_pinned_one(sites: Path, tmp_path: Path) -> None:
    text = ("Run `hpcwidgets lint job.sbatch --profile <site>` on yours.\n\n"
            "```bash\nhpcwidgets examples single-gpu --profile=othersite\n```\n\n"
            "<!-- hpcw: profile=local -->\n```bash\nhpcwidgets examples charliecloud --profile local\n```\n\n"
            "<!--\nThe same as `hpcwidgets examples jupyter --profile midway3`.\n-->\n")
    path = _deck(tmp_path, text)
    deck = path.read_text(encoding="utf-8")
    assert slides.site_leftovers(deck, "othersite") == [
        "workshop.md:15: --profile midway3 names another site than the one the deck is checked against; write "
        "--profile othersite (a sentence about another site on purpose can name it without --profile)"]
    by_path = slides.site_leftovers(deck, str(sites / "othersite.toml"))
    assert [p.split(":")[1] for p in by_path] == ["15"], "a .toml path and the name it holds are the same profile"
    assert [p.split(":")[1] for p in slides.site_leftovers(deck, "midway3")] == ["6"]


def test_generated_blocks_are_left_to_the_staleness_check(sites: Path) -> None:
    text = slides.sync_text("<!-- hpcw: example jupyter -->\n```bash\nx\n```\n", "othersite")
    assert OTHER_LOGIN in text
    assert slides.site_leftovers(text, "midway3") == []


# ------------------------------------------------------------------------------------------------
# diagrams
# ------------------------------------------------------------------------------------------------
def test_diagrams_are_drawn_for_the_profile(sites: Path) -> None:
    local = slides.render_diagrams(write=False, profile="local")
    assert "…/hpcw-images/trainer" in local["container-workflow"]
    assert "sif_files" not in local["container-workflow"]
    ranks = re.findall(r">rank (\d+)</text>", local["multi-node-topology"])
    assert ranks == ["0", "1", "2", "3"], "the practice cluster's two-node job: 2 nodes × 2 processes"
    assert slides.render_diagrams(write=False) == slides.render_diagrams(write=False, profile=slides.DEFAULT_PROFILE)


def test_diagrams_drawn_for_another_profile_fail_the_check(sites: Path, tmp_path: Path) -> None:
    deck_dir = _copy_slides(tmp_path)
    assert slides.diagram_problems(deck_dir) == []
    slides.render_diagrams(deck_dir, profile="othersite")
    assert slides.diagram_problems(deck_dir) == [
        "diagrams/container-workflow.svg is not what diagrams/draw.py draws for midway3; redraw it with: "
        "python -m hpcwidgets.slides diagrams"]


def test_draw_py_writes_no_site_path_of_its_own() -> None:
    source = (slides.SLIDES_DIR / "diagrams" / "draw.py").read_text(encoding="utf-8")
    assert "sif_files" not in source and "midway3" not in source and "DEFAULT_PROFILE" not in source


# ------------------------------------------------------------------------------------------------
# where the payload comes from
# ------------------------------------------------------------------------------------------------
def test_the_deck_names_one_payload_folder_and_says_where_it_comes_from() -> None:
    deck = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
    exported = set(re.findall(r'HPCW_PAYLOAD="([^"]+)"', deck))
    bound = set(re.findall(r'"([^"]*hpcwidgets/payload)[:"]', deck))
    assert exported == bound == {slides.DECK_PAYLOAD_DIR}
    assert "a clone in `~/hpcwidgets`" in deck
    assert "`HPCW_PAYLOAD` is the `payload` folder of the hpcwidgets it runs" in deck


# ------------------------------------------------------------------------------------------------
# lesson 00 follows the profile
# ------------------------------------------------------------------------------------------------
def _quickstart_script(profile: str) -> tuple[str, str]:
    """Lesson 00's first job script for ``profile`` (its parameters and job cells, executed here), and the saved
    output of that cell."""
    nb = nbformat.read(NOTEBOOKS / "00-quickstart.ipynb", as_version=4)
    cells = {c.id: c for c in nb.cells}
    namespace: dict = {}
    exec(cells["dc5f4a4f"].source, namespace)
    namespace["profile"] = profile
    exec(cells["9908887a"].source, namespace)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(cells["34f8f104"].source, namespace)
    saved = "".join(o.get("text", "") for o in cells["34f8f104"].outputs if o.output_type == "stream")
    return printed.getvalue(), saved


def test_quickstart_job_takes_partition_module_and_image_from_the_profile(sites: Path) -> None:
    script, _ = _quickstart_script("gpusite")
    assert "#SBATCH --partition=gpu_a100\n" in script
    assert "module load" not in script, "the site has no apptainer module"
    assert '"/scratch-shared/$USER/containers/pytorch_24.05.sif"' in script
    assert "--cpus-per-task=72" in script and "--nproc-per-node=4" in script
    assert not [f.format() for f in lint(script, "gpusite") if f.severity in ("error", "warning")]
    midway3, _ = _quickstart_script("midway3")
    # the multi-node example's partition (midway3 keeps one for multi-node GPU jobs), as ex09 and ex10 take it
    assert "#SBATCH --partition=gpu-multi\n" in midway3 and "module load apptainer" in midway3


def test_quickstart_saved_output_is_what_its_source_gives_for_the_default_profile() -> None:
    script, saved = _quickstart_script("generic")
    assert script == saved


# ------------------------------------------------------------------------------------------------
# the texts
# ------------------------------------------------------------------------------------------------
def _markdown(name: str) -> str:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_lesson_09_says_its_broken_script_is_the_source_decks_cluster() -> None:
    text = _markdown("09-distributed-training.ipynb")
    assert "written for that deck's cluster" in text and "not your site's" in text


def test_lesson_11_does_not_call_make_lab_a_job_and_warns_about_jupyters_own_address() -> None:
    text = _markdown("11-jupyterlab-on-a-compute-node.ipynb")
    assert "does the same on the local node" not in text
    assert "there is no job, no job log and no\ntunnel" in text
    row = next(line for line in text.splitlines() if line.startswith("| connection refused through a tunnel"))
    assert "127.0.0.1" in row and "JupyterLab is ready" in row


def test_instructions_say_lessons_submit_by_default_and_how_to_keep_a_sites_copy_apart() -> None:
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    guide = (slides.SLIDES_DIR / "INSTRUCTOR.md").read_text(encoding="utf-8")
    assert "-p profile midway3 -p run_jobs False" in readme
    assert "-p profile mysite -p run_jobs False" in guide
    for text in (readme, guide):
        assert "HPCW_PROFILE_PATH" in text and "--slides-dir" in text and "--root DIR" in text
        assert "`run_jobs` (default `True`, whatever the profile)" in text or "`run_jobs` is `True` by default" in text
    for leftover in ("login_host", "module load apptainer", "midway3-0123", "--profile NAME", "diagrams --profile",
                     "~/hpcwidgets"):
        assert leftover in guide, f"INSTRUCTOR.md's list for another site does not mention {leftover}"
