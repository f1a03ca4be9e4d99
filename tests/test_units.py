import pytest

from hpcwidgets.spec.units import UNLIMITED, format_mem, format_time, parse_mem, parse_time, time_equal


@pytest.mark.parametrize("text,seconds", [
    ("90", 5400), ("1:30", 90), ("01:30:00", 5400), ("2-0", 172800), ("1-12", 129600), ("1-12:30", 131400),
    ("1-00:00:01", 86401), ("0", UNLIMITED), ("UNLIMITED", UNLIMITED), ("infinite", UNLIMITED),
])
def test_parse_time_accepts_every_slurm_form(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["1.5h", "2h", "1:2:3:4", "-2", "", "1 day"])
def test_parse_time_rejects_with_the_forms(text):
    with pytest.raises(ValueError, match="D-H:M:S"):
        parse_time(text)


def test_format_time_round_trip():
    for s in (59, 3600, 86399, 86400 * 3 + 5):
        assert parse_time(format_time(s)) == s
    assert time_equal("90", "1:30:00") and not time_equal("90", "1:00:00")


@pytest.mark.parametrize("text,mib", [("16G", 16384), ("4000", 4000), ("512M", 512), ("1T", 1048576), ("2048K", 2), ("0", 0)])
def test_parse_mem(text, mib):
    assert parse_mem(text) == mib


# each value checked with `sbatch --test-only` (Slurm 22.05): accepted ("allocation failure: Requested node
# configuration is not available" or a start time) …
@pytest.mark.parametrize("text,mib", [
    ("16GB", 16384), ("8gb", 8192), ("20Gb", 20480), ("16g", 16384), ("16TB", 16777216), ("16MB", 16), ("16KB", 1),
    ("1024kb", 1), ("1000K", 1), ("0GB", 0), ("0G", 0), ("+16G", 16384), (" 16G", 16384),
])
def test_parse_mem_accepts_what_sbatch_accepts(text, mib):
    # a B or b may follow the unit; K rounds up to whole MiB as sbatch does (1000K is 1 MiB, not 0)
    assert parse_mem(text) == mib


# … and refused ("sbatch: error: Invalid --mem specification")
@pytest.mark.parametrize("text", ["16GiB", "16Gi", "1.5G", "16P", "16PB", "16GBB", "16b", "16B", "16Bb", "-16G", "1e3",
                                  "0x10", "16Gx", "99999999999999999999", "", "G", "16G "])
def test_parse_mem_rejects_what_sbatch_rejects(text):
    with pytest.raises(ValueError, match="Slurm|sbatch"):
        parse_mem(text)


@pytest.mark.parametrize("text,fix", [
    ("16GiB", "write 16G"), ("16Gi", "write 16G"), ("16 G", "write 16G"), ("16 GB", "write 16G"), ("16G ", "write 16G"),
    ("16P", "write 16384T"),
    ("1.5G", "write 1536M"), ("1.5GB", "write 1536M"), ("1.5M", "write 1536K"), ("1.5", "write 1536K"), (".5G", "write 512M"),
])
def test_parse_mem_names_the_fix(text, fix):
    with pytest.raises(ValueError, match=fix):
        parse_mem(text)


def test_parse_mem_raises_only_value_error_for_any_text():
    # ١٦ is 16 in Arabic-Indic digits: Python's int() reads it, sbatch does not
    for text in ("9" * 400 + ".5G", "9" * 5000, "9" * 30 + "G", "16.G", "\x00", "16G\n", "\u0661\u0666G"):
        with pytest.raises(ValueError):
            parse_mem(text)


def test_format_mem():
    assert format_mem(16384) == "16G" and format_mem(1500) == "1500M" and format_mem(1048576) == "1T"
