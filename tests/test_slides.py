"""The instructor's deck: every shell block generated or verified by the package, diagrams offline,
the built HTML self-contained.

When a test here fails because the deck is out of date, refresh it with
``python -m hpcwidgets.slides sync`` (generated blocks) or ``python -m hpcwidgets.slides diagrams``
(SVGs), or simply ``make slides``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import need_tool

from hpcwidgets import slides
from hpcwidgets.slides import Block, SlidesError

DECK_PATH = slides.SLIDES_DIR / slides.DECK_NAME
DECK = DECK_PATH.read_text(encoding="utf-8")
BLOCKS = list(slides.iter_checked(DECK))
DIAGRAMS_DIR = slides.SLIDES_DIR / "diagrams"


def _id(block: Block) -> str:
    return f"line{block.line}-{block.lang}-{block.kind}"


# ------------------------------------------------------------------------------------------------
# every code block
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block", BLOCKS, ids=[_id(b) for b in BLOCKS])
def test_block_is_generated_or_verified(block: Block) -> None:
    problems = slides.check_block(block)
    assert problems == [], "\n".join(problems)


def test_deck_is_in_sync_with_the_examples() -> None:
    fresh = slides.sync_text(DECK)
    stale = [b.line for b, f in zip(slides.code_blocks(DECK), slides.code_blocks(fresh))
             if b.kind == "example" and b.body != f.body]
    assert fresh == DECK, (f"generated blocks at lines {stale} differ from hpcwidgets.examples; refresh them with: "
                           "python -m hpcwidgets.slides sync (or make slides)")


def test_the_deck_has_the_blocks_the_brief_asks_for() -> None:
    bash = [b for b in BLOCKS if b.lang == "bash"]
    generated = {b.marker["example"] for b in bash if b.kind == "example"}
    expected = [set(b.marker["expect"]) for b in bash if b.kind == "expect"]
    assert len(bash) >= 15
    # the Charliecloud GPU job is written by hand: the example runs a SquashFS file, which ch-fromhost cannot change
    assert {"single-gpu", "multi-node-torchrun", "jupyter"} <= generated
    # the seed deck's broken multi-node launch is taken apart, flagged for both of its bugs, and its lint
    # output and its --fix are generated from it
    assert {"HPC101", "HPC102"} in expected
    every = slides.code_blocks(DECK)
    broken = next(b for b in every if b.marker.get("file") == "broken.sbatch")
    assert broken.marker["expect"] == ("HPC101", "HPC102")
    shown = {b.kind: b for b in every if b.source is broken}
    assert set(shown) == {"lint", "fixed"} and shown["lint"].lang == "text"
    assert "use srun --ntasks=$SLURM_JOB_NUM_NODES --ntasks-per-node=1" in shown["lint"].body
    assert 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)' in shown["fixed"].body
    assert any(b.lang == "dockerfile" for b in BLOCKS) and any(b.lang == "deffile" for b in BLOCKS)
    # every code block is either checked or plain output shown as text
    langs = {b.lang for b in slides.code_blocks(DECK)}
    assert langs <= set(slides.CHECKED_LANGS) | {"text"}, f"unchecked code block languages: {langs}"


def test_the_multi_node_script_on_the_slides_is_the_correct_pattern() -> None:
    launch = next(b for b in BLOCKS if b.kind == "example" and b.marker["example"] == "multi-node-torchrun"
                  and "torchrun" in b.body)
    assert "srun --ntasks-per-node=1" in launch.body
    assert "--nproc-per-node=4" in launch.body
    assert 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST"' in launch.body
    assert "--rdzv-endpoint=$head_node:29500" in launch.body
    assert "SLURM_STEP_NODELIST" not in launch.body


def test_the_charliecloud_gpu_job_injects_the_driver_into_the_directory_it_runs() -> None:
    from hpcwidgets.parse import parse_command, read_script
    from hpcwidgets.spec.charliecloud import image_format
    job = next(b for b in BLOCKS if "ch-run" in b.body and "--gres=gpu" in b.body)
    parsed = read_script(job.body)
    models = {}
    for cmd in parsed.lexed.code:
        if cmd.kind == "simple" and cmd.words and cmd.words[0].value in ("ch-convert", "ch-fromhost", "srun"):
            model = parse_command(cmd.text)
            if cmd.words[0].value == "srun":
                model = parse_command(" ".join(model.command))  # the words hold no blanks
            models[type(model).__name__] = (model, cmd.line)
    (convert, at), (inject, _), (run, run_at) = models["ChConvert"], models["ChFromhost"], models["ChRun"]
    unpacked = parsed.resolve(convert.output, at)
    assert image_format(convert.input) == "squash" and image_format(unpacked) == "dir"
    assert inject.nvidia and parsed.resolve(inject.image, run_at) == unpacked
    assert parsed.resolve(str(run.image), run_at) == unpacked, "ch-run must start the directory the driver went into"


def test_only_blocks_that_show_a_mistake_use_latest_tags() -> None:
    for b in BLOCKS:
        if ":latest" in b.body:
            assert b.kind == "expect" and "HPC210" in b.marker["expect"], f"{b.where()} uses :latest"


# ------------------------------------------------------------------------------------------------
# the checker itself catches what it should
# ------------------------------------------------------------------------------------------------
def _block(body: str, marker: dict | None = None, lang: str = "bash") -> Block:
    return Block(lang, body, 10, 0, len(body), 0, marker or {})


def test_an_unmarked_mistake_is_reported_with_the_code_and_how_to_mark_it() -> None:
    problems = slides.check_block(_block('apptainer exec img_1.0.sif --nv python train.py\n'))
    assert len(problems) == 1
    assert "HPC203" in problems[0] and "hpcw: expect HPC203" in problems[0]
    assert problems[0].startswith("workshop.md:11:")


def test_an_expect_marker_must_match_exactly() -> None:
    body = "apptainer exec img_1.0.sif --nv python train.py\n"
    assert slides.check_block(_block(body, {"expect": ("HPC203",)})) == []
    wrong = slides.check_block(_block(body, {"expect": ("HPC203", "HPC204")}))
    assert len(wrong) == 1 and "missing: HPC204" in wrong[0]
    extra = slides.check_block(_block(body, {"expect": ("HPC204",)}))
    assert "unexpected: HPC203" in extra[0]


def test_interactive_commands_skip_only_the_whole_job_rules() -> None:
    # --nv typed at a prompt: the session's GPUs are unknown, so HPC202 does not apply ...
    assert slides.check_block(_block('apptainer exec --nv img_1.0.sif python -V\n')) == []
    # ... but the same line in a job script without a GPU request is a warning
    script = "#!/bin/bash\n#SBATCH --time=10\n#SBATCH --cpus-per-task=2\napptainer exec --nv img_1.0.sif python -V\n"
    assert any("HPC202" in p for p in slides.check_block(_block(script)))


def test_a_stale_generated_block_is_reported_with_the_refresh_command() -> None:
    block = _block("#!/bin/bash\necho old\n", {"example": "single-gpu", "profile": "midway3"})
    problems = slides.check_block(block)
    assert problems and "python -m hpcwidgets.slides sync" in problems[0]


def test_build_files_are_read_by_the_package() -> None:
    assert slides.check_block(_block("FROM debian:12\nRUN true\n", lang="dockerfile")) == []
    bad = slides.check_block(_block("RUN true\n", lang="dockerfile"))
    assert bad and "dockerfile" in bad[0]


def test_sync_rewrites_a_stale_block_and_keeps_the_rest() -> None:
    text = ("intro\n\n<!-- hpcw: example multi-node-torchrun profile=midway3 from=\"# Rendezvous\" -->\n"
            "```bash\nstale\n```\n\noutro\n")
    new = slides.sync_text(text)
    assert new.startswith("intro\n\n<!-- hpcw: example") and new.endswith("```\n\noutro\n")
    body = slides.code_blocks(new)[0].body
    assert body.startswith("# Rendezvous host") and "torchrun --nnodes=2" in body
    assert slides.sync_text(new) == new


def test_generated_scripts_do_not_depend_on_where_the_package_is_installed() -> None:
    from hpcwidgets.examples import payload_dir
    script = slides.example_script("multi-node-torchrun", "midway3")
    assert payload_dir() not in script
    assert slides.DECK_PAYLOAD_DIR in script


@pytest.mark.parametrize("spec, want", [
    ('example single-gpu profile=generic from="set -e"', {"example": "single-gpu", "profile": "generic", "from": "set -e"}),
    ("expect hpc101,HPC102", {"expect": ("HPC101", "HPC102")}),
    ("profile=local", {"profile": "local"}),
])
def test_marker_grammar(spec: str, want: dict) -> None:
    assert slides.parse_marker(spec) == want


@pytest.mark.parametrize("spec, fragment", [
    ("example", "needs the example's name"),
    ("expect", "needs the codes"),
    ("colour=red", "unknown word"),
    ("example a expect HPC101", "not both"),
])
def test_bad_markers_say_what_to_write(spec: str, fragment: str) -> None:
    with pytest.raises(SlidesError, match=fragment):
        slides.parse_marker(spec)


# ------------------------------------------------------------------------------------------------
# slides, notes, topics
# ------------------------------------------------------------------------------------------------
def test_split_slides_ignores_front_matter_and_fenced_separators() -> None:
    text = "---\nmarp: true\n---\n\n# one\n\n---\n\n```bash\n---\n```\n\n---\n\n# three\n"
    assert len(slides.split_slides(text)) == 3


def test_every_slide_has_speaker_notes() -> None:
    missing = [i + 1 for i, s in enumerate(slides.split_slides(DECK)) if not slides.speaker_notes(s)]
    assert missing == [], f"slides without speaker notes (<!-- … --> comments): {missing}"


def test_markers_and_directives_are_not_notes() -> None:
    slide = "<!-- _class: divider -->\n<!-- hpcw: expect HPC101 -->\n```bash\n# x\n```\n<!-- Say this. -->\n"
    assert slides.speaker_notes(slide) == ["Say this."]


@pytest.mark.parametrize("topic", [
    "virtual machine", "apptainer pull", "SIF", "apptainer shell", "apptainer exec", "apptainer run",
    "APPTAINER_CACHEDIR", "APPTAINER_TMPDIR", "--bind", "--nv", "--cleanenv", "--containall", "Bootstrap: docker",
    "--fakeroot", "ch-image build", "ch-run", "ch-fromhost --nvidia", "ch-convert", "tensorflow", "torchrun",
    "sbatch", "squeue", "sacct", "scancel", "--rdzv-endpoint", "ssh -N -L", "jupyter lab", "Resources",
])
def test_the_deck_covers(topic: str) -> None:
    assert topic.lower() in DECK.lower()


def test_the_deck_uses_our_theme_and_no_remote_material() -> None:
    assert re.search(r"^theme: hpcw$", DECK, re.M)
    assert not re.search(r"\]\(https?://", DECK), "images and links to the web do not work offline"
    assert "<img" not in DECK and "mermaid" not in DECK
    css = (slides.SLIDES_DIR / "theme" / "hpcw.css").read_text(encoding="utf-8")
    assert css.startswith("/* @theme hpcw */")
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)


# ------------------------------------------------------------------------------------------------
# diagrams
# ------------------------------------------------------------------------------------------------
def test_committed_diagrams_match_their_source() -> None:
    fresh = slides.render_diagrams(write=False)
    assert set(fresh) == {"containers-vs-vms", "container-workflow", "job-lifecycle", "multi-node-topology"}
    for name, svg in fresh.items():
        path = DIAGRAMS_DIR / f"{name}.svg"
        assert path.is_file(), f"{path} is missing; run: python -m hpcwidgets.slides diagrams"
        assert path.read_text(encoding="utf-8") == svg, \
            f"{path} is stale; run: python -m hpcwidgets.slides diagrams"


@pytest.mark.parametrize("path", sorted(DIAGRAMS_DIR.glob("*.svg")), ids=lambda p: p.name)
def test_diagrams_are_valid_offline_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}title").text
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text and "href=\"http" not in text and "<image" not in text


def test_the_topology_is_drawn_from_the_multi_node_model() -> None:
    svg = (DIAGRAMS_DIR / "multi-node-topology.svg").read_text(encoding="utf-8")
    texts = re.findall(r">([^<>]+)</text>", svg)
    assert sum(t.startswith("torchrun (1 agent)") for t in texts) == 2, "one torchrun per node, two nodes"
    assert sum(t.startswith("worker") for t in texts) == 8
    assert [t for t in texts if t.startswith("rank ")] == [f"rank {i}" for i in range(8)]
    assert any("$head_node:29500" in t for t in texts)


def test_every_image_of_the_deck_is_a_committed_diagram() -> None:
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", DECK)
    assert len(refs) == 4
    for ref in refs:
        assert ref.startswith("diagrams/") and ref.endswith(".svg") and (slides.SLIDES_DIR / ref).is_file()


# ------------------------------------------------------------------------------------------------
# preparing and checking the HTML
# ------------------------------------------------------------------------------------------------
def test_prepare_inlines_images_and_drops_markers() -> None:
    out = slides.prepare(DECK, slides.SLIDES_DIR)
    assert "hpcw:" not in out
    assert "](diagrams/" not in out
    assert out.count('src="data:image/svg+xml;base64,') == 4
    assert "Welcome people" in out  # speaker notes stay


def test_inline_images_refuses_remote_and_missing_images(tmp_path: Path) -> None:
    with pytest.raises(SlidesError, match="self-contained"):
        slides.inline_images("![x](https://example.org/a.png)", tmp_path)
    with pytest.raises(SlidesError, match="missing"):
        slides.inline_images("![x](nope.svg)", tmp_path)
    (tmp_path / "a.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    out = slides.inline_images("![w:300 A picture](a.svg)\n```bash\n![kept](a.svg)\n```", tmp_path)
    assert 'style="width:300px"' in out and 'alt="A picture"' in out and "![kept](a.svg)" in out


def test_external_references_finds_what_would_leave_the_file() -> None:
    page = ('<html><head><link rel="stylesheet" href="https://cdn.example/x.css">'
            '<script src="//cdn.example/x.js"></script><style>@import "https://f.example/font.css";</style></head>'
            '<body><img src="http://example.org/i.png"><img src="data:image/png;base64,AA==">'
            '<a href="https://apptainer.org/docs">docs</a></body></html>')
    found = slides.external_references(page)
    assert len(found) == 4
    assert not any("apptainer.org" in f for f in found), "a plain link is not a fetched resource"


@pytest.mark.real
def test_built_html_is_self_contained(tmp_path: Path) -> None:
    need_tool("npm", "Marp CLI is installed from the npm registry")
    result = slides.build(out_dir=tmp_path, pdf=False, sync=False)
    page = result.html.read_text(encoding="utf-8")
    assert slides.external_references(page) == []
    sections = re.findall(r"<section\b", page)
    assert len(sections) == slides.count_slides(DECK)
    assert "hpcw:" not in page
    assert page.count("data:image/svg+xml;base64,") >= 4


def test_instructor_guide_covers_the_session() -> None:
    guide = (slides.SLIDES_DIR / "INSTRUCTOR.md").read_text(encoding="utf-8")
    for needle in ("60 min", "hpcwidgets practice-cluster up", "hpcwidgets workshop check --profile",
                   "make slides", "hpcwidgets lint", "pre-pull", "tunnel"):
        assert needle.lower() in guide.lower(), needle


@pytest.mark.real
def test_pdf_is_built_when_chromium_is_present(tmp_path: Path) -> None:
    need_tool("npm", "Marp CLI is installed from the npm registry")
    need_tool("chromium", "Marp CLI prints the PDF with Chromium")
    result = slides.build(out_dir=tmp_path, pdf=True, sync=False, browser="/usr/bin/chromium")
    assert result.pdf is not None and result.pdf.read_bytes().startswith(b"%PDF-")
    assert result.pdf.stat().st_size > 50_000, "the PDF is suspiciously small for a 46-slide deck with diagrams"


# ------------------------------------------------------------------------------------------------
# blocks that are the linter's output (hpcw: lint FILE / hpcw: fixed FILE), checked against the CLI
# ------------------------------------------------------------------------------------------------
BROKEN = """#!/bin/bash
#SBATCH --job-name=ddp-broken
#SBATCH --partition=gpu-multi
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --time=02:00:00

