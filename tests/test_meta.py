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
