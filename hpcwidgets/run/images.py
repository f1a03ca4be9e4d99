"""The practice cluster's container image: a Charliecloud image directory that trains with PyTorch.

:func:`ensure_trainer_image` makes ``/var/tmp/hpcw-images/trainer``, the image the ``local`` profile's
examples run with ``ch-run``. It holds

* a Debian 12 root file system made by ``debootstrap --variant=minbase`` (the only download: Debian
  packages from the mirror, ``$HPCW_DEBIAN_MIRROR`` or ``http://deb.debian.org/debian``), plus the
  shared libraries CPython's extension modules load (:data:`LIBRARIES`);
* the Python interpreter that runs hpcwidgets (``sys.base_prefix``, e.g. a pyenv install), copied to the
  same absolute path inside the image, because its ``RUNPATH`` names that path;
* a virtual environment at :data:`VENV` (``/opt/hpcw-venv``) with PyTorch, NumPy, scikit-learn and
  everything they require (:func:`distribution_closure`), copied from the site-packages directory where
  the running interpreter finds ``torch``;
* ``python``, ``python3`` and ``torchrun`` in ``/usr/local/bin`` and ``/usr/bin`` (ch-run always keeps
  ``/usr/bin`` on ``PATH``); ``python`` is a two-line shell wrapper so the venv is recognised;
* the bind mount points ``/mnt/0`` … ``/mnt/9`` (ch-run cannot create them in a read-only image);
* a marker ``/etc/hpcw-image.json`` recording :data:`IMAGE_VERSION`, the interpreter and the package
  versions. The image counts as up to date when the marker equals what would be built now.

Files are *hard links* to the host's copies where possible (same file system), so the PyTorch install
costs no disk space and no copying time; across file systems they are copied instead.
The image is built in a temporary directory next to its final place, checked with ``ch-run`` (imports
torch and sklearn, runs ``torchrun --help``) and only then renamed into place, so a failed or interrupted
build never leaves a half image behind. A lock file beside the image serialises concurrent builds.
"""

from __future__ import annotations

import errno
import fcntl
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import RunError

#: where the ``local`` profile's examples expect the image
TRAINER_IMAGE = Path("/var/tmp/hpcw-images/trainer")
#: bump when the recipe below changes: images with another version are rebuilt
IMAGE_VERSION = 1
#: the virtual environment inside the image
VENV = "/opt/hpcw-venv"
#: the marker file inside the image
MARKER = "etc/hpcw-image.json"
SUITE = "bookworm"
MIRROR_ENV = "HPCW_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Debian packages added to minbase: what CPython's extension modules and the wheels' bundled
#: libraries load (ctypes needs libffi, ssl/hashlib libssl, sqlite3, bz2, lzma, readline, curses, uuid)
LIBRARIES: tuple[str, ...] = (
    "libffi8", "libssl3", "libexpat1", "libsqlite3-0", "libbz2-1.0", "liblzma5", "libncursesw6",
    "libreadline8", "libuuid1", "zlib1g", "libgomp1", "libstdc++6", "ca-certificates",
)
#: the distributions the training payload imports; their requirements come along
ROOTS: tuple[str, ...] = ("torch", "numpy", "scikit-learn")
#: bind destinations that must exist in the image
MOUNT_POINTS = tuple(f"mnt/{i}" for i in range(10))
#: parts of the interpreter's standard library the image leaves out (tests, GUI, installers)
STDLIB_SKIP = frozenset({"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"})
#: seconds allowed for debootstrap (it downloads ~40 MB)
DEBOOTSTRAP_TIMEOUT = 900.0
#: seconds allowed for each ch-run check
CHECK_TIMEOUT = 180.0


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`ensure_trainer_image` found or made."""

    path: Path
    built: bool  # False: an up-to-date image was already there
    seconds: float  # time spent (building, or checking the marker)
    recipe: dict
    #: bytes of all files in the image, and bytes that are new on disk (files not shared by hard links)
    apparent_bytes: int = 0
    new_bytes: int = 0
    linked_files: int = 0
    copied_files: int = 0

    def __str__(self) -> str:
        what = f"built in {self.seconds:.0f} s" if self.built else "up to date"
        sizes = ""
        if self.apparent_bytes:
            sizes = (f", {self.apparent_bytes / 2**20:.0f} MB of files, {self.new_bytes / 2**20:.0f} MB new on "
                     f"disk ({self.linked_files} hard links, {self.copied_files} copies)")
        torch = self.recipe.get("packages", {}).get("torch", "?")
        return f"trainer image {self.path}: {what} (python {self.recipe.get('python')}, torch {torch}){sizes}"


# ---------------------------------------------------------------------------------------------------
# what goes in (pure given the installed metadata)

def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _requirement_names(dist: metadata.Distribution) -> list[str]:
    """Names of a distribution's unconditional requirements (those without an ``extra ==`` marker)."""
    names = []
    for req in dist.requires or ():
        body, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        m = _REQ_NAME.match(body)
        if m:
            names.append(m.group(1))
    return names