module load apptainer
srun apptainer exec --nv img_1.0.sif \\
  torchrun --nnodes="$SLURM_NNODES" --nproc-per-node="$SLURM_NTASKS_PER_NODE" \\
    --rdzv-backend=c10d --rdzv-id="$SLURM_JOB_ID" --rdzv-endpoint="$SLURM_STEP_NODELIST:29500" train.py
"""


def _lint_deck(lint_extra: str = "", fixed_extra: str = "") -> str:
    """A deck with the broken script, its lint output and its fixed version (both stale)."""
    return ("---\nmarp: true\n---\n\n# broken\n\n<!-- hpcw: expect HPC101,HPC102 file=broken.sbatch -->\n"
            f"```bash\n{BROKEN}```\n\n---\n\n<!-- hpcw: lint broken.sbatch ignore=HPC209 {lint_extra}-->\n"
            f"```text\nstale\n```\n\n---\n\n<!-- hpcw: fixed broken.sbatch {fixed_extra}-->\n```bash\nstale\n```\n")


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from hpcwidgets.cli import main as hpcwidgets_main
    capsys.readouterr()
    hpcwidgets_main(argv)
    return capsys.readouterr().out


@pytest.mark.parametrize("spec, want", [
    ("lint broken.sbatch profile=midway3 ignore=hpc209", {"lint": "broken.sbatch", "profile": "midway3",
                                                         "ignore": ("HPC209",)}),
    ('fixed broken.sbatch from="# one task"', {"fixed": "broken.sbatch", "from": "# one task"}),
    ("expect HPC101 file=broken.sbatch", {"expect": ("HPC101",), "file": "broken.sbatch"}),
])
def test_marker_grammar_for_the_linters_output(spec: str, want: dict) -> None:
    assert slides.parse_marker(spec) == want


@pytest.mark.parametrize("spec, fragment", [
    ("lint", "needs the file"),
    ("lint a.sh fixed a.sh", "only one of"),
    ("fixed a.sh ignore=HPC209", "select= and ignore= go with lint"),
    ("lint a.sh select=HPC999", "unknown rule code HPC999"),
    ('file=a.sh from="x"', "whole file"),
])
def test_bad_lint_markers_say_what_to_write(spec: str, fragment: str) -> None:
    with pytest.raises(SlidesError, match=fragment):
        slides.parse_marker(spec)


def test_sync_writes_exactly_what_the_cli_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    deck = slides.sync_text(_lint_deck())
    shown = [b.body for b in slides.code_blocks(deck) if b.kind in ("lint", "fixed")]
    monkeypatch.chdir(tmp_path)
    Path("broken.sbatch").write_text(BROKEN, encoding="utf-8")
    printed = _cli(["lint", "broken.sbatch", "--profile", "midway3", "--ignore", "HPC209"], capsys)
    _cli(["lint", "--fix", "broken.sbatch", "--profile", "midway3"], capsys)
    assert "HPC101" in printed and "HPC209" not in printed
    assert shown == [printed, Path("broken.sbatch").read_text(encoding="utf-8")]
    assert slides.sync_text(deck) == deck


def test_a_stale_lint_block_fails_the_check_naming_its_line(tmp_path: Path) -> None:
    text = _lint_deck()
    path = tmp_path / slides.DECK_NAME
    path.write_text(text, encoding="utf-8")
    problems = slides.check_deck(path)
    lines = [b.line for b in slides.code_blocks(text) if b.kind in ("lint", "fixed")]
    assert len(problems) == 2
    assert problems[0].startswith(f"workshop.md:{lines[0]} (text block, lint)")
    assert "hpcwidgets lint broken.sbatch --profile midway3 --ignore HPC209" in problems[0]
    assert problems[1].startswith(f"workshop.md:{lines[1]} (bash block, fixed)")
    assert "hpcwidgets lint --fix broken.sbatch --profile midway3" in problems[1]
    assert all("python -m hpcwidgets.slides sync" in p for p in problems)
    path.write_text(slides.sync_text(text), encoding="utf-8")
    assert slides.check_deck(path) == []


def test_lint_blocks_keep_slides_readable_with_from_and_to() -> None:
    deck = slides.sync_text(_lint_deck('from="HPC102" ', 'from="head_node=" to="srun"'))
    output, fixed = [b.body for b in slides.code_blocks(deck) if b.kind in ("lint", "fixed")]
    assert output.startswith("broken.sbatch:10: error HPC102") and "HPC101" not in output
    assert fixed.startswith("head_node=$(scontrol show hostnames") and fixed.count("\n") == 2
    assert fixed.splitlines()[1].startswith('srun "--ntasks=$SLURM_JOB_NUM_NODES"')


def test_a_lint_block_needs_an_earlier_block_with_that_file_name() -> None:
    text = "<!-- hpcw: lint other.sbatch -->\n```text\nx\n```\n"
    with pytest.raises(SlidesError, match=r"workshop.md:2: .*no earlier block is marked file=other.sbatch"):
        slides.code_blocks(text)


# ------------------------------------------------------------------------------------------------
# --profile: the deck for another site
# ------------------------------------------------------------------------------------------------
ON_MIDWAY3 = "#!/bin/bash\n#SBATCH --partition=gpu-multi\n#SBATCH --time=10\nsrun hostname\n"


def _profile_deck(tmp_path: Path, pinned: bool) -> Path:
    marker = "<!-- hpcw: profile=midway3 -->\n" if pinned else ""
    path = tmp_path / slides.DECK_NAME
    path.write_text(f"# x\n\n{marker}```bash\n{ON_MIDWAY3}```\n", encoding="utf-8")
    return path


def test_check_profile_replaces_the_default_for_unmarked_blocks(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _profile_deck(tmp_path, pinned=False)
    assert slides.main(["check", "--slides-dir", str(tmp_path)]) == 0
    assert slides.main(["check", "--slides-dir", str(tmp_path), "--profile", "local"]) == 1
    err = capsys.readouterr().err
    assert "workshop.md:5: error HPC401" in err and "gpu-multi" in err


def test_a_marker_with_its_own_profile_ignores_the_profile_option(tmp_path: Path) -> None:
    _profile_deck(tmp_path, pinned=True)
    assert slides.main(["check", "--slides-dir", str(tmp_path), "--profile", "local"]) == 0


def test_an_unknown_profile_is_an_error_before_anything_is_written(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _profile_deck(tmp_path, pinned=False)
    before = path.read_text(encoding="utf-8")
    assert slides.main(["sync", "--slides-dir", str(tmp_path), "--profile", "no-such-site"]) == 2
    assert "no-such-site" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == before


def test_the_instructor_recipe_for_another_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """INSTRUCTOR.md's 'Adapting the deck to your site': sync and check with --profile; generated blocks
    follow the profile, and check names each hand-written block that no longer fits."""
    guide = (slides.SLIDES_DIR / "INSTRUCTOR.md").read_text(encoding="utf-8")
    assert "python -m hpcwidgets.slides sync --profile" in guide
    assert "python -m hpcwidgets.slides check --profile" in guide
    assert "build --profile" in guide
    (tmp_path / slides.DECK_NAME).write_text(DECK, encoding="utf-8")
    assert slides.main(["sync", "--slides-dir", str(tmp_path), "--profile", "local"]) == 0
    adapted = (tmp_path / slides.DECK_NAME).read_text(encoding="utf-8")
    for block in slides.code_blocks(adapted, profile="local"):
        if block.kind == "example":
            assert block.profile == "local", f"{block.where()} is pinned to {block.profile}"
            assert block.body == slides.expected_body(block)
    capsys.readouterr()
    assert slides.main(["check", "--slides-dir", str(tmp_path), "--profile", "local"]) == 1
    err = capsys.readouterr().err
    assert "HPC401" in err and "local has no partition 'gpu-multi'" in err
    fixed_line = next(b.line for b in slides.code_blocks(adapted) if b.kind == "fixed")
    assert (f"workshop.md:{fixed_line} (bash block, fixed): line 3 of what `hpcwidgets lint --fix broken.sbatch "
            "--profile local` gives: error HPC401") in err
    assert slides.main(["check", "--slides-dir", str(tmp_path)]) == 1, "the synced deck is local's, not midway3's"


def test_a_stale_block_names_the_refresh_command_for_the_profile(tmp_path: Path) -> None:
    path = tmp_path / slides.DECK_NAME
    path.write_text(slides.sync_text(_lint_deck()), encoding="utf-8")
    stale = slides.check_deck(path, "generic")
    assert stale and all(p.endswith("refresh it with: python -m hpcwidgets.slides sync --profile generic")
                         for p in stale if "stale" in p)
    assert any("`hpcwidgets lint broken.sbatch --profile generic --ignore HPC209`" in p for p in stale)


def test_a_lint_block_fenced_as_bash_is_refused() -> None:
    text = _lint_deck().replace("-->\n```text\nstale", "-->\n```bash\nstale")
    lint_block = next(b for b in slides.code_blocks(text) if b.kind == "lint")
    assert slides.check_block(lint_block) == [f"workshop.md:{lint_block.line} (bash block, lint): a lint block must "
                                              "be fenced as ```text"]


def test_sections_of_the_instructor_guide_cited_in_the_deck_exist() -> None:
    guide = (slides.SLIDES_DIR / "INSTRUCTOR.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#+ (.+?)\s*$", guide, re.M))
    cited = re.findall(r'INSTRUCTOR\.md: "([^"]+)"', DECK)
    assert cited and set(cited) <= headings, f"sections cited but missing: {set(cited) - headings}"


def test_the_guide_writes_a_new_profile_under_its_own_name_into_a_folder_that_exists() -> None:
    guide = (slides.SLIDES_DIR / "INSTRUCTOR.md").read_text(encoding="utf-8")
    shows = re.findall(r"`([^`]*hpcwidgets profile show[^`]*)`", guide.replace("\n      ", " "))
    assert shows
    for cmd in shows:
        assert "--name mysite" in cmd, cmd
        if "> ~/.config/" in cmd:
            assert cmd.startswith("mkdir -p ~/.config/hpcwidgets/profiles &&"), cmd
