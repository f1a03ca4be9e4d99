"""The deck's hand-written text follows the site it is built for, or ``slides check`` says where it does not.

Built for a site with 8 GPUs a node, the generated blocks said ``--gres=gpu:8`` while the text around them kept
the source site's "2 nodes × 4 GPUs", ``--nproc-per-node=4`` and "32 CPUs … 4 workers", and ``check`` passed.
Now the counts in the text are value markers that ``sync`` fills from the profile's example, and ``check``
names a count of the source site left unmarked next to a generated example, and the source site's scratch and
node-local paths written by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpcwidgets import slides

DECK = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
MIDWAY3_TOML = Path(slides.__file__).resolve().parent / "profiles" / "midway3.toml"
VALUE = re.compile(r"<!-- hpcw: value [^>\n]*-->([^<\n]*)<!-- hpcw: end -->")


@pytest.fixture
def sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``bigsite``: midway3 with 8 GPUs and 64 CPUs a node, its own scratch and node-local disk; ``samepaths``:
    midway3 with another image folder under the same scratch."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    midway3 = MIDWAY3_TOML.read_text(encoding="utf-8")
    big = (midway3.replace('name = "midway3"', 'name = "bigsite"')
           .replace("gpus_per_node = 4", "gpus_per_node = 8").replace("cpus_per_node = 48", "cpus_per_node = 64")
           .replace("/scratch/midway3", "/scratch/big").replace('"/scratch/local/$USER"', '"/local/$USER"'))
    assert big.count("gpus_per_node = 8") == 2 and '"/local/$USER"' in big
    (folder / "bigsite.toml").write_text(big, encoding="utf-8")
    same = midway3.replace('name = "midway3"', 'name = "samepaths"').replace("/sif_files", "/containers")
    (folder / "samepaths.toml").write_text(same, encoding="utf-8")
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    return folder


def _copy(tmp_path: Path, text: str = DECK) -> Path:
    deck_dir = tmp_path / "deck"
    (deck_dir / "diagrams").mkdir(parents=True)
    (deck_dir / slides.DECK_NAME).write_text(text, encoding="utf-8")
    for path in (slides.SLIDES_DIR / "diagrams").iterdir():
        if path.suffix in (".py", ".svg"):
            (deck_dir / "diagrams" / path.name).write_bytes(path.read_bytes())
    return deck_dir


def _lines(text: str, needle: str) -> list[int]:
    return [i for i, line in enumerate(text.split("\n"), start=1) if needle in line]


def _slide(text: str, title: str) -> str:
    return next(s for s in slides.split_slides(text) if f"## {title}" in VALUE.sub(r"\1", s))


# ------------------------------------------------------------------------------------------------
# the counts of section 6 follow the profile
# ------------------------------------------------------------------------------------------------
def test_sync_writes_the_sites_counts_into_the_text_of_the_multi_node_section(sites: Path, tmp_path: Path) -> None:
    synced = VALUE.sub(r"\1", slides.sync_text(DECK, "bigsite"))
    directives = _slide(synced, "2 nodes × 8 GPUs: the directives (generated)")
    assert "#SBATCH --gres=gpu:8" in directives and "#SBATCH --cpus-per-task=64" in directives
    assert "All 64 CPUs of the task are shared by its 8 workers" in directives
    assert "## 2 nodes × 8 GPUs: the launch (generated)" in synced
    rules = _slide(synced, "The rules of the pattern")
    assert "`#SBATCH --nodes=2 --gres=gpu:8`" in rules and "`torchrun --nproc-per-node=8`" in rules
    assert "![w:1100 2 nodes, 8 GPUs each](diagrams/multi-node-topology.svg)" in synced
    # and back: the deck synced for bigsite, synced again for midway3, is the shipped deck
    assert slides.sync_text(slides.sync_text(DECK, "bigsite")) == DECK


def test_the_synced_deck_leaves_no_count_of_the_source_site_next_to_its_examples(sites: Path) -> None:
    synced = slides.sync_text(DECK, "bigsite")
    assert slides.stale_values(synced, "bigsite") == []
    assert slides.source_numbers(synced, "bigsite") == []


def test_check_names_each_count_of_the_source_site_the_text_still_states(sites: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The deck as the instructor had it: the same text with the counts written out, no markers."""
    old = VALUE.sub(r"\1", DECK)
    deck_dir = _copy(tmp_path, old)
    assert slides.main(["sync", "--slides-dir", str(deck_dir), "--profile", "bigsite"]) == 0
    text = (deck_dir / slides.DECK_NAME).read_text(encoding="utf-8")
    capsys.readouterr()
    assert slides.main(["check", "--slides-dir", str(deck_dir), "--profile", "bigsite"]) == 1
    err = capsys.readouterr().err
    launch_line = next(b.line for b in slides.code_blocks(text, "bigsite")
                       if b.marker.get("example") == "multi-node-torchrun")
    for needle in ("## 2 nodes × 4 GPUs: the directives", "## 2 nodes × 4 GPUs: the launch", "2 nodes, 4 GPUs each",
                   "--gres=gpu:4`", "`torchrun --nproc-per-node=4`", "All 32 CPUs"):
        (line,) = _lines(text, needle)
        assert f"workshop.md:{line}: the text says " in err, needle
    (cpus,) = _lines(text, "All 32 CPUs")
    said = [p for p in err.splitlines() if p.startswith(f"workshop.md:{cpus}: ")]
    assert len(said) == 2, "32 CPUs and 4 workers"
    assert any(f"midway3's CPUs per task (cpus-per-task) in multi-node-torchrun, but for bigsite the block at "
               f"workshop.md:{launch_line} has 64; write the number as <!-- hpcw: value multi-node-torchrun "
               "cpus-per-task -->64<!-- hpcw: end -->" in p for p in said)
    # the broken script's slides speak of that script's own numbers (--gres=gpu:4 written by hand): not reported
    for needle in ("**4 torchruns per node**", "with the node's 4 CPUs"):
        (line,) = _lines(text, needle)
        assert f"workshop.md:{line}: the text says" not in err, needle
    # the list's item numbers and rule codes are not counts of the site
    (item,) = _lines(text, "4. `--rdzv-backend=c10d")
    assert f"workshop.md:{item}: the text says" not in err