def _distributions(site_packages: Path) -> dict[str, metadata.Distribution]:
    out: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=[str(site_packages)]):
        name = dist.metadata["Name"]
        if name:
            out.setdefault(_norm(name), dist)
    return out


def distribution_closure(site_packages: Path, roots: Iterable[str] = ROOTS) -> dict[str, metadata.Distribution]:
    """The installed distributions ``roots`` need, with their requirements, transitively.

    A root that is not installed in ``site_packages`` is an error naming the fix; an optional requirement
    that is absent (for example one only some platforms use) is left out.
    """
    installed = _distributions(site_packages)
    missing = [r for r in roots if _norm(r) not in installed]
    if missing:
        raise RunError(f"{', '.join(missing)} not installed in {site_packages}; install them there "
                       "(pip install torch==2.13.0 numpy scikit-learn) or pass site_packages= pointing at "
                       "an environment that has them")
    todo = [_norm(r) for r in roots]
    found: dict[str, metadata.Distribution] = {}
    while todo:
        name = todo.pop()
        if name in found or name not in installed:
            continue
        found[name] = installed[name]
        todo += [_norm(n) for n in _requirement_names(installed[name])]
    return dict(sorted(found.items()))


def top_level_entries(dist: metadata.Distribution) -> set[str]:
    """The names directly in site-packages that a distribution installed (packages, modules, .libs,
    its .dist-info), read from its RECORD; files outside site-packages (scripts) are not included."""
    entries: set[str] = set()
    for f in dist.files or ():
        parts = Path(str(f)).parts
        if not parts or parts[0] in ("..", "/") or parts[0] == "__pycache__":
            continue
        entries.add(parts[0])
    return entries


