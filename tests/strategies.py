"""Hypothesis strategies generated from field metadata: one strategy for every model."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from hpcwidgets.spec import Bind, EnvVar
from hpcwidgets.spec._meta import FieldSpec, Spec

SAFE = string.ascii_letters + string.digits + "_./-"
HOSTILE_PIECES = list(" '\"\\$`;|&<>(){}*?!~#\t\n") + ["$SCRATCH", "${USER}", "$(id)", "é", "日本", "a", "b", "/", "."]
safe_text = st.text(alphabet=SAFE, min_size=1, max_size=12).filter(lambda s: not s.startswith("-"))
hostile_text = st.lists(st.sampled_from(HOSTILE_PIECES + list("xyz0")), min_size=1, max_size=8).map("".join)
word = st.one_of(safe_text, hostile_text).filter(lambda s: not s.startswith("-"))
path_part = st.text(alphabet=SAFE + " $'", min_size=1, max_size=10).filter(
    lambda s: not s.startswith(("-", "~")) and s.strip() == s and s)
#: variable names (a lone "_" is bash's $_, never one of ours)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,6}|_[A-Za-z0-9_]{1,6}", fullmatch=True)

binds = st.builds(lambda s, d, m: Bind("/" + s, ("/" + d) if d else "", m),
                  path_part, st.one_of(st.just(""), path_part), st.sampled_from(["", "ro", "rw"]))
envs = st.builds(EnvVar, names, word)


def field_strategy(f: FieldSpec, hostile: bool = True):
    base = f.base_type
    text = word if hostile else safe_text
    if f.info.role in ("program", "subcommand"):
        return st.sampled_from(f.info.choices or (f.default,))
    if f.info.role == "rest":
        return st.lists(text, max_size=4).map(tuple)
    if f.info.role == "positional":
        return text
    if base is bool:
        return st.booleans()
    if base is int:
        lo = f.info.minimum if f.info.minimum is not None else 0
        hi = f.info.maximum if f.info.maximum is not None else 64
        return st.one_of(st.none(), st.integers(lo, hi)) if f.optional else st.integers(lo, hi)
    if base is Bind:
        return st.lists(binds, max_size=3).map(tuple)
    if base is EnvVar:
        return st.lists(envs, max_size=2).map(tuple)
    if f.is_tuple:
        return st.lists(text, max_size=2).map(tuple) if f.info.flag else st.just(())
    if f.info.choices:
        return st.sampled_from(("",) + tuple(f.info.choices)) if f.default == "" else st.sampled_from(f.info.choices)
    return st.one_of(st.just(""), text)


def models(cls: type[Spec], hostile: bool = True, **fixed):
    """Instances of ``cls`` with every field drawn from its metadata (``fixed`` overrides)."""
    kwargs = {f.name: fixed.get(f.name, field_strategy(f, hostile)) for f in cls.field_specs()
              if f.info.role != "internal" or f.name in fixed}
    kwargs = {k: (v if hasattr(v, "example") else st.just(v)) for k, v in kwargs.items()}
    return st.builds(cls, **kwargs)