def test_the_source_site_itself_has_nothing_to_report() -> None:
    old = VALUE.sub(r"\1", DECK)
    assert slides.source_numbers(old) == [] and slides.source_numbers(old, "midway3") == []
    assert slides.source_paths(DECK) == [] and slides.source_paths(DECK, "midway3") == []


def test_a_number_word_and_a_count_in_a_speaker_note_are_found(sites: Path) -> None:
    text = ("# 6 · Many\n\n---\n\n## Picture\n\n![w:100 Two nodes, four GPUs each](x.svg)\n\n"
            "<!--\nthen the eight workers talk; HPC104 and 0.4 and 4G are not counts\n-->\n\n---\n\n"
            "## Script\n\n<!-- hpcw: example multi-node-torchrun from=\"#!/bin/bash\" to=\"#SBATCH --output\" -->\n"
            "```bash\nx\n```\n")
    text = slides.sync_text(text, "bigsite")
    found = slides.source_numbers(text, "bigsite")
    assert [p.split(":")[1] for p in found] == ["7", "10"]
    assert "says 'four'" in found[0] and "(or nproc-per-node)" in found[0]
    assert "says 'eight'" in found[1] and "torchrun workers in all (workers)" in found[1]


def test_a_stale_value_is_reported_with_the_refresh_command_and_sync_fixes_it(sites: Path, tmp_path: Path) -> None:
    deck_dir = _copy(tmp_path, DECK)
    path = deck_dir / slides.DECK_NAME
    problems = slides.stale_values(DECK, "bigsite")
    (heading,) = _lines(DECK, "GPUs: the directives (generated)")
    assert (f"workshop.md:{heading}: stale: the text says '4' where `hpcwidgets examples multi-node-torchrun "
            "--profile bigsite` gives '8' (GPUs per node); refresh it with: python -m hpcwidgets.slides sync "
            "--profile bigsite") in problems
    assert any("'--gres=gpu:4' where" in p for p in problems)
    assert slides.stale_values(DECK) == []
    slides.sync_deck(path, profile="bigsite")
    assert slides.stale_values(path.read_text(encoding="utf-8"), "bigsite") == []


def test_the_build_keeps_the_value_and_drops_its_markers() -> None:
    out = slides.strip_markers("## <!-- hpcw: value multi-node-torchrun nodes -->2<!-- hpcw: end --> nodes × "
                               "<!-- hpcw: value multi-node-torchrun gpus-per-node -->4<!-- hpcw: end --> GPUs\n")
    assert out == "## 2 nodes × 4 GPUs\n"
    prepared = slides.prepare(DECK, slides.SLIDES_DIR)
    assert "## 2 nodes × 4 GPUs: the directives (generated)" in prepared and "hpcw:" not in prepared


@pytest.mark.parametrize(("body", "fragment"), [
    ("x <!-- hpcw: value multi-node-torchrun gpus -->4<!-- hpcw: end -->", "unknown value 'gpus'"),
    ("x <!-- hpcw: value gpus-per-node -->4<!-- hpcw: end -->", "names an example and what to fill in"),
    ("x <!-- hpcw: value multi-node-torchrun nodes -->2 nodes", "needs the value and <!-- hpcw: end -->"),
    ("<!--\nnote <!-- hpcw: value multi-node-torchrun nodes -->2<!-- hpcw: end -->\n-->",
     "cannot go into speaker notes"),
    ("x <!-- hpcw: value no-such-example nodes -->2<!-- hpcw: end -->", "which profile midway3 does not have"),
    ("x <!-- hpcw: value jupyter nproc-per-node -->2<!-- hpcw: end -->", "gives no nproc-per-node"),
])
def test_bad_value_markers_are_named_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str,
                                                  fragment: str) -> None:
    deck_dir = tmp_path / "d"
    deck_dir.mkdir()
    path = deck_dir / slides.DECK_NAME
    path.write_text(f"# x\n\n{body}\n", encoding="utf-8")
    assert slides.main(["check", "--slides-dir", str(deck_dir)]) == 1
    err = capsys.readouterr().err
    line = 3 + body[:body.index("<!-- hpcw: value")].count("\n")
    assert f"workshop.md:{line}: " in err and fragment in err and "Traceback" not in err
    assert slides.main(["sync", "--slides-dir", str(deck_dir)]) == 2
    assert fragment in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == f"# x\n\n{body}\n"