def site_packages_of(dist_name: str = "torch") -> Path:
    """The site-packages directory where the running interpreter finds ``dist_name``."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise RunError(f"{dist_name} is not installed for {sys.executable}; the trainer image copies it from "
                       "here, so install it (pip install torch==2.13.0 numpy scikit-learn) or pass "
                       "site_packages=") from None
    return Path(str(dist.locate_file(""))).resolve()


def recipe(site_packages: Path, roots: Iterable[str] = ROOTS) -> dict:
    """What the image holds, as recorded in its marker; equal recipes mean an up-to-date image."""
    dists = distribution_closure(site_packages, roots)
    return {
        "image_version": IMAGE_VERSION,
        "suite": SUITE,
        "libraries": list(LIBRARIES),
        "python": ".".join(map(str, sys.version_info[:3])),
        "interpreter": sys.base_prefix,
        "venv": VENV,
        "packages": {name: d.version for name, d in dists.items()},
    }


def read_marker(path: Path = TRAINER_IMAGE) -> dict | None:
    """The recipe recorded in an image, or None when there is no marker.

    A marker that is not valid JSON also gives None: the image is then treated as not built (an
    interrupted hand edit, say) and :func:`ensure_trainer_image` replaces it.
    """
    try:
        text = (Path(path) / MARKER).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------------------------
# building blocks

@dataclass
class _Counts:
    linked: int = 0
    copied: int = 0


def link_tree(src: Path, dst: Path, counts: _Counts, skip: Callable[[Path], bool] = lambda p: False) -> None:
    """Recreate ``src`` at ``dst``: directories made, files hard-linked (copied when linking is impossible,
    e.g. across file systems), symbolic links recreated as they are."""
    if src.is_symlink():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.readlink(src), dst)
        return
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        _link_file(src, dst, counts)
        return
    for root, dirs, files in os.walk(src):
        here = Path(root)
        rel = here.relative_to(src)
        target = dst / rel
        target.mkdir(parents=True, exist_ok=True)
        shutil.copymode(here, target)
        keep = []
        for d in dirs:
            if skip(here / d):
                continue
            if (here / d).is_symlink():
                os.symlink(os.readlink(here / d), target / d)
                continue
            keep.append(d)
        dirs[:] = keep
        for name in files:
            s = here / name
            if skip(s):
                continue
            if s.is_symlink():
                os.symlink(os.readlink(s), target / name)
            else:
                _link_file(s, target / name, counts)


def _link_file(src: Path, dst: Path, counts: _Counts) -> None:
    try:
        os.link(src, dst)
        counts.linked += 1
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise
        shutil.copy2(src, dst)
        counts.copied += 1


def _run_logged(argv: list[str], log: Path, timeout: float, what: str, fix: str,
                env: dict[str, str] | None = None) -> None:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise RunError(f"{what} did not finish within {timeout:.0f} s; {fix}; its output is in {log}",
                           argv=argv) from None
        except FileNotFoundError:
            raise RunError(f"{argv[0]} is not installed; {fix}", argv=argv) from None
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise RunError(f"{what} failed (exit {proc.returncode}); {fix}. The end of {log}:\n" + "\n".join(tail),
                       argv=argv, returncode=proc.returncode)


def _ch_env() -> dict[str, str]:
    """ch-run refuses to start without USER; root's jobs and CI containers often lack it."""
    env = dict(os.environ)
    if not env.get("USER"):
        import pwd
        env["USER"] = pwd.getpwuid(os.geteuid()).pw_name
    return env


def _debootstrap(root: Path, log: Path, mirror: str) -> None:
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(LIBRARIES)}", SUITE, str(root), mirror]
    _run_logged(argv, log, DEBOOTSTRAP_TIMEOUT, "debootstrap",
                f"check that the Debian mirror {mirror} is reachable (set ${MIRROR_ENV} to another mirror) and that "
                "debootstrap is installed (apt-get install debootstrap, or `hpcwidgets practice-cluster up`)")


def _copy_interpreter(root: Path, counts: _Counts) -> str:
    """Copy the running interpreter's installation to the same path inside ``root``; return the
    interpreter's path inside the image."""
    base = Path(sys.base_prefix)
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    exe = base / "bin" / ver
    if not exe.is_file():
        raise RunError(f"no interpreter at {exe}; run hpcwidgets with a CPython installed under a prefix "
                       "(pyenv, python.org build or a distribution's python3)")
    inside = root / base.relative_to("/")
    link_tree(exe, inside / "bin" / ver, counts)
    for lib in sorted((base / "lib").glob("libpython*")):
        link_tree(lib, inside / "lib" / lib.name, counts)
    stdlib = base / "lib" / ver
    link_tree(stdlib, inside / "lib" / ver, counts,
              skip=lambda p: p.parent == stdlib and p.name in STDLIB_SKIP)
    (inside / "lib" / ver / "site-packages").mkdir(parents=True, exist_ok=True)
    return str(base / "bin" / ver)


