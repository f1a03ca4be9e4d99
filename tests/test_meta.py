"""Field metadata is complete and drives everything."""

import dataclasses

import pytest

from hpcwidgets.errors import UnknownFieldError, ValidationError
from hpcwidgets.spec import ApptainerRun, SlurmJob, Spec, all_kinds, opt


def test_every_model_field_has_label_and_help():
    for kind, cls in all_kinds().items():
        for f in cls.field_specs():
            assert f.info.label, f"{kind}.{f.name} has no label"
            assert len(f.info.help) > 10, f"{kind}.{f.name} has no useful help text"
            if f.info.role == "option" and f.base_type is not bool and f.info.flag:
                assert f.info.flag.startswith("--"), f"{kind}.{f.name}: render the long flag"


def test_models_are_frozen_and_replace_checks_names():
    m = ApptainerRun(image="a.sif", command=("x",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.image = "b"  # type: ignore[misc]
    assert m.replace(nv=True).nv is True
    with pytest.raises(UnknownFieldError, match="valid fields: .*binds"):
        m.replace(bindz=())


def test_replace_coerces_lists_to_tuples():
    assert SlurmJob().replace(modules=["apptainer"]).modules == ("apptainer",)


def test_field_without_metadata_is_rejected():
    @dataclasses.dataclass(frozen=True)
    class Bad(Spec):
        x: int = 1
    with pytest.raises(TypeError, match="without opt"):
        Bad.field_specs()


def test_mutable_defaults_are_refused():
    with pytest.raises(TypeError, match="immutable"):
        opt([], label="x", help="y")


def test_from_dict_with_wrong_kind():
    with pytest.raises(ValidationError, match="unknown model kind"):
        ApptainerRun.from_dict({"kind": "nope"})
    with pytest.raises(ValidationError, match="expected apptainer.run"):
        ApptainerRun.from_dict({"kind": "slurm.job"})


def test_public_functions_survive_submodule_imports():
    """Importing hpcwidgets.render.command binds hpcwidgets.render to the package; it must stay callable."""
    import hpcwidgets as hw
    import hpcwidgets.examples  # noqa: F401
    import hpcwidgets.lint.catalogue  # noqa: F401
    import hpcwidgets.render.command  # noqa: F401
    from hpcwidgets.spec import Torchrun
    assert hw.render(Torchrun.single_node(2, "t.py")).startswith("torchrun --standalone")
    assert hw.lint("#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec img.sif python t.py\n")[0].code == "HPC201"
    assert "single-gpu" in hw.examples("generic")


# -- compiled checks ------------------------------------------------------------------------------
# Spec.problems() runs code generated per class (hpcwidgets.spec._compiled). The reference below is
# the plain reading of the metadata; both must agree for any value, of any type, in any field.

WRONG_VALUES = [None, 0, -1, 10**6, True, False, "", "x", "gpu", "a\x00b", (), ("a",), ("a\x00",), ["x"], 1.5,
                "$(pwd)", ("--ok", 3)]


def _reference_problems(model):
    from hpcwidgets.errors import Problem
    from hpcwidgets.spec._meta import _check_value
    out = []
    for f in model.field_specs():
        out += _check_value(f, getattr(model, f.name))
    for f in model.field_specs():
        value = getattr(model, f.name)
        items = (value if isinstance(value, (tuple, list)) else ()) if f.is_tuple else (value,)
        for item in items:
            if isinstance(item, Spec):
                out += [Problem(f"{f.name}.{p.field}" if p.field else f.name, p.message) for p in item.problems()]
    if not out:
        return model._check()
    try:
        return out + model._check()
    except (TypeError, AttributeError, ValueError):
        from hpcwidgets.spec._meta import mistyped
        if not mistyped(model):
            raise
        return out  # a field of another type than it declares: its own problem says so


def _outcome(fn):
    try:
        return fn()
    except Exception as exc:  # a crash must be the same crash
        return type(exc).__name__


@pytest.mark.parametrize("kind", sorted(all_kinds()))
def test_compiled_checks_agree_with_the_metadata(kind):
    from hypothesis import HealthCheck, given, settings, strategies as st

    from hpcwidgets.spec import Bind, EnvVar
    from strategies import field_strategy

    cls = all_kinds()[kind]
    specs = cls.field_specs()
    others = [Bind("/a", "x", "rw"), Bind(""), EnvVar("1A", "v"), EnvVar("A", "v")]

    def value(f):
        ok = st.just(f.default) if f.default is not dataclasses.MISSING else st.just("")
        if f.info.role != "internal":
            ok = field_strategy(f)
        return st.one_of(ok, st.sampled_from(WRONG_VALUES), st.sampled_from(others),
                         st.lists(st.sampled_from(others + ["t", 2]), max_size=3).map(tuple))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.fixed_dictionaries({f.name: value(f) for f in specs}))
    def run(values):
        try:
            model = cls(**values)
        except Exception:
            return  # some models normalise their values on construction and refuse what they cannot read
        assert _outcome(lambda: Spec.problems(model)) == _outcome(lambda: _reference_problems(model))
    run()


WRONG_TYPES = (4, 2.5, ["x"], None, object(), True)


@pytest.mark.parametrize("kind", sorted(all_kinds()))
def test_a_field_of_the_wrong_type_is_a_problem_not_a_crash(kind):
    """Torchrun(nnodes=4) (a number where text is declared), None where None is not allowed …: problems() names the
    field instead of raising from a cross-field check that reads it as its declared type."""
    cls = all_kinds()[kind]
    for f in cls.field_specs():
        for wrong in WRONG_TYPES:
            try:
                model = cls(**{f.name: wrong})
            except Exception:  # noqa: BLE001  a constructor that refuses it is fine too
                continue
            fields = {p.field.split(".")[0] for p in model.problems()}   # never raises
            plainly_wrong = (wrong is None and not f.optional) or \
                (f.base_type is str and not f.is_tuple and not isinstance(wrong, (str, list)) and wrong is not None)
            if plainly_wrong:
                assert f.name in fields, (kind, f.name, wrong)