def test_a_value_next_to_a_fence_does_not_read_as_the_blocks_marker() -> None:
    text = ("Two nodes: <!-- hpcw: value multi-node-torchrun nodes -->2<!-- hpcw: end -->\n"
            "```bash\necho hi\n```\n")
    (block,) = slides.code_blocks(text)
    assert block.kind == "plain" and block.marker == {}
    assert slides.stale_values(text) == []


# ------------------------------------------------------------------------------------------------
# the source site's paths, written by hand
# ------------------------------------------------------------------------------------------------
def test_check_names_the_source_sites_scratch_and_node_local_paths_written_by_hand(sites: Path) -> None:
    synced = slides.sync_text(DECK, "bigsite")
    found = slides.source_paths(synced, "bigsite")
    (pull,) = _lines(synced, "apptainer pull --dir /scratch/midway3/$USER/sif_files")
    (local,) = _lines(synced, "tmp=/scratch/local/$USER/$SLURM_JOB_ID")
    assert (f"workshop.md:{pull}: /scratch/midway3/$USER is midway3's scratch folder (scratch); bigsite's is "
            "/scratch/big/$USER: write that here") in "\n".join(found)
    assert (f"workshop.md:{local}: /scratch/local/$USER is midway3's node-local disk (node_local); bigsite's is "
            "/local/$USER") in "\n".join(found)
    reported = {int(p.split(":")[1]) for p in found}
    written = set(_lines(synced, "/scratch/midway3/")) | set(_lines(synced, "/scratch/local/"))
    generated = {i for b in slides.code_blocks(synced, "bigsite") if b.kind in slides.GENERATED
                 for i in range(b.line, b.line + b.body.count("\n") + 2)}
    assert written - generated and reported == written - generated, "every hand-written one, no generated one"
    # once replaced, nothing is left to report
    fixed = synced.replace("/scratch/midway3/", "/scratch/big/").replace("/scratch/local/", "/local/")
    assert slides.source_paths(fixed, "bigsite") == []


def test_paths_under_the_same_scratch_and_blocks_pinned_to_a_site_are_left_alone(sites: Path) -> None:
    assert slides.source_paths(DECK, "samepaths") == [], "another image folder under the same scratch still works"
    text = "# x\n\n<!-- hpcw: profile=midway3 -->\n```bash\nls /scratch/midway3/$USER/data\n```\n"
    assert slides.source_paths(text, "bigsite") == []
    assert [p.split(":")[1] for p in slides.source_paths(text.replace("profile=midway3 ", ""), "bigsite")] == ["5"]
    prose = "# x\n\nKeep data in `/scratch/midway3/${USER}/data`, not /scratch/midway3x.\n"
    assert [p.split(":")[1] for p in slides.source_paths(prose, "bigsite")] == ["3"]


# ------------------------------------------------------------------------------------------------
# which slides folder the command line works on
# ------------------------------------------------------------------------------------------------
def test_without_slides_dir_the_command_works_on_the_checkout_it_runs_in(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    checkout = tmp_path / "other-checkout"
    deck_dir = checkout / "slides"
    deck_dir.mkdir(parents=True)
    (deck_dir / slides.DECK_NAME).write_text("# x\n\n```bash\necho hi\n```\n", encoding="utf-8")
    (checkout / "notebooks").mkdir()
    assert slides.default_slides_dir(checkout) == deck_dir
    assert slides.default_slides_dir(checkout / "notebooks") == deck_dir
    assert slides.default_slides_dir(deck_dir) == deck_dir
    assert slides.default_slides_dir(tmp_path) == slides.SLIDES_DIR
    monkeypatch.chdir(checkout / "notebooks")
    assert slides.main(["check"]) == 0
    assert f"{deck_dir / slides.DECK_NAME}: 1 code blocks checked" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# the instructor's guide says what is left to do by hand
# ------------------------------------------------------------------------------------------------
def test_the_guide_says_what_sync_fills_what_check_names_and_what_stays_by_hand() -> None:
    guide = (slides.SLIDES_DIR / "INSTRUCTOR.md").read_text(encoding="utf-8")
    section = guide[guide.index("**Adapting the deck to your site.**"):guide.index("## Presenting")]
    flat = " ".join(section.split())
    assert "<!-- hpcw: value" in section
    for needle in ("GPUs per node", "CPUs per task", "/scratch/midway3/$USER", "/scratch/local/$USER",
                   "--nproc-per-node=4", "Taken apart", "APPTAINER_CACHEDIR", "speaker notes"):
        assert needle in flat, needle
    readme = (slides.SLIDES_DIR / "README.md").read_text(encoding="utf-8")
    assert "--slides-dir" in readme