def _make_venv(root: Path, interpreter: str, site_packages: Path, dists: dict[str, metadata.Distribution],
               counts: _Counts) -> None:
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    venv = root / VENV.lstrip("/")
    (venv / "bin").mkdir(parents=True)
    target = venv / "lib" / ver / "site-packages"
    target.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(interpreter)}\ninclude-system-site-packages = false\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n", encoding="utf-8")
    os.symlink(interpreter, venv / "bin" / ver)
    os.symlink(ver, venv / "bin" / "python")
    os.symlink(ver, venv / "bin" / "python3")
    cache = site_packages / "__pycache__"
    for dist in dists.values():
        for entry in sorted(top_level_entries(dist)):
            src = site_packages / entry
            if not (src.exists() or src.is_symlink()) or (target / entry).exists():
                continue
            link_tree(src, target / entry, counts)
            if entry.endswith(".py") and cache.is_dir():  # a top-level module's compiled copy
                for pyc in cache.glob(f"{entry[:-3]}.*.pyc"):
                    link_tree(pyc, target / "__pycache__" / pyc.name, counts)
        for ep in dist.entry_points:
            if ep.group != "console_scripts":
                continue
            module, _, attr = ep.value.partition(":")
            script = venv / "bin" / ep.name
            script.write_text(
                f"#!{VENV}/bin/python\n# written by hpcwidgets.run.images for {dist.metadata['Name']}\n"
                f"import sys\nfrom {module.strip()} import {attr.strip().split('.')[0]}\n"
                f"sys.exit({attr.strip()}())\n", encoding="utf-8")
            script.chmod(0o755)


def _finish_tree(root: Path) -> None:
    """Commands on PATH, mount points, files ch-run binds over."""
    for d in ("usr/local/bin", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        wrapper = root / "usr/local/bin" / name
        # a symbolic link would hide the venv (Python finds pyvenv.cfg next to the path it was started by)
        wrapper.write_text(f'#!/bin/sh\nexec {VENV}/bin/python "$@"\n', encoding="utf-8")
        wrapper.chmod(0o755)
    os.symlink(f"{VENV}/bin/torchrun", root / "usr/local/bin/torchrun")
    for name in ("python", "python3", "torchrun"):
        link = root / "usr/bin" / name
        if not (link.exists() or link.is_symlink()):
            os.symlink(f"/usr/local/bin/{name}", link)
    for m in MOUNT_POINTS:
        (root / m).mkdir(parents=True, exist_ok=True)
    for f in ("etc/hosts", "etc/resolv.conf", "etc/passwd", "etc/group"):
        p = root / f
        if not (p.exists() or p.is_symlink()):
            p.touch()
    # apt's package lists are not needed to run; they are most of minbase's variable data
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        p = root / d
        if p.is_dir():
            for child in p.iterdir():
                if child.is_file() and child.name != "lock":
                    child.unlink()


def check_image(path: Path = TRAINER_IMAGE) -> str:
    """Run the image's checks with ch-run: import torch and sklearn, then ``torchrun --help``.

    Returns what the import check printed (versions); ``RunError`` naming the fix when a check fails.
    """
    if shutil.which("ch-run") is None:
        raise RunError("ch-run is not installed; apt-get install charliecloud-runtime "
                       "(or `hpcwidgets practice-cluster up`, which installs it)")
    code = ("import torch, sklearn, numpy, sys; "
            "print('python', sys.version.split()[0], 'torch', torch.__version__, 'sklearn', sklearn.__version__, "
            "'numpy', numpy.__version__)")
    checks = [["ch-run", str(path), "--", "python", "-c", code], ["ch-run", str(path), "--", "torchrun", "--help"]]
    outputs = []
    for argv in checks:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT, env=_ch_env())
        except subprocess.TimeoutExpired:
            raise RunError(f"{' '.join(argv[3:5])} in {path} did not finish within {CHECK_TIMEOUT:.0f} s",
                           argv=argv) from None
        if proc.returncode != 0:
            raise RunError(f"the image {path} fails the check `{' '.join(argv[3:5])} …` (exit {proc.returncode}); "
                           "rebuild it with ensure_trainer_image(force=True) or "
                           f"`python -m hpcwidgets.run.images --force`:\n{proc.stderr.strip()[-2000:]}",
                           argv=argv, returncode=proc.returncode, stderr=proc.stderr)
        outputs.append(proc.stdout.strip())
    return outputs[0]


def _sizes(root: Path) -> tuple[int, int]:
    total = new = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size
            if st.st_nlink == 1:
                new += st.st_blocks * 512
    return total, new


# ---------------------------------------------------------------------------------------------------
# the entry point

def ensure_trainer_image(path: str | os.PathLike = TRAINER_IMAGE, force: bool = False, *,
                         site_packages: str | os.PathLike | None = None, mirror: str | None = None,
                         progress: Callable[[str], None] | None = None) -> ImageInfo:
    """Make sure a Charliecloud image directory at ``path`` runs the training payload (idempotent).

    Nothing is done when the image's marker matches what would be built now (unless ``force``).
    Otherwise the image is built next to ``path`` (see the module text), checked with ch-run and renamed
    into place; an old image is replaced only after the new one passed its checks.
    ``site_packages`` is where torch, numpy and scikit-learn are copied from (default: where this
    interpreter finds torch); ``mirror`` the Debian mirror (default ``$HPCW_DEBIAN_MIRROR`` or
    deb.debian.org). ``progress`` receives one line per stage. Needs root (debootstrap).
    """
    started = time.monotonic()
    path = Path(path).absolute()
    say = progress or (lambda line: None)
    source = Path(site_packages).resolve() if site_packages is not None else site_packages_of("torch")
    want = recipe(source)
    if not force and read_marker(path) == want:
        return ImageInfo(path, False, time.monotonic() - started, want)
    if os.geteuid() != 0:
        raise RunError(f"building the trainer image {path} needs root (debootstrap); run it as root, "
                       "or ask whoever runs the practice cluster to run `hpcwidgets practice-cluster up`")
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise RunError("debootstrap is not installed; apt-get install debootstrap "
                       "(or run `hpcwidgets practice-cluster up`, which installs it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same image
        if not force and read_marker(path) == want:
            return ImageInfo(path, False, time.monotonic() - started, want)
        return _build(path, source, want, mirror or os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR, say, started)


def _build(path: Path, source: Path, want: dict, mirror: str, say: Callable[[str], None],
           started: float) -> ImageInfo:
    tmp = path.parent / f".{path.name}.new-{os.getpid()}"
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    log = path.parent / f"{path.name}.build.log"
    log.write_text(f"building {path} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n", encoding="utf-8")
    for leftover in path.parent.glob(f".{path.name}.new-*"):
        shutil.rmtree(leftover, ignore_errors=False)
    counts = _Counts()
    try:
        say(f"debootstrap {SUITE} (minbase) from {mirror} into {tmp}")
        _debootstrap(tmp, log, mirror)
        say(f"copying the interpreter {sys.base_prefix} and {len(want['packages'])} distributions from {source}")
        interpreter = _copy_interpreter(tmp, counts)
        _make_venv(tmp, interpreter, source, distribution_closure(source), counts)
        _finish_tree(tmp)
        (tmp / MARKER).write_text(json.dumps(want, indent=2) + "\n", encoding="utf-8")
        say("checking the image with ch-run (import torch, sklearn; torchrun --help)")
        check_image(tmp)
        apparent, new = _sizes(tmp)
        if path.exists() or path.is_symlink():
            path.rename(old)
        tmp.rename(path)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp)
        raise
    if old.exists():
        shutil.rmtree(old)
    info = ImageInfo(path, True, time.monotonic() - started, want, apparent, new, counts.linked, counts.copied)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{info}\n")
    return info


def main(argv: list[str] | None = None) -> int:
    """``python -m hpcwidgets.run.images [--force] [--check] [PATH]``."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m hpcwidgets.run.images",
                                     description="Build (if needed) the practice cluster's Charliecloud trainer image.")
    parser.add_argument("path", nargs="?", default=str(TRAINER_IMAGE), help=f"image directory (default {TRAINER_IMAGE})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the image is up to date")
    parser.add_argument("--check", action="store_true", help="afterwards run the ch-run checks and print versions")
    args = parser.parse_args(argv)
    try:
        info = ensure_trainer_image(args.path, args.force, progress=lambda line: print(line, file=sys.stderr))
        print(info)
        if args.check:
            print(check_image(info.path))
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["IMAGE_VERSION", "ImageInfo", "TRAINER_IMAGE", "VENV", "check_image", "distribution_closure",
           "ensure_trainer_image", "read_marker", "recipe", "site_packages_of"]
