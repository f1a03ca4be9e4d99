"""The form-driven builders: a form generated from field metadata, a live preview and findings.

A builder is an ``ipywidgets.VBox`` (display it, or make it a cell's last expression). It never
builds command text and never validates by itself: the preview is :func:`hpcwidgets.render.render`,
the findings are the model's ``problems()``, the profile's ``check_job`` and :func:`hpcwidgets.lint.lint`.
Model ↔ control values live in :mod:`hpcwidgets.widgets.state`, apart from this view code.

Bad input never raises here: the control is marked (CSS class ``hpcw-invalid``), an ``error``
finding says what to type instead, and the preview keeps the last valid text with a "stale" note.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

import ipywidgets as w

from ..errors import (FileError, HpcWidgetsError, OverwriteError, ParseError, Problem, ProfileError, RunError,
                      ValidationError)
from ..spec.apptainer import ApptainerBuild, ApptainerPull, ApptainerRun, DefFile
from ..spec.charliecloud import ChConvert, ChFromhost, ChImageBuild, ChImageImport, ChImagePull, ChRun
from ..spec.common import Bind, bind_destination
from ..spec.convert import carried_variables
from ..spec.jupyter import JupyterJob
from ..spec.slurm import MAX_COUNT, SlurmJob, Srun
from ..spec.torchrun import Torchrun
from ..spec.workflow import GPU_FLAGS, Workflow, gpu_vendor_of, make_container, refused_edit
from . import loading
from .clipboard import CopyButton
from .highlight import CSS, SEVERITY_ICONS, escape, highlight
from .jobs import JobPanel
from .state import (WORDS_RULE, Field, Form, FormFinding, Section, choice_options, follow, limits_note,
                    missing_partition, problem_findings, typed_code_findings)

log = logging.getLogger(__name__)

DESCRIPTION_STYLE = {"description_width": "12em"}
LIMIT_FIELDS = ("gpus_per_node", "time", "nodes", "cpus_per_task", "mem")
#: the profile selector's label for checking without a profile
NO_PROFILE = "no profile"
_LINT_CACHE_SIZE = 128


def _bug(what: str, exc: BaseException) -> str:
    """A message for an unexpected exception (a bug, not bad input); the traceback goes to the log."""
    log.debug("%s failed", what, exc_info=exc)
    return (f"{what} stopped on this input ({type(exc).__name__}: {exc}). This is a bug in hpcwidgets: please "
            "report it with the script or the values you typed; the other findings may be incomplete")


def _guarded(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a widget event handler that never raises into the notebook: an unexpected exception
    becomes an error status saying ``what`` failed (and a debug log record with the traceback)."""
    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def handler(self: "Builder", *args: Any, **kw: Any) -> Any:
            try:
                return method(self, *args, **kw)
            except Exception as exc:
                self._set_status(_bug(what, exc), error=True)
                return None
        return handler
    return wrap


#: how long, in seconds, forms trust what Slurm said about itself: a notebook that builds ten forms asks sinfo
#: once, not twenty times (each ask can take seconds on a busy controller)
CLUSTER_ANSWER_AGE = 60.0
#: (PATH, SLURM_CONF) -> (when asked, whether Slurm answers, its partitions, the profiles made for it)
_answers: dict[tuple[str, str], tuple[float, bool, frozenset[str] | None, tuple[str, ...]]] = {}


def forget_cluster_answers() -> None:
    """Ask Slurm afresh for the next form (after starting a cluster, or changing SLURM_CONF in a test)."""
    _answers.clear()


def _cluster_answer() -> tuple[bool, frozenset[str] | None, tuple[str, ...]]:
    """Whether a Slurm answers here, its partitions and the profiles made for it. An answer is kept for
    :data:`CLUSTER_ANSWER_AGE` seconds for the same PATH and SLURM_CONF; "no Slurm here" is not kept."""
    key = (os.environ.get("PATH", ""), os.environ.get("SLURM_CONF", ""))
    now = time.monotonic()
    kept = _answers.get(key)
    if kept is not None and now - kept[0] < CLUSTER_ANSWER_AGE:
        return kept[1:]
    from ..run.slurm import available
    if not available():
        return False, None, ()  # not kept: the next form asks again, and finds a cluster started since
    here, fitting = _reachable_cluster()
    _answers[key] = (now, True, here, fitting)
    return True, here, fitting


def _reachable_cluster() -> tuple[frozenset[str] | None, tuple[str, ...]]:
    """The partitions of the Slurm that Submit reaches, and the profiles made for it (every Slurm partition they
    name is there). ``(None, ())`` when sinfo cannot list them: the check is advice before submitting, and
    sbatch still decides (and says why it refuses)."""
    from ..profiles import list_profiles, load_profile
    from ..run.slurm import partitions
    try:
        here = partitions()
    except RunError as exc:
        log.debug("not checking the form's partitions against the cluster: %s", exc)
        return None, ()
    fitting = []
    for name in sorted(list_profiles()):
        try:
            names = load_profile(name).slurm_partition_names()
        except ProfileError as exc:  # a broken profile file is reported where it is chosen, not here
            log.debug("profile %s not compared with the cluster: %s", name, exc)
            continue
        if names and set(names) <= here:
            fitting.append(name)
    return here, tuple(fitting)


def _maybe_queued(exc: RunError) -> bool:
    """Whether sbatch failed after it may have handed the job to the controller: it did not answer in time (it
    was killed waiting for the job id), or a signal ended it (exit 128+N, or -N from subprocess). sbatch exits
    once the controller has taken the job, so neither says the job was not queued."""
    code = exc.returncode
    if code is None:
        return exc.timed_out and bool(exc.argv) and os.path.basename(exc.argv[0]) == "sbatch"
    return code < 0 or code > 128


def _profile(profile: Any) -> Any:
    if profile is None:
        return None
    if isinstance(profile, str):
        from ..profiles import load_profile
        return load_profile(profile)
    return profile


class Builder(w.VBox):
    """Base of every builder. Subclasses say which models they hold and how the form is divided.

    ``profile`` is a cluster profile name (or object) used for partition choices, limits and linting. None (the
    default) is no profile: the form checks the job as ``hpcwidgets lint`` does without ``--profile``, so a job
    for any site gets no advice meant for another (the findings say which profile they were checked against);
    ``submit`` is None (show Submit when Slurm answers), a bool, or a callable ``text -> Job`` used instead
    of :func:`hpcwidgets.run.slurm.submit`.

    Submit is offered only where the preview is a whole batch script (:attr:`submits`: the Slurm, Jupyter and
    workflow builders): a command or a definition file is not one, and sbatch would refuse it. On those
    builders ``submit=None`` or ``False`` shows no Submit, and ``submit=True`` or a callable raises ValueError
    saying what to submit instead. With Slurm's own sbatch (``submit`` None or True), the findings also say
    when the job names a partition the reachable Slurm does not have (a form made for another cluster's
    profile) and which profile fits this cluster; a callable submitter is not checked (it may submit anywhere).

    Driven from Python, :attr:`controls` names each field as the model does: ``b.controls["job.nodes"]`` in a
    workflow, ``b.controls["nodes"]`` in a Slurm form. That is the name a finding, a ValidationError and
    ``hpcwidgets workflow --set job.nodes=2`` use, so a field named in a message can be set by that name. The
    form's own name for the control (``slurm.nodes``: its tab's prefix) is accepted too, as is a finding's
    ``field``; switches that are no model field keep their names (``srun.enabled``, ``container.runtime``).
    """

    title = "Builder"
    #: model classes this builder holds (the first is the default's class)
    models: tuple[type, ...] = ()
    show_profile = False
    language = "bash"
    #: whether the preview is a whole batch script that sbatch takes (only then is Submit offered)
    submits = False

    def __init__(self, model: Any = None, *, profile: Any = None, submit: Any = None,
                 poll_seconds: float = 2.0, **kw: Any):
        submitter = self._resolve_submitter(submit)  # first: a refused request leaves no half-made widget
        super().__init__(**kw)
        self.add_class("hpcw-builder")
        self.profile = _profile(profile)
        self._initial = self._fill_in(model) if model is not None else self.default_model(self.profile)
        self._check_model(self._initial)
        self._base = self._initial
        self._model = self._initial
        self._text = ""
        self._stale = False
        self._draft = False
        self._last_valid: str | None = None
        self._findings: list[Any] = []
        self._form_errors: dict[str, str] = {}
        self._shown_findings: tuple = ()
        self._load_problem: FormFinding | None = None
        self._user_set: set[str] = set()
        self._hold = 0
        self._lint_cache: OrderedDict[str, list[Any]] = OrderedDict()
        self._read_back_cache: OrderedDict[str, Any] = OrderedDict()
        self._replace_path: str | None = None
        self._cannot_run = ""  # why the profile's cluster cannot run the job (render_only_message), or ""
        self.form = Form(())
        self._field_controls: dict[str, w.Widget] = {}
        self._rows: dict[str, w.Widget] = {}
        self._help: dict[str, w.HTML] = {}
        #: each field's error message, shown under its control (the Findings column says it too)
        self._field_errors: dict[str, w.HTML] = {}
        #: the Advanced part that holds a field, opened when that field is marked
        self._disclosures: dict[str, "Disclosure"] = {}
        #: the profile's own message for each field it marks (lint may say the same at a line instead)
        self._mark_messages: dict[str, list[str]] = {}
        self._off_notes: dict[str, w.HTML] = {}
        self._invalid: set[str] = set()
        self._marks: set[str] = set()
        self._parked: dict[str, Any] = {}
        self._structural: dict[str, w.Widget] = {}
        self._submitter = submitter
        # the partitions of the Slurm that Submit reaches and the profiles made for it (None: not known)
        self._cluster: frozenset[str] | None = None
        self._cluster_profiles: tuple[str, ...] = ()
        if self._submitter is not None and not callable(submit):
            _, self._cluster, self._cluster_profiles = _cluster_answer()

        # --- views -------------------------------------------------------------------------------
        self.style_view = w.HTML(f"<style>{CSS}</style>", layout=w.Layout(display="none"))
        self.heading = w.HTML(f"<h3 class='hpcw-title'>{escape(self.title)}</h3>")
        self.preview = w.HTML("", layout=w.Layout(width="100%"))
        self.preview.add_class("hpcw-preview")
        self.note = w.HTML("")
        self.findings_view = w.VBox([], layout=w.Layout(width="100%"))
        self.findings_view.add_class("hpcw-findings")
        self.form_view = w.VBox([], layout=w.Layout(flex="1 1 28em", min_width="24em"))
        self.copy_button = CopyButton()
        self.path_text = w.Text("", description="File", placeholder="job.sh", tooltip="Where Save writes the preview",
                                style={"description_width": "3em"}, layout=w.Layout(width="22em"))
        self.save_button = w.Button(description="Save", icon="save", tooltip="Write the preview to the file (atomic)")
        self.replace_button = w.Button(description="Replace?", icon="exclamation-triangle", button_style="warning",
                                       tooltip="The file exists: click to replace it", layout=w.Layout(display="none"))
        self.status = w.HTML("")
        self.load_text = w.Textarea("", description="Script", placeholder="Paste a script or a command, then Load",
                                    tooltip="Text to read into the form", style={"description_width": "4em"},
                                    layout=w.Layout(width="100%", height="8em"))
        self.load_button = w.Button(description="Load", icon="upload", tooltip="Read the pasted text into the form")
        self.open_button = w.Button(description="Load file", icon="folder-open",
                                    tooltip="Read the file named in File into the form")
        self.reset_button = w.Button(description="Reset", icon="undo", tooltip="Back to the form's first values")
        self.submit_button = w.Button(description="Submit", icon="play", button_style="primary",
                                      tooltip="Submit the preview with sbatch")
        self.submit_note = w.HTML("")
        #: why Submit refuses the job (a runtime the profile's cluster does not run), next to the button
        self.refused_note = w.HTML("")
        self.job_panel = JobPanel(poll_seconds=poll_seconds)
        self.profile_selector = w.Dropdown(options=self._profile_options(), value=self._profile_name(),
                                           description="Cluster profile", style=DESCRIPTION_STYLE,
                                           tooltip="The site whose partitions and limits the form uses and checks "
                                                   "the job against (no profile: as hpcwidgets lint checks it)")
        self.checked_against = w.HTML("")

        self.save_button.on_click(lambda _b: self._on_save())
        self.path_text.observe(self._on_path, names="value")
        self.replace_button.on_click(lambda _b: self._on_replace())
        self.load_button.on_click(lambda _b: self._on_load())
        self.open_button.on_click(lambda _b: self._on_open())
        self.reset_button.on_click(lambda _b: self._on_reset())
        self.submit_button.on_click(lambda _b: self._on_submit())
        self.profile_selector.observe(self._on_profile, names="value")

        self._structural = self._make_structural()
        for key, control in self._structural.items():
            control.observe(functools.partial(self._on_structure, key), names="value")
        self._hold += 1
        try:
            self._sync_structure(self._initial)
        finally:
            self._hold -= 1
        self._build_form()

        header = [self.heading]
        if self.show_profile:
            header.append(self.profile_selector)
        header += list(self._structural.values())
        side = w.VBox([w.HTML("<b>Preview</b>"), self.note, self.preview, w.HTML("<b>Findings</b>"),
                       self.checked_against, self.findings_view], layout=w.Layout(flex="1 1 32em", min_width="24em"))
        main = w.HBox([self.form_view, side], layout=w.Layout(flex_flow="row wrap", width="100%"))
        actions = w.HBox([self.copy_button, self.path_text, self.save_button, self.replace_button],
                         layout=w.Layout(flex_flow="row wrap", align_items="center"))
        buttons = w.HBox([self.load_button, self.open_button, self.reset_button])
        self.load_section = Disclosure("Load or reset", [self.load_text, buttons], what="Load and Reset")
        load = self.load_section
        children = [self.style_view, *header, main, actions, self.status, load]
        if self._submitter is not None:
            children += [self.submit_button, self.submit_note, self.refused_note, self.job_panel]
        self.children = children
        self._refresh()

    # =============================================================================================
    # what subclasses define
    @classmethod
    def default_model(cls, profile: Any) -> Any:
        return cls.models[0]()

    def sections(self, model: Any) -> list[Section]:
        return [Section(self.title, type(model))]

    @classmethod
    def parse(cls, text: str) -> Any:
        """Text → a model this builder holds (ParseError when it cannot)."""
        raise ParseError(f"{cls.__name__} cannot read text; build the model in the form")

    def _make_structural(self) -> dict[str, w.Widget]:
        return {}

    def _sync_structure(self, model: Any) -> None:
        """Set the structural controls (action selector, layer switches) to match ``model``."""

    def _structure_changed(self, key: str, value: Any) -> None:
        """A structural control changed: adjust ``self._base`` (and rebuild the form if needed)."""

    def _effective_base(self) -> Any:
        return self._base

    def _fill_in(self, model: Any) -> Any:
        """A model given or loaded, with what only the form's profile knows filled in where the model is silent."""
        return model

    def _follow(self, before: Any, after: Any) -> dict[str, Any]:
        return {}

    # =============================================================================================
    # public API
    @classmethod
    def from_spec(cls, model: Any, **kw: Any) -> "Builder":
        return cls(model, **kw)

    @classmethod
    def from_script(cls, text: str, **kw: Any) -> "Builder":
        """A builder holding the model read from ``text``; raises ParseError when it cannot be read."""
        return cls(cls._read(text), **kw)

    @property
    def spec(self) -> Any:
        """The model the form describes now (fields with bad text keep their last good value)."""
        return self._model

    @property
    def text(self) -> str:
        """What the preview shows: the rendered model, or the last valid text while the form has errors."""
        return self._text

    @property
    def stale(self) -> bool:
        """True while the form has errors and the preview shows older text (or a draft)."""
        return self._stale

    @property
    def draft(self) -> bool:
        """True while nothing valid has been made yet and the preview shows the form's text with its errors."""
        return self._draft

    @property
    def findings(self) -> list[Any]:
        """Form errors (code FORM), profile limits (PROFILE) and lint findings, each with
        ``.code .severity .line .message .fix``."""
        return list(self._findings)

    @property
    def controls(self) -> "Controls":
        """Every control by name: a field by the model's name for it (``time``; ``job.time`` in a layered builder),
        the name the findings, validation errors and ``--set`` use; a switch by its own name (``srun.enabled``).
        A field's place in the form (``slurm.time``, the name older code used) finds the same control."""
        named = dict(self._structural)
        aliases = {}
        for key, control in self._field_controls.items():
            path = self.form.fields[key].path
            named[path] = control
            if key != path:
                aliases[key] = path
        return Controls(named, aliases)

    @property
    def invalid_fields(self) -> set[str]:
        """The controls marked as holding a bad value, named as :attr:`controls` names them."""
        return {self.form.fields[key].path if key in self.form.fields else key for key in self._invalid}

    def load(self, text: str) -> bool:
        """Read ``text`` (a script, a command or a model's JSON) into the form; False (with an error
        finding) when it cannot be read, leaving the form as it was. Never raises for any text."""
        return self._load(text, "the text")

    def _load(self, text: str, name: str) -> bool:
        """:meth:`load` of ``text`` read from ``name`` (a file's name, or "the text" when pasted)."""
        from ..files import strip_bom
        if not isinstance(text, str):
            return self._load_failed(f"expected text, got {type(text).__name__}; decode a file's bytes first "
                                     "(or use Load file)")
        loaded = strip_bom(text, "the text")
        refused = self._not_loadable(loaded.text, name)
        if refused:
            return self._load_failed(refused)
        body, shebang = loaded.text, ""
        if self.submits and not body.lstrip().startswith(("#!", "{")):
            # commands (or #SBATCH lines) without the #! line sbatch needs ("This does not look like a batch script")
            body, shebang = "#!/bin/bash\n" + body, (" It had no #! line, which sbatch needs first: the form starts "
                                                      "the script with #!/bin/bash.")
        try:
            # line ends as Load file reads them: a script saved on an old Mac ends its lines with \r alone
            model = self._fill_in(self._read(body.replace("\r\n", "\n").replace("\r", "\n")))
        except HpcWidgetsError as exc:
            return self._load_failed(str(exc), getattr(exc, "line", 0) or 0)
        except RecursionError:
            return self._load_failed("the text is nested too deeply to be a model or a script; check its brackets")
        except Exception as exc:
            return self._load_failed(_bug("Reading the text", exc))
        before = self._base
        self._load_problem = None
        try:
            self._set_model(model)
        except Exception as exc:
            message = _bug("Showing the loaded model", exc)
            try:
                self._set_model(before)
            except Exception as again:  # the form could not go back either; say so, never raise
                log.debug("restoring the form failed", exc_info=again)
            return self._load_failed(message)
        note = (" It started with a UTF-8 byte-order mark (BOM), which sbatch refuses; the form dropped it, "
                "so a saved script is fine.") if loaded.bom else ""
        said = self._load_note(body)
        self._set_status("Loaded." + note + shebang + (f" Note: {escape(said)}." if said else ""))
        return True

    def _load_note(self, text: str) -> str:
        """What the user should know about a script this form loaded: what the model writes back otherwise than the
        script had it (:func:`~hpcwidgets.parse.workflow.readback_notes`, which ``--from`` prints too)."""
        from ..parse.workflow import readback_notes
        try:
            return ". Also, ".join(readback_notes(text, self._base))
        except Exception as exc:  # the text loaded; a note that cannot be made is no reason to fail
            log.debug("no note on the loaded script", exc_info=exc)
            return ""

    def _not_loadable(self, text: str, name: str = "the text") -> str:
        """Why ``text`` is not loaded at all, or "": an empty text would replace the whole form with an empty
        model, and a job form reads a Dockerfile or a definition file as shell commands (the words the command
        line's --from uses for them, :func:`hpcwidgets.files.build_file_kind`)."""
        if not text.strip() and name == "the text":
            return f"the Script box is empty; paste {self._loads} there, or name a file in File and click Load file"
        if not text.strip():
            return f"{name} is empty; name a file that holds {self._loads}"
        if not self.submits:
            return ""
        from ..files import build_file_kind, build_it, only_a_shebang
        held = only_a_shebang(text)
        if held:
            fix = "paste" if name == "the text" else "name a file that holds"
            return f"{name} holds only {held} (no #SBATCH line, no command); {fix} {self._loads}"
        kind = build_file_kind(text)
        if not kind:
            return ""
        file = name if name != "the text" else ("Dockerfile" if kind == "a Dockerfile" else "FILE.def")
        saved = "" if name != "the text" else f"save it as {file} and "
        return f"{name} is {kind}, not a job script: {saved}{build_it(kind, file)}; this form loads {self._loads}"

    @property
    def _loads(self) -> str:
        """What Load takes, for the messages that refuse something else."""
        if self.submits:
            return "a job script (it starts with #! or #SBATCH) or a model saved as JSON"
        return f"the {self.title[0].lower() + self.title[1:]} as text, or a model saved as JSON"

    def _load_failed(self, message: str, line: int = 0) -> bool:
        self._load_problem = FormFinding("LOAD", "error", line, f"cannot load the text: {message}")
        self._set_status(f"Could not load: {message}", error=True)
        self._refresh()
        return False

    def reset(self) -> None:
        """Back to the model the builder started with."""
        self._load_problem = None
        self._set_model(self._initial)
        self._set_status("Reset.")

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the preview atomically; OverwriteError if the file exists and ``overwrite`` is false,
        ValidationError while the preview is out of date (it shows the last valid text, not the form).
        A draft (the form's own text, still with errors) can be saved. A file in a folder that does not exist is
        refused (FileError naming the folder): a mistyped folder name makes no new folders."""
        if self._stale and not self._draft:
            raise ValidationError(self._error_problems(), subject="the form")
        from ..files import write_atomic
        return write_atomic(path, self._text, force=overwrite, make_folders=False, allow_with="click Replace?")

    def apply_fix(self, finding: Any) -> bool:
        """Apply a lint finding's fix to the preview text and reload the form from the result.

        The finding must be one of the current :attr:`findings` (it was found in the text the preview
        shows now); a finding kept from an earlier version is refused (False, with a status) because
        its line numbers would edit the wrong lines.
        """
        if getattr(finding, "fix", None) is None:
            raise ValueError(f"finding {getattr(finding, 'code', '?')} has no mechanical fix; change the form instead")
        if self._edits_not_in_preview():
            self._set_status(f"Not applied: the form has errors, so the preview is older than the form and this "
                             f"{getattr(finding, 'code', '')} fix would bring that older version back (and drop what "
                             "you typed since). Fix the marked fields first; the finding stays if it still applies.",
                             error=True)
            return False
        if not any(f.fix is not None and f == finding for f in self._findings):
            self._set_status(f"Not applied: this {getattr(finding, 'code', '')} fix was found in an earlier version "
                             "of the script, and the preview has changed since. Use Apply fix on the current finding "
                             "(or take it from findings again).", error=True)
            return False
        from ..fixes import apply_fix
        try:
            fixed = apply_fix(self._text, finding.fix)
        except Exception as exc:
            self._set_status(f"Not applied: {exc}", error=True)
            return False
        ok = self.load(fixed)
        if ok:
            self._set_status(f"Applied: {escape(finding.fix.description)}")
        return ok

    def _edits_not_in_preview(self) -> bool:
        """True while the preview is not the form (a stale preview, or a field whose text is not a value): a fix
        applied to it and loaded back would throw away what the person typed since."""
        return (self._stale and not self._draft) or bool(self._form_errors)

    def submit(self) -> Any:
        """Submit the preview (only when Submit is available); returns the job and starts the panel."""
        if not self.submits:
            raise RunError(self._not_a_job_script())
        if self._submitter is None:
            raise RunError("Slurm is not available here (no sbatch, or the controller does not answer)")
        if self._stale:
            raise ValidationError(self._error_problems(), subject="the form")
        if self._cannot_run:  # before sbatch: the job would only fail on the node
            raise RunError(self._cannot_run)
        job = self._submitter(self._text)
        if job.id:  # a job sbatch accepted without a readable id cannot be followed (see _on_submit)
            self.job_panel.follow(job)
        return job

    def set_profile(self, profile: Any) -> None:
        self.profile = _profile(profile)
        self._lint_cache.clear()  # its findings were the old profile's (a file edited and chosen again keeps its name)
        self._read_back_cache.clear()  # Load fills in what the profile knows (a Jupyter job's way in)
        name = self._profile_name()
        if name not in self._profile_choices():
            self.profile_selector.options = tuple(self.profile_selector.options) + ((name, name),)
        self._hold += 1
        try:
            self.profile_selector.value = name
        finally:
            self._hold -= 1
        self._update_partitions()
        self._refresh()

    def close(self) -> None:
        # ipywidgets' __del__ calls this on a builder whose __init__ raised (a refused submit=, a model of
        # another class) before its parts existed: close what there is
        panel = getattr(self, "job_panel", None)
        if panel is not None:
            panel.close()
        for c in [*getattr(self, "_field_controls", {}).values(), *getattr(self, "_structural", {}).values()]:
            c.close()
        super().close()

    # =============================================================================================
    # the form
    @classmethod
    def _read(cls, text: str) -> Any:
        """The model ``text`` holds: a model saved as JSON when it is valid JSON, else this builder's own text.

        A text that starts with ``{`` but is not JSON is read as the builder's own text too: a definition file's
        lines before its header, or a command's first word, may start with a brace, and the form's own preview
        must load back. When neither reading takes it, the message says what each found wrong."""
        stripped = text.strip()
        if not stripped.startswith("{"):
            model = cls.parse(text)
        else:
            from ..spec._meta import load_json, spec_class
            try:
                data = load_json(stripped)
            except ParseError as not_json:
                model = cls._parse_braced(text, not_json)
            else:
                if not isinstance(data, dict) or "kind" not in data:
                    raise ParseError("JSON must be an object with the model's kind, e.g. {\"kind\": \"slurm.job\", …}")
                model = spec_class(str(data["kind"])).from_dict(data)
        cls._check_model(model)
        return model

    @classmethod
    def _parse_braced(cls, text: str, not_json: ParseError) -> Any:
        """``text``, which starts with ``{`` and is not valid JSON, read as this builder's own text; a ParseError
        naming both readings' problems when that fails too. A job script starts with #! or #SBATCH (the forms'
        previews always do), so the job forms do not read such a text as shell commands."""
        if cls.submits:
            own = "it does not start with #! or #SBATCH"
        else:
            try:
                return cls.parse(text)
            except ParseError as exc:
                own = _where(exc) + exc.message
        article = "an" if cls.title[:1] in "AEIOU" else "a"
        what = "a job script" if cls.submits else f"{article} {cls.title}"
        raise ParseError(f"this text is neither a model saved as JSON ({_where(not_json)}{not_json.message}) "
                         f"nor {what} ({own})")

    @classmethod
    def _check_model(cls, model: Any) -> None:
        if cls.models and not isinstance(model, cls.models):
            names = ", ".join(c.__name__ for c in cls.models)
            raise ValidationError([Problem("", f"{cls.__name__} holds {names}, not {type(model).__name__}; "
                                               "use the builder for that model")])

    def _set_model(self, model: Any) -> None:
        self._base = model
        self._last_valid = None
        self._user_set.clear()
        self._parked.clear()  # layers and commands parked from the previous document must not come back
        self._hold += 1
        try:
            self._sync_structure(model)
        finally:
            self._hold -= 1
        old = [(s.title, s.cls, s.attr, s.prefix, s.exclude) for s in self.form.sections]
        new = [(s.title, s.cls, s.attr, s.prefix, s.exclude) for s in self.sections(self._effective_base())]
        if old != new:
            self._build_form()
        else:
            self._set_values(self.form.values(self._effective_base()))
            self._update_partitions()
        self._model = self._effective_base()  # a new document: nothing flows from the previous one
        self._refresh()

    def _set_values(self, values: dict[str, Any]) -> None:
        self._hold += 1
        try:
            for key, value in values.items():
                control = self._field_controls.get(key)
                if control is None:
                    continue
                if isinstance(control, w.Dropdown) and value not in control.options:
                    control.options = tuple(control.options) + (value,)
                if control.value != value:
                    control.value = value
        finally:
            self._hold -= 1

    def _build_form(self) -> None:
        for c in self._field_controls.values():
            c.close()
        base = self._effective_base()
        self.form = Form(self.sections(base))
        values = self.form.values(base)
        self._field_controls, self._rows, self._help = {}, {}, {}
        self._field_errors, self._disclosures = {}, {}
        self._off_notes = {}
        self._invalid = set()
        boxes = []
        for section in self.form.sections:
            main, advanced = [], []
            if section.attr:  # a layer that can be switched off says so in its tab (see _mark_off_layers)
                self._off_notes[section.title] = w.HTML("")
                main.append(self._off_notes[section.title])
            for fld in section.fields:
                row = self._make_row(fld, values[fld.key])
                (advanced if fld.advanced else main).append(row)
            parts: list[w.Widget] = list(main)
            if advanced:
                more = Disclosure("Advanced", advanced, what="advanced fields", count=len(advanced))
                self._disclosures.update({fld.key: more for fld in section.fields if fld.advanced})
                parts.append(more)
            boxes.append((section.title, w.VBox(parts)))
        self.form_view.children = [self._layout_sections(boxes)]
        self._update_partitions()

    def _layout_sections(self, boxes: list[tuple[str, w.Widget]]) -> w.Widget:
        if len(boxes) == 1:
            return boxes[0][1]
        return w.Tab([b for _, b in boxes], titles=[t for t, _ in boxes])

    def _make_row(self, fld: Field, value: Any) -> w.Widget:
        common = _control_args(fld)
        placeholder = fld.spec.info.placeholder
        if fld.kind == "bool":
            control: w.Widget = w.Checkbox(value=value, indent=False, **common)
        elif fld.kind == "choice":
            control = w.Dropdown(options=choice_options(fld.spec, value), value=value, **common)
        elif fld.kind == "partition":
            control = self._partition_control(fld, value)
        elif fld.kind == "int":
            lo, hi = fld.spec.info.minimum, fld.spec.info.maximum
            if hi is not None and hi >= MAX_COUNT:
                hi = None  # the most Slurm can count: no bound worth the room in the box
            # short enough to show whole in the box: the help under it says the rest
            hint = placeholder or ("empty: default" if fld.spec.optional else "")
            if lo is not None or hi is not None:
                bounds = f"{lo}–{hi}" if lo is not None and hi is not None else f"≥ {lo}" if lo is not None \
                    else f"≤ {hi}"
                hint = bounds + (" (empty: default)" if fld.spec.optional else "")
            control = w.Text(value=value, placeholder=hint, layout=w.Layout(width="26em"), **common)
            control.add_class("hpcw-int")
        elif fld.kind in ("text", "words"):
            control = w.Text(value=value, placeholder=placeholder, layout=w.Layout(width="100%"), **common)
        else:  # lines, binds, env: one item per line
            hint = {"binds": "src:dst:ro (one per line; a path with ':' as type=bind,src=…,dst=…,ro)",
                    "env": "NAME=value (one per line)",
                    "sweeps": "NAME: value value (one per line)"}.get(fld.kind, "one per line")
            control = w.Textarea(value=value, placeholder=placeholder or hint, rows=3,
                                 layout=w.Layout(width="100%"), **common)
        self._watch(fld, control)
        help_view = w.HTML(self._help_html(fld, ""))
        error_view = w.HTML("", layout=w.Layout(display="none"))
        row = w.VBox([control, error_view, help_view], layout=w.Layout(width="100%"))
        row.add_class("hpcw-field")
        self._field_controls[fld.key] = control
        self._rows[fld.key] = row
        self._help[fld.key] = help_view
        self._field_errors[fld.key] = error_view
        return row

    def _watch(self, fld: Field, control: w.Widget) -> None:
        control.observe(functools.partial(self._on_field, fld.key), names="value")

    @staticmethod
    def _help_html(fld: Field, extra: str) -> str:
        rule = f" {WORDS_RULE}" if fld.kind == "words" else ""  # how the field reads what is typed
        body = escape(fld.help + rule) + (f" <b>{escape(extra)}</b>" if extra else "")
        return f"<div class='hpcw-help'>{body}</div>"

    # -- profile ------------------------------------------------------------------------------------
    def _profile_name(self) -> str:
        return getattr(self.profile, "name", "") or ""

    def _profile_options(self) -> tuple[tuple[str, str], ...]:
        """The profile selector's (label, name) pairs: no profile ("") first, then every profile found."""
        from ..profiles import list_profiles
        names = sorted(list_profiles())
        current = self._profile_name()
        if current and current not in names:
            names.append(current)
        return ((NO_PROFILE, ""),) + tuple((name, name) for name in names)

    def _profile_choices(self) -> list[str]:
        """The profile names the selector offers ("" for no profile)."""
        return [name for _label, name in self.profile_selector.options]

    def _checked_against(self) -> str:
        """The line above the findings that says what they were checked against."""
        name = self._profile_name()
        if not name:
            return ("<div class='hpcw-help' role='status'>Checked without a cluster profile, as <code>hpcwidgets "
                    "lint</code> checks a script; choose a profile in Cluster profile to check partitions, limits "
                    "and the GPU vendor too.</div>")
        return (f"<div class='hpcw-help' role='status'>Checked against cluster profile <b>{escape(name)}</b>, as "
                f"<code>hpcwidgets lint --profile {escape(name)}</code> checks a script.</div>")

    def _lists_partitions(self) -> bool:
        """Whether the profile lists every partition a job may name: then Partition is a list to choose from. Without
        a profile, or with one that lists only some (``partitions_complete = false``) or none, any name can be typed
        (the profile's names are offered as suggestions), since the form cannot know the site's others."""
        return (self.profile is not None and self.profile.partitions_complete is not False
                and bool(self.profile.partition_names()))

    def _partition_suggestions(self) -> tuple[str, ...]:
        """The profile's partition names that Partition offers."""
        return tuple(self.profile.slurm_partition_names()) if self.profile is not None else ()

    def _partition_options(self, value: str) -> tuple[str, ...]:
        """The choices of a Partition list: none (Slurm's default), the profile's partitions, and ``value`` when the
        profile lacks it (a loaded script's partition stays as it is and the profile check reports it)."""
        names = ["", *self._partition_suggestions()]
        if value and value not in names:
            names.append(value)
        return tuple(names)

    def _partition_control(self, fld: Field, value: str) -> w.Widget:
        """Partition: a list of the profile's partitions when it lists them all (:meth:`_lists_partitions`), else a
        text box that takes any name and suggests the profile's (a ``Combobox`` whose value need not be one of
        its options)."""
        if self._lists_partitions():
            return w.Dropdown(options=self._partition_options(value), value=value, **_control_args(fld))
        control = w.Combobox(value=value, options=_datalist_safe(self._partition_suggestions()), ensure_option=False,
                             placeholder="a partition name; empty: Slurm's default partition",
                             layout=w.Layout(width="24em"), **_control_args(fld))
        control.add_class("hpcw-partition")
        return control

    def _update_partitions(self) -> None:
        """Make each Partition control fit the profile now in use: a list or a text box (:meth:`_partition_control`),
        with that profile's partitions. The value stays; a control of the other kind is replaced in its row."""
        for key, fld in self.form.fields.items():
            if fld.kind != "partition":
                continue
            control = self._field_controls[key]
            value = control.value
            listed = self._lists_partitions()
            if listed != isinstance(control, w.Dropdown):
                fresh = self._partition_control(fld, value)
                self._watch(fld, fresh)
                row = self._rows[key]
                row.children = (fresh, *row.children[1:])
                self._field_controls[key] = fresh
                control.close()
                continue
            options = self._partition_options(value) if listed else _datalist_safe(self._partition_suggestions())
            if tuple(control.options) != options:
                self._hold += 1
                try:
                    control.options = options
                    control.value = value
                finally:
                    self._hold -= 1

    def _update_limits(self, model: Any) -> None:
        for section in self.form.sections:
            if section.cls is not SlurmJob:
                continue
            job = section.layer(model)
            for name in LIMIT_FIELDS:
                key = section.key(name)
                fld = self.form.fields.get(key)
                if fld is None:
                    continue
                note = limits_note(self.profile, job, name)
                html = self._help_html(fld, note)
                if self._help[key].value != html:
                    self._help[key].value = html

    def _profile_findings(self, model: Any) -> list[tuple[FormFinding, str]]:
        """The profile's limits for each Slurm layer, with each problem's own message (the linter may
        say the same; then the field is still marked but the finding is shown once)."""
        if self.profile is None:
            return []
        from ..spec.profile import check_job
        out: list[tuple[FormFinding, str]] = []
        for section in self.form.sections:
            if section.cls is not SlurmJob:
                continue
            job = section.layer(model)
            if not isinstance(job, SlurmJob):
                continue
            problems = [Problem(f"{section.attr}.{p.field}" if section.attr else p.field, p.message)
                        for p in check_job(self.profile, job)]
            out += zip(problem_findings(self.form, problems, code="PROFILE"), [p.message for p in problems])
        return out

    def _cluster_findings(self, model: Any) -> list[FormFinding]:
        """A warning for each Slurm layer whose partition the Slurm that Submit reaches does not have (a form
        made with another cluster's profile): said before submitting, with the profile that fits this cluster."""
        if self._cluster is None:
            return []
        out = []
        for section in self.form.sections:
            job = section.layer(model) if section.cls is SlurmJob else None
            if not isinstance(job, SlurmJob):
                continue
            message = missing_partition(job, self._profile_name(), self._cluster, self._cluster_profiles)
            if message:
                key = section.key("partition")
                out.append(FormFinding("CLUSTER", "warning", 0, message, None, key if key in self.form.fields else ""))
        return out

    # -- events -------------------------------------------------------------------------------------
    @_guarded("Updating the form")
    def _on_field(self, key: str, change: dict) -> None:
        if self._hold:
            return
        refused = self._refused(key, change["new"])
        if refused:
            self._refuse(key, change["old"], refused)
            return
        self._user_set.add(key)
        self._load_problem = None
        self._split_typed_count(key, change["new"])
        self._refresh()
        self._note_edit(key)

    def _split_typed_count(self, key: str, value: Any) -> None:
        """GPUs per node typed as one TYPE:COUNT (a100:4), as its error message suggests for a count that is no whole
        number: the GPU type goes to GPU type (when that is empty or the same) and the count stays, which is how the
        script written reads back, and how the GPU count then flows into torchrun and the GPU flag."""
        if key != self.form.key_for("job.gpus_per_node") or not isinstance(value, str):
            return
        kind, colon, count = value.strip().partition(":")
        type_key = self.form.key_for("job.gpu_type")
        types = self._field_controls.get(type_key)
        if not colon or not count.isdigit() or not kind or kind.isdigit() or "," in value or types is None \
                or str(types.value).strip() not in ("", kind):
            return
        self._set_values({key: count, type_key: kind})
        self._user_set.add(type_key)

    def _refused(self, key: str, value: Any) -> str:
        """Why the control ``key`` does not take ``value``, or "" when it does. A control the page shows disabled (of
        a layer that is off, see :meth:`_mark_off_layers`) takes no value set from code: it would switch the layer on
        with the form's defaults for the rest of it (a torchrun of train.py added to a script that runs none), and
        the layer's switch is how to add it. Nor does a control take what the model would not write or would
        misplace (:func:`~hpcwidgets.spec.workflow.refused_edit`: a title for a script read back without
        hpcwidgets' header, an image for a step that runs in a running instance). The command line refuses the
        same --set."""
        fld, control = self.form.fields.get(key), self._field_controls.get(key)
        if fld is None or control is None:
            return ""
        said = f"{fld.label} ({fld.section.title}) was not changed: "
        if control.disabled:
            switch = self._structural.get(f"{fld.section.prefix}.enabled") if fld.section.attr else None
            how = f"tick “{switch.description}” above to add it" if switch is not None else "switch it on"
            return (said + "that layer is off, so the job runs none and its controls are disabled; a value there "
                    "would add the layer with the form's defaults for the rest of it (such as a program the job "
                    f"does not have). To use it, {how}, then set this")
        why = refused_edit(self._model, fld.path, value)
        return said + why if why else ""

    def _refuse(self, key: str, old: Any, message: str) -> None:
        """Put the control ``key`` (a field's, or a switch of :attr:`_structural`) back to its ``old`` value, which
        the model keeps, and say why in an error finding at it (``message``, from :meth:`_refused`)."""
        self._hold += 1
        try:
            control = self._field_controls[key] if key in self._field_controls else self._structural[key]
            control.value = old
        finally:
            self._hold -= 1
        self._refresh()
        self._findings.insert(0, self._named(FormFinding("FORM", "error", 0, message, None, key)))
        self._show(self._model)

    def _note_edit(self, key: str) -> None:
        """Warn at the control ``key``, just edited, of what the edit does beyond it in the script the form loaded
        (:func:`~hpcwidgets.parse.workflow.edit_notes`: a container field that holds one of several container
        steps), which the command line says for the same --set. The script is the one the model's layout keeps."""
        from ..parse.workflow import edit_notes, edits_container
        fld = self.form.fields.get(key)
        layout = getattr(getattr(self._base, "job", None), "layout", None)
        if fld is None or layout is None or not layout.intact or not edits_container(self._model, (fld.path,)):
            return  # (most edits: the loaded script is then not read again)
        notes = edit_notes("\n".join(layout.source), self._model, (fld.path,))
        if notes:
            self._findings[:0] = [self._named(FormFinding("FORM", "warning", 0, n, None, key)) for n in notes]
            self._show(self._model)

    @_guarded("Changing the form's layers")
    def _on_structure(self, key: str, change: dict) -> None:
        if self._hold:
            return
        # a switch is asked as a field is (the Container runtime of a step in a running instance is refused)
        why = refused_edit(self._model, key, change["new"])
        if why:
            self._refuse(key, change["old"], f"{self._structural[key].description} was not changed: {why}")
            return
        self._structure_changed(key, change["new"])
        self._refresh()

    @_guarded("Changing the cluster profile")
    def _on_profile(self, change: dict) -> None:
        if self._hold:
            return
        try:
            self.set_profile(change["new"] or None)
        except (ProfileError, ValidationError) as exc:
            self._hold += 1
            try:  # the dropdown shows the profile still in use, not the one that could not be read
                self.profile_selector.value = change["old"] if change["old"] in self._profile_choices() \
                    else self._profile_name()
            finally:
                self._hold -= 1
            self._set_status(f"Cannot use profile {change['new']!r}: {exc} (still using "
                             f"{self._profile_name() or 'no profile'})", error=True)
            return
        name = self._profile_name()
        self._set_status(f"Using cluster profile {escape(name)}." if name else
                         "Using no cluster profile: the job is checked as hpcwidgets lint checks it.")

    # -- the update cycle ---------------------------------------------------------------------------
    def _values(self) -> dict[str, Any]:
        return {key: c.value for key, c in self._field_controls.items()}

    def _switch_on(self, attr: str) -> Any:
        """Turn a layer's switch on as an edit elsewhere asks (srun for a job grown to several nodes), its controls
        filled from the layer it then has (one parked while it was off, else a first one); the base it gives."""
        switch = self._structural.get(f"{attr}.enabled")
        if switch is None or switch.value:
            return self._effective_base()
        self._hold += 1
        try:
            switch.value = True
        finally:
            self._hold -= 1
        parked = self._parked.pop(attr, None)
        if parked is not None:
            self._base = dataclasses.replace(self._base, **{attr: parked})
        base = self._effective_base()
        prefix = f"{attr}."
        self._set_values({k: v for k, v in self.form.values(base).items() if k.startswith(prefix)})
        return base

    def _refresh(self) -> None:
        """Read the form, check it, render and lint the preview, and show it all. Never raises: what a
        model, the renderer or the linter raises becomes a finding (CHECK, RENDER, LINT)."""
        try:
            self._refresh_now()
        except Exception as exc:
            self._set_status(_bug("Updating the form", exc), error=True)

    def _refresh_now(self) -> None:
        base = self._effective_base()
        model, errors = self.form.read(base, self._values())
        updates = self._follow(self._model, model)
        switched = updates.pop("srun.enabled", False)
        if switched:
            base = self._switch_on("srun")
        if updates:
            self._set_values(updates)
        if updates or switched:
            model, errors = self.form.read(base, self._values())
        self._model = model
        self._form_errors = errors
        findings: list[Any] = [FormFinding("FORM", "error", 0, message, None, key) for key, message in errors.items()]
        problems: list[Problem] = []
        try:
            problems = model.problems()
            findings += problem_findings(self.form, problems)
        except Exception as exc:
            findings.append(FormFinding("CHECK", "error", 0, _bug("Checking the form's values", exc)))
        bad = bool(findings)
        # warnings (the preview stays the model's), at a field that holds no error: a value refused outright is
        # not written at all, so how the program would get it does not apply
        erred = {getattr(f, "field", "") for f in findings} - {""}
        findings += [f for f in typed_code_findings(self.form, model) if f.field not in erred]
        if self._load_problem is not None:
            findings.insert(0, self._load_problem)
        text = ""
        if not errors or self._last_valid is None:
            try:
                from ..render import render
                text = render(model, validate=False)
            except ValidationError as exc:  # a renderer that validates anyway: only news is worth a line
                # shown at the control it names, as the model's problems are; a control the model's checks flag
                # already holds that news
                flagged = {self.form.key_for(p.field) for p in problems} - {""}
                news = [p for p in exc.problems if p not in problems and self.form.key_for(p.field) not in flagged]
                findings += problem_findings(self.form, news, "RENDER")
                bad = True
            except (HpcWidgetsError, ValueError, TypeError, KeyError) as exc:
                findings.append(FormFinding("RENDER", "error", 0, f"the preview cannot be made: {exc}"))
                bad = True
            except Exception as exc:
                findings.append(FormFinding("RENDER", "error", 0, _bug("Making the preview", exc)))
                bad = True
        self._draft = False
        if not bad:
            self._last_valid = text
            self._text, self._stale = text, False
            findings += self._read_back_findings(text, model)
        elif self._last_valid is not None:
            self._text, self._stale = self._last_valid, True
        else:  # nothing valid yet (e.g. a loaded script with mistakes): show the form's own text
            self._text, self._stale, self._draft = text, True, True
        lint_findings = self._lint(self._text)
        linted = {f.message for f in lint_findings}
        try:
            profile_findings = self._profile_findings(model)
        except Exception as exc:
            profile_findings = [(FormFinding("CHECK", "error", 0, _bug("Checking the profile's limits", exc)), "")]
        findings += [f for f, raw in profile_findings if raw not in linted]
        findings += self._cluster_findings(model)
        self._cannot_run = render_only_message(self.profile, model)
        if self._cannot_run:  # said before Submit, which refuses the job (submit)
            findings.append(FormFinding("PROFILE", "error", 0, self._cannot_run))
            # lint's HPC416 says the same of the script's line, naming no control: shown once, as the form's
            # (kept where a preparation step calls another render-only program, which the form does not name)
            if not _other_render_only_programs(self.profile, model):
                from ..lint.profile_rules import RENDER_ONLY_RULE
                lint_findings = [f for f in lint_findings if f.code != RENDER_ONLY_RULE]
        self._marks = {f.field for f, _ in profile_findings if f.field}
        self._mark_messages = {}
        for f, raw in profile_findings:
            if f.field:
                self._mark_messages.setdefault(f.field, []).append(raw or f.message)
        # a problem the model reports at its field and lint reports at its line is shown once, at the field
        # (lint's copy stays when it brings a fix)
        said = [f.message for f in findings]
        lint_findings = [f for f in lint_findings if f.fix is not None or not any(m.endswith(f.message) for m in said)]
        self._findings = [self._named(f) for f in findings] + lint_findings
        self._show(model)

    def _named(self, finding: Any) -> Any:
        """``finding`` with the model's name for its control (``slurm.nodes`` → ``job.nodes``), so a finding in
        the form and a validation error or ``--set`` on the command line name a field alike."""
        fld = self.form.fields.get(getattr(finding, "field", ""))
        if fld is None or not isinstance(finding, FormFinding) or finding.path:
            return finding
        return dataclasses.replace(finding, path=fld.path)

    def _read_back_findings(self, text: str, model: Any) -> list[FormFinding]:
        """Warnings for the values that Load of the preview ``text`` (Copy or Save, then Load) would not give back
        as ``model`` has them, each at its control: a value the text cannot hold as typed is said, never changed
        silently. Read once per text, as lint is."""
        back = self._read_back_cache.get(text)
        if back is None:
            try:
                back = self._fill_in(self._read(text))
            except HpcWidgetsError as exc:
                back = exc
            except RecursionError:
                back = ParseError("the preview is nested too deeply to be read back")
            except Exception as exc:
                back = RuntimeError(_bug("Reading the preview back", exc))
            self._read_back_cache[text] = back
            if len(self._read_back_cache) > _LINT_CACHE_SIZE:
                self._read_back_cache.popitem(last=False)
        else:
            self._read_back_cache.move_to_end(text)
        if isinstance(back, Exception):
            return [FormFinding("FORM", "warning", 0, f"Load cannot read this preview back ({back}), so a copy or a "
                                                       "saved file cannot be loaded into the form again")]
        if self._same_document(back, model):
            return []
        shown, read = self.form.values(model), self.form.values(back)
        changed = [key for key in shown if shown[key] != read.get(key)]
        if not changed:
            return [FormFinding("FORM", "warning", 0, "Load would read this preview back as another kind of command "
                                                       "or with other layers than the form has now")]
        return [FormFinding("FORM", "warning", 0,
                            f"{self.form.fields[key].label}: {_shown(shown[key])} comes back as {_shown(read[key])} "
                            "when this preview is loaded again: the text cannot hold it as typed", None, key)
                for key in changed]

    @classmethod
    def _same_document(cls, back: Any, model: Any) -> bool:
        """Whether ``back``, read from the preview of ``model``, is the model the form has."""
        return back == model

    def _lint(self, text: str) -> list[Any]:
        if not text.strip():
            return []
        key = text  # the profile's findings only: set_profile empties the cache
        cached = self._lint_cache.get(key)
        if cached is not None:
            self._lint_cache.move_to_end(key)
            return cached
        from ..lint import lint
        try:
            found = lint(text, self.profile)
        except Exception as exc:
            found = [FormFinding("LINT", "error", 0, _bug("The linter", exc) + " (the preview was not checked)")]
        self._lint_cache[key] = found
        if len(self._lint_cache) > _LINT_CACHE_SIZE:
            self._lint_cache.popitem(last=False)
        return found

    def _show(self, model: Any) -> None:
        html = f"<div aria-live='polite'>{highlight(self._text, self.language)}</div>" if self._text else \
            "<div class='hpcw-help'>(nothing to show yet)</div>"
        if self.preview.value != html:
            self.preview.value = html
        if not self._stale:
            note = ""
        elif self._last_valid is not None and self._text == self._last_valid:
            note = ("<div class='hpcw-stale' role='status'>⚠ Stale: the form has errors, so this is the last valid "
                    "version. Fix the marked fields.</div>")
        else:
            note = ("<div class='hpcw-stale' role='status'>⚠ Draft: not valid yet. Fix the errors listed under "
                    "Findings.</div>")
        if self.note.value != note:
            self.note.value = note
        if self.copy_button.text != self._text:
            self.copy_button.text = self._text
        said = " ".join(f.message for f in self._findings if f.code == "CLUSTER")
        note = f"<span class='hpcw-stale' role='status'>⚠ {escape(said)}</span>" if said else ""
        if self.submit_note.value != note:
            self.submit_note.value = note
        refused = (f"<span class='hpcw-status-error' role='status'>✖ Submit refuses this job: {escape(self._cannot_run)}."
                   "</span>") if self._cannot_run else ""
        if self.refused_note.value != refused:
            self.refused_note.value = refused
        invalid = {f.field for f in self._findings if getattr(f, "field", "") and f.severity == "error"}
        invalid |= self._marks
        for key in self._invalid - invalid:
            if key in self._rows:
                self._rows[key].remove_class("hpcw-invalid")
        for key in invalid - self._invalid:
            if key in self._rows:
                self._rows[key].add_class("hpcw-invalid")
        self._invalid = invalid
        self._show_field_errors(invalid)
        self._mark_off_layers(model)
        try:
            self._update_limits(model)
        except Exception as exc:  # only help text; the findings still say what is wrong
            log.debug("updating the limits notes failed", exc_info=exc)
        # the fix itself is part of the key, so an Apply fix button always holds the current finding
        shown = (self._edits_not_in_preview(),) + tuple(
            (f.code, f.severity, f.line, f.message, getattr(f, "field", ""), f.fix) for f in self._findings)
        checked = self._checked_against()
        if self.checked_against.value != checked:
            self.checked_against.value = checked
        if shown != self._shown_findings:
            self._shown_findings = shown
            self.findings_view.children = [self._finding_row(f) for f in self._findings] or \
                [w.HTML("<div class='hpcw-finding hpcw-ok'>✔ No findings.</div>")]

    def _show_field_errors(self, invalid: set[str]) -> None:
        """Under each marked control, the messages that mark it (small, in the error colour): at a narrow width the
        Findings column is far below the field. An Advanced part holding a marked field is opened."""
        said: dict[str, list[str]] = {}
        for f in self._findings:
            key = getattr(f, "field", "")
            if key in invalid and f.severity == "error" and f.message not in said.get(key, []):
                said.setdefault(key, []).append(f.message)
        for key, messages in self._mark_messages.items():
            if key in invalid and key not in said:
                said[key] = list(dict.fromkeys(messages))
        for key, view in self._field_errors.items():
            html = "".join(f"<div class='hpcw-field-error' role='status'>{SEVERITY_ICONS['error']} {escape(m)}</div>"
                           for m in said.get(key, ()))
            if view.value != html:
                view.value = html
            display = "" if html else "none"
            if view.layout.display != display:
                view.layout.display = display
            more = self._disclosures.get(key)
            if html and more is not None and not more.expanded:
                more.expanded = True

    def _mark_off_layers(self, model: Any) -> None:
        """Disable the controls of each layer that is off (srun, torchrun while their switch is off) and say so in
        its tab: the model has no such layer, so what was typed there would change nothing and be lost when the
        layer is switched on."""
        for section in self.form.sections:
            note = self._off_notes.get(section.title)
            if note is None:
                continue
            off = section.layer(model) is None
            switch = self._structural.get(f"{section.prefix}.enabled")
            how = f"tick “{escape(switch.description)}” above to use it" if switch is not None else "switch it on"
            html = f"<div class='hpcw-help' role='status'>This layer is off: {how}.</div>" if off else ""
            if note.value != html:
                note.value = html
            for fld in section.fields:
                control = self._field_controls.get(fld.key)
                if control is not None and control.disabled != off:
                    control.disabled = off

    def _finding_row(self, f: Any) -> w.Widget:
        icon = SEVERITY_ICONS.get(f.severity, "•")
        html = (f"<div class='hpcw-finding'><span class='hpcw-sev-{escape(f.severity)}' "
                f"aria-label='{escape(f.severity)}'>{icon} {escape(f.code)}</span> {escape(f.message)}"
                + self._where(f) + "</div>")
        label = w.HTML(html, layout=w.Layout(flex="1 1 auto"))
        if f.fix is None:
            return label
        waiting = self._edits_not_in_preview()
        button = w.Button(description="Apply fix", icon="wrench", disabled=waiting,
                          tooltip="Fix the marked fields first: the preview is older than the form" if waiting
                          else f.fix.description, layout=w.Layout(width="auto", flex="0 0 auto"))
        button.on_click(lambda _b, finding=f: self._on_apply_fix(finding))
        box = w.HBox([label, button], layout=w.Layout(align_items="center"))
        box.add_class("hpcw-finding-row")
        return box

    def _where(self, finding: Any) -> str:
        """Where a finding is, after its message: the preview's line, or the control's tab and label with the
        model's name for the field (what ``--set`` takes)."""
        if finding.line:
            return f" <i>(line {finding.line})</i>"
        fld = self.form.fields.get(getattr(finding, "field", ""))
        if fld is None:
            return ""
        return (f" <i>({escape(fld.section.title)} › {escape(fld.label)}, "
                f"<code>{escape(fld.path)}</code>)</i>")

    @_guarded("Applying the fix")
    def _on_apply_fix(self, finding: Any) -> None:
        self.apply_fix(finding)

    def _error_problems(self) -> list[Problem]:
        return [Problem(getattr(f, "path", "") or getattr(f, "field", ""), f.message) for f in self._findings
                if isinstance(f, FormFinding) and f.severity == "error" and f.code != "PROFILE"] or \
            [Problem("", "the form has errors; fix the marked fields")]

    # -- actions ------------------------------------------------------------------------------------
    def _set_status(self, message: str, error: bool = False) -> None:
        cls = "hpcw-status hpcw-status-error" if error else "hpcw-status"
        self.status.value = f"<div class='{cls}' role='status'>{escape(message) if error else message}</div>"

    @_guarded("Loading the text")
    def _on_load(self) -> None:
        self.load(self.load_text.value)

    @_guarded("Resetting the form")
    def _on_reset(self) -> None:
        self.reset()

    @_guarded("Changing the file name")
    def _on_path(self, change: dict) -> None:
        self._disarm_replace()

    def _disarm_replace(self) -> None:
        """Hide Replace?: it confirms replacing one file, and File no longer names it (or it was used)."""
        if self._replace_path is not None:
            self._set_status("")  # the question about the old name is no longer asked
        self.replace_button.layout.display = "none"
        self.replace_button.tooltip = "The file exists: click to replace it"
        self._replace_path = None

    @_guarded("Saving")
    def _on_save(self) -> None:
        path = self.path_text.value.strip()
        self._disarm_replace()
        if not path:
            self._set_status("Type a file name in File first (e.g. job.sh).", error=True)
            return
        try:
            _check_file_name(path)
            saved = self.save(path)
        except OverwriteError as exc:  # its message says which file, and why (an existing file, a dangling link)
            # the file asked about, not the name: a %cd before the click must not make Replace? hit another file
            from ..files import expand_user
            self._replace_path = str(expand_user(path).absolute())
            self.replace_button.tooltip = f"Replace {self._replace_path}"
            self.replace_button.layout.display = ""
            self._set_status(escape(str(exc)))
            return
        except (ValidationError, FileError) as exc:
            self._set_status(f"Not saved: {exc}", error=True)
            return
        except OSError as exc:
            self._set_status(f"Not saved: {exc.strerror or exc} ({path})", error=True)
            return
        self._set_status(f"Saved to <code>{escape(str(saved))}</code>")

    @_guarded("Replacing the file")
    def _on_replace(self) -> None:
        path = self._replace_path
        self._disarm_replace()
        if not path:
            return
        try:
            saved = self.save(path, overwrite=True)
        except (HpcWidgetsError, OSError) as exc:
            self._set_status(f"Not saved: {exc}", error=True)
            return
        self._set_status(f"Replaced <code>{escape(str(saved))}</code>")

    @_guarded("Loading the file")
    def _on_open(self) -> None:
        path = self.path_text.value.strip()
        if not path:
            self._set_status("Type the file's name in File first.", error=True)
            return
        from ..files import read_text
        try:
            _check_file_name(path)
            # never a pipe: the kernel would wait, and every widget with it, until something writes to it
            loaded = read_text(path, pipes=False)
        except FileError as exc:  # missing, unreadable, a directory, a device, not UTF-8: the message names the fix
            self._set_status(str(exc), error=True)
            return
        if self._load(loaded.text, path):
            note = (" It started with a UTF-8 byte-order mark (BOM), which sbatch refuses; the form dropped it, "
                    "so a saved script is fine.") if loaded.bom else ""
            self._set_status(f"Loaded <code>{escape(path)}</code>.{note}")

    @_guarded("Submitting")
    def _on_submit(self) -> None:
        try:
            job = self.submit()
        except RunError as exc:
            if _maybe_queued(exc):
                self._set_status(f"Maybe submitted: {exc}. sbatch stopped before saying whether Slurm took the job, "
                                 "and it may have: check squeue -u $USER before submitting again", error=True)
            else:
                self._set_status(f"Not submitted: {exc}", error=True)
            return
        except HpcWidgetsError as exc:
            self._set_status(f"Not submitted: {exc}", error=True)
            return
        made = "".join(f" Created <code>{escape(d)}/</code> for its log." for d in getattr(job, "created_dirs", ()))
        if not job.id:
            unread = getattr(job, "missing_id_message", "") or "sbatch printed no job id"
            self._set_status(f"Submitted, but the job id is unknown: {escape(unread)}.{made}")
            return
        self._set_status(f"Submitted job {escape(job.id)}.{made}")

    def _not_a_job_script(self) -> str:
        return (f"{type(self).__name__} cannot submit: its preview, the {self.title}, is not a batch script, "
                "and sbatch takes only those. Submit a job that runs it instead: a WorkflowBuilder, "
                "or a SlurmBuilder with the command among its commands")

    def _resolve_submitter(self, submit: Any) -> Callable[[str], Any] | None:
        """The function Submit calls, or None for no Submit; an explicit request on a builder whose preview is
        not a job script is refused (ValueError), since the button could only fail."""
        if not self.submits:
            if submit is None or submit is False:
                return None
            raise ValueError(f"{self._not_a_job_script()}; leave submit out (or pass submit=False)")
        if callable(submit):
            return submit
        if submit is None:
            submit = _cluster_answer()[0]
        if not submit:
            return None
        from .jobs import submitter
        return submitter()


# =================================================================================================
# builders with an action selector (one model class per action)

class _ActionBuilder(Builder):
    #: action name -> model class
    actions: dict[str, type] = {}

    def _action_of(self, model: Any) -> str:
        for name, cls in self.actions.items():
            if type(model) is cls and getattr(model, "action", name) == name:
                return name
        return next(n for n, c in self.actions.items() if type(model) is c)

    def _make_structural(self) -> dict[str, w.Widget]:
        return {"action": w.Dropdown(options=tuple(self.actions), description="Action", style=DESCRIPTION_STYLE,
                                     tooltip="What to do; the form shows that command's options")}

    def _sync_structure(self, model: Any) -> None:
        self._structural["action"].value = self._action_of(model)

    def sections(self, model: Any) -> list[Section]:
        return [Section(self.title, type(model), exclude=("action",))]

    def _structure_changed(self, key: str, value: Any) -> None:
        """Show the command ``value``: the model in use is parked under its class and the one parked for
        the new class comes back (a new one when there is none), so exec → pull → exec restores the image,
        binds and command typed for exec. Fields both commands have (same name and type) carry over."""
        current = self._model
        cls = self.actions[value]
        if type(current) is not cls:
            self._parked[f"action.{type(current).__name__}"] = current
        start = current if type(current) is cls else self._parked.pop(f"action.{cls.__name__}", None) or cls()
        carried = {}
        for f in cls.field_specs():
            if f.name == "action" or f.info.role in ("program", "subcommand") and f.name != "binary":
                continue  # each command keeps its own program and subcommand
            try:
                old = type(current).field_spec(f.name)
            except HpcWidgetsError:
                continue
            if old.type == f.type:
                carried[f.name] = getattr(current, f.name)
        if "action" in {f.name for f in cls.field_specs()}:
            carried["action"] = value
        self._base = dataclasses.replace(start, **carried)
        self._last_valid = None
        self._build_form()

    @classmethod
    def parse(cls, text: str) -> Any:
        return loading.parse_command(text, tuple(dict.fromkeys(cls.actions.values())))


class ApptainerBuilder(_ActionBuilder):
    """``apptainer exec|run|shell|test|pull|build`` with an action selector."""

    title = "Apptainer command"
    models = (ApptainerRun, ApptainerPull, ApptainerBuild)
    actions = {"exec": ApptainerRun, "run": ApptainerRun, "shell": ApptainerRun, "test": ApptainerRun,
               "pull": ApptainerPull, "build": ApptainerBuild}

    @classmethod
    def default_model(cls, profile: Any) -> Any:
        image = getattr(getattr(profile, "examples", None), "image", "") or "$SCRATCH/images/pytorch_24.05.sif"
        return ApptainerRun(image=image, command=("python", "train.py"))


class CharliecloudBuilder(_ActionBuilder):
    """``ch-run``, ``ch-image build|pull|import``, ``ch-convert`` and ``ch-fromhost``."""

    title = "Charliecloud command"
    models = (ChRun, ChImageBuild, ChImagePull, ChImageImport, ChConvert, ChFromhost)
    actions = {"run": ChRun, "build": ChImageBuild, "pull": ChImagePull, "import": ChImageImport,
               "convert": ChConvert, "fromhost": ChFromhost}

    @classmethod
    def default_model(cls, profile: Any) -> Any:
        # ch-run starts in the image's /: the project is bound in and the command starts there
        return ChRun(image="$SCRATCH/images/myenv.sqfs", binds=(Bind("$PWD", "/mnt/0"),), cd="/mnt/0",
                     command=("python", "train.py"))


# =================================================================================================
# single-model builders

class DefFileBuilder(Builder):
    """An Apptainer definition file, checked with the build-file rules (HPC7xx: an unpinned base image, a
    token written into the image …), not the job-script ones: ``%post`` runs once, at build time."""

    title = "Apptainer definition file"
    models = (DefFile,)

    @classmethod
    def default_model(cls, profile: Any) -> Any:
        return DefFile(from_="pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime",
                       post=("pip install --no-cache-dir scikit-learn==1.5.0",),
                       runscript=('exec python "$@"',))

    @classmethod
    def parse(cls, text: str) -> Any:
        return loading.parse_deffile(text)


class TorchrunBuilder(Builder):
    title = "torchrun launcher"
    models = (Torchrun,)

    @classmethod
    def default_model(cls, profile: Any) -> Any:
        return Torchrun.single_node(4, "train.py")

    @classmethod
    def parse(cls, text: str) -> Any:
        return loading.parse_command(text, (Torchrun,))


class SlurmBuilder(Builder):
    title = "Slurm batch job"
    models = (SlurmJob,)
    show_profile = True
    submits = True

    @classmethod
    def default_model(cls, profile: Any) -> Any:
        part = profile.default() if profile is not None else None
        # partition (none for an entry selected by QOS/constraint), its qos, constraint and account
        where = profile.job_fields(part) if profile is not None else {}
        return SlurmJob(job_name="train", **where, nodes=1, time="01:00:00",
                        output="%x-%j.out", commands=("python train.py",))

    @classmethod
    def parse(cls, text: str) -> Any:
        return _commands_back(loading.parse_job(text), text)

    @classmethod
    def _same_document(cls, back: Any, model: Any) -> bool:
        """A script does not always say which of its shell lines were Set-up and which Commands (the job runs them
        all in order; see :func:`_commands_back`): a split that reads back otherwise is the same script."""
        def lines(job: Any) -> Any:
            return job.replace(setup=tuple(job.setup) + tuple(job.commands), commands=())
        return back == model or (isinstance(back, SlurmJob) and isinstance(model, SlurmJob)
                                 and lines(back) == lines(model))


class JupyterJobBuilder(Builder):
    title = "JupyterLab on a compute node"
    models = (JupyterJob,)
    show_profile = True
    submits = True

    @classmethod
    def default_model(cls, profile: Any) -> Any:
        # a time that fits the default partition (a debug queue's hour), as jupyter-job --profile writes
        if profile is not None:
            job = JupyterJob.for_profile(profile)
            here = _python_with_jupyterlab(profile)
            return job.replace(python=here) if here else job
        # the tunnel needs a login host, which only a site knows: the generic example's stands in (and shows what
        # to write) until one is typed or a profile chosen; no partition, so the job runs wherever Slurm puts it
        from ..profiles import load_profile
        return JupyterJob(**JupyterJob.login_fields(load_profile("generic")))

    def sections(self, model: Any) -> list[Section]:
        """JupyterLab, its Slurm job and, when it runs in an image, the container (its GPU flag, binds, image;
        not its command, which the job writes)."""
        out = [Section("JupyterLab", JupyterJob),
               Section("Slurm job", SlurmJob, attr="job", prefix="slurm", exclude=("commands", "array"))]
        box = model.container
        if isinstance(box, (ApptainerRun, ChRun)):
            out.append(Section("Container", type(box), attr="container", prefix="container", exclude=("command",)))
        return out

    @classmethod
    def parse(cls, text: str) -> Any:
        """The whole job (container, notebook folder, tunnel, ports too), as ``jupyter-job --from`` reads it."""
        return loading.parse_jupyter(text)

    def _fill_in(self, model: Any) -> Any:
        # a plain job script has no tunnel line: its way in (host, port, jump host) is the profile's, as with
        # jupyter-job --from
        if isinstance(model, JupyterJob) and model.login_host == "" and getattr(self.profile, "login_host", ""):
            return model.replace(**JupyterJob.login_fields(self.profile))
        return model


# =================================================================================================
# the whole workflow

RUNTIMES = ("none", "apptainer", "charliecloud")


class WorkflowBuilder(Builder):
    """Every layer of a job in tabs (Slurm, srun, container, torchrun, program) with a profile selector.

    GPUs per node flows into ``torchrun.nproc_per_node`` and the container's ``--nv``/``--rocm`` unless
    those were set by hand; nodes flows into ``torchrun.nnodes``.
    """

    title = "Containerized Slurm workflow"
    models = (Workflow,)
    show_profile = True
    submits = True

    @classmethod
    def default_model(cls, profile: Any) -> Any:
        """One node, torchrun with a worker per GPU of the profile's default GPU partition, in a container of a
        runtime the profile's cluster runs (not one it only renders, :func:`runnable_runtime`), with CPUs for the
        workers as the shipped examples ask for them (so the first form is one the linter finds nothing wrong with)."""
        part = profile.default(gpu=True) if profile is not None else None
        image = getattr(getattr(profile, "examples", None), "image", "") or "$SCRATCH/images/pytorch_24.05.sif"
        gpus = part.gpus_per_node if part is not None and part.has_gpus else 0
        where = profile.job_fields(part) if profile is not None else {}
        cpus = part.cpus_for_workers(gpus) if part is not None else 0  # 0 where the profile does not say its CPUs
        if cpus:
            where["cpus_per_task"] = cpus
        runtime = runnable_runtime(profile)
        box = None
        if runtime == "charliecloud":  # ch-run cannot read SIF: the SquashFS file ch-convert makes next to it
            box = _charliecloud(image[:-len(".sif")] + ".sqfs" if image.endswith(".sif") else image, ())
        model = Workflow.single_node("train.py", container=box, image=image, runtime=runtime, gpus_per_node=gpus,
                                     torchrun=True, gpu_vendor=getattr(profile, "gpu_vendor", "nvidia") or "nvidia",
                                     job_name="train", time="01:00:00", **where)
        # the runtime's module loaded, the site's name for Apptainer: what workflow --profile writes
        return profile.place(model) if profile is not None else model

    @classmethod
    def parse(cls, text: str) -> Any:
        return loading.parse_workflow(text)

    def sections(self, model: Any) -> list[Section]:
        out = [Section("Slurm job", SlurmJob, attr="job", prefix="slurm", exclude=("commands",)),
               Section("Job step (srun)", Srun, attr="srun", prefix="srun", exclude=("command",))]
        box = model.container
        if isinstance(box, (ApptainerRun, ChRun)):
            out.append(Section("Container", type(box), attr="container", prefix="container", exclude=("command",)))
        out += [Section("torchrun", Torchrun, attr="launcher", prefix="torchrun"),
                Section("Program", Workflow, prefix="workflow")]
        return out

    def _make_structural(self) -> dict[str, w.Widget]:
        return {
            "srun.enabled": w.Checkbox(False, description="Launch with srun", indent=False,
                                       tooltip="Run the step with srun (needed on several nodes)"),
            "container.runtime": w.Dropdown(options=RUNTIMES, value="none", description="Container",
                                            style=DESCRIPTION_STYLE, tooltip="Run the step in an image"),
            "torchrun.enabled": w.Checkbox(False, description="Launch with torchrun", indent=False,
                                           tooltip="Start one worker per GPU with torchrun"),
        }

    def _sync_structure(self, model: Any) -> None:
        s = self._structural
        s["srun.enabled"].value = model.srun is not None
        s["torchrun.enabled"].value = model.launcher is not None
        s["container.runtime"].value = _runtime_of(model.container)

    def _effective_base(self) -> Any:
        b = self._base
        s = self._structural
        srun = (b.srun or Srun(ntasks_per_node=1)) if s["srun.enabled"].value else None
        job = b.job
        launcher = None
        if s["torchrun.enabled"].value:
            gpus = job.gpus_on_each_node if isinstance(job, SlurmJob) else 0
            launcher = b.launcher or Torchrun.single_node(gpus or 1, "train.py")
        runtime = s["container.runtime"].value
        box = b.container if _runtime_of(b.container) == runtime else self._new_container(runtime, b)
        if (srun, launcher, box) == (b.srun, b.launcher, b.container):
            return b
        return dataclasses.replace(b, srun=srun, launcher=launcher, container=box)

    def _example_image(self) -> str:
        return getattr(getattr(self.profile, "examples", None), "image", "") or "$SCRATCH/images/pytorch_24.05.sif"

    def _new_container(self, runtime: str, model: Any) -> Any:
        """A first container for ``runtime`` (None for "none"). The image and the binds of the one in use
        carry over: both runtimes mount ``src:dst`` and take an image path (the model reports an image the
        runtime cannot read). The GPU flag follows the job's GPUs, as in a new workflow."""
        if runtime == "none":
            return None
        old = model.container
        image = getattr(old, "image", "") or (self._example_image() if runtime == "apptainer"
                                              else "$SCRATCH/images/myenv.sqfs")
        binds = tuple(getattr(old, "binds", ()))
        env = carried_variables(old, runtime)  # as the translations write them
        if runtime == "charliecloud":
            box = _charliecloud(image, binds)
            if box is not None:
                return box.replace(**env)
        return self._gpu_flag(make_container(runtime, image, binds, **env), model)

    def _gpu_flag(self, box: Any, model: Any) -> Any:
        """``box`` with the vendor's GPU flag (``--nv``/``--rocm``, :data:`GPU_FLAGS`) set to whether ``model``'s job
        asks for GPUs and the other vendor's flag off, as :func:`follow` does on the form, each unless it was set by
        hand; the GPU count, or the partition and so the vendor, may have changed while the container was parked."""
        gpus = _gpus(model.job)
        vendor = self._box_vendor(box, model)
        flag = GPU_FLAGS.get(vendor)
        if not isinstance(box, ApptainerRun) or gpus is None or not flag:
            return box
        changes = {f: False for f in GPU_FLAGS.values()
                   if f != flag and getattr(box, f, False) is True and f"container.{f}" not in self._user_set}
        if f"container.{flag}" not in self._user_set:
            changes[flag] = gpus > 0
        return box.replace(**changes) if changes else box

    def _box_vendor(self, box: Any, model: Any) -> str:
        """Whose GPU flag ``box`` follows as the container of ``model``'s job (:func:`gpu_vendor_of`): without a profile,
        AMD for a box that says --rocm itself (one parked from a script written for an AMD site)."""
        return gpu_vendor_of(self.profile, model, self._base, dataclasses.replace(model, container=box))

    def _holds_other_flag(self, box: Any, model: Any) -> bool:
        """Whether ``box`` holds a GPU flag of another vendor than the one whose GPUs ``model``'s job gets."""
        flag = GPU_FLAGS.get(self._box_vendor(box, model))
        return bool(flag) and any(getattr(box, f, False) is True for f in GPU_FLAGS.values() if f != flag)

    def _structure_changed(self, key: str, value: Any) -> None:
        # keep what the person typed in the other tabs: the current model becomes the base
        current = self._model
        if key == "container.runtime":
            self._switch_runtime(current, value)
            return
        attr = "srun" if key == "srun.enabled" else "launcher"
        changes: dict[str, Any] = {}
        if value:
            layer = self._parked.pop(attr, None)
            if layer is None and attr == "srun":
                layer = Srun(ntasks_per_node=1)
            elif attr == "launcher":
                layer, changes = self._launcher_for(current, layer)
        else:
            layer = None
            if getattr(current, attr) is not None:
                self._parked[attr] = getattr(current, attr)
            if attr == "launcher":
                changes = self._program_back(current)
        self._base = dataclasses.replace(current, **{attr: layer}, **changes)
        self._set_values(self.form.values(self._effective_base()))

    def _switch_runtime(self, current: Any, runtime: str) -> None:
        """Park the container in use under its runtime and bring back the one parked for ``runtime``
        (a new one when there is none), so switching back restores every value typed for it."""
        gpus = _gpus(current.job)
        if current.container is not None:
            self._parked[f"container.{_runtime_of(current.container)}"] = (current.container, gpus)
        box, parked_gpus = self._parked.pop(f"container.{runtime}", (None, gpus))
        if box is None:
            box = self._new_container(runtime, current)
        elif parked_gpus != gpus or self._holds_other_flag(box, current):
            # the GPUs changed while it was parked, or the job moved to the other vendor's GPUs: its flags follow, as
            # in the form (a flag left off on purpose stays off when only the place changed: follow's moved case)
            box = self._gpu_flag(box, current)
        self._base = dataclasses.replace(current, container=box, job=self._runtime_modules(current, box))
        self._build_form()

    def _runtime_modules(self, current: Any, box: Any) -> Any:
        """The job with the profile's module for the old runtime swapped for the new one's (the default loads the
        runtime's module, as workflow --profile does), unless Modules was typed by hand: then it is left alone."""
        job = current.job
        if self.profile is None or "slurm.modules" in self._user_set or not isinstance(job, SlurmJob):
            return job
        old, new = (self.profile.runtime_module(str(getattr(b, "binary", None) or getattr(b, "program", "")))
                    if b is not None else "" for b in (current.container, box))
        modules = tuple(m for m in job.modules if not old or m != old or old == new)
        if new and new.split("/", 1)[0] not in {m.split("/", 1)[0] for m in modules}:
            modules += (new,)
        return job.replace(modules=modules) if modules != job.modules else job

    def _launcher_for(self, current: Any, parked: Any) -> tuple[Any, dict[str, Any]]:
        """The torchrun layer when torchrun is switched on, and the changes to the program: a Python
        program's script and arguments move into the launcher (into the parked one when there is one)."""
        gpus = current.job.gpus_on_each_node if isinstance(current.job, SlurmJob) else 0
        program = current.program
        if not (len(program) >= 2 and _is_python(program[0])):
            return parked or Torchrun.single_node(gpus or 1, "train.py"), {}
        if parked is not None and (parked.module or parked.no_python):
            return parked, {}  # `-m module` or --no-python: no plain script to take; the finding names the fix
        self._parked["program.python"] = program[0]  # the interpreter the script goes back to (python3, a venv's)
        if parked is not None:
            return parked.replace(script=program[1], args=tuple(program[2:])), {"program": ()}
        return Torchrun.single_node(gpus or 1, program[1], tuple(program[2:])), {"program": ()}

    def _program_back(self, current: Any) -> dict[str, Any]:
        """When torchrun is switched off: its script and arguments go back to an empty Program
        (``python SCRIPT ARGS``), the way switching it on moved them; a ``-m`` or --no-python launcher
        has no such plain form, so nothing moves."""
        launcher = current.launcher
        if launcher is None or current.program or not launcher.script or launcher.module or launcher.no_python:
            return {}
        python = self._parked.pop("program.python", "python")
        return {"program": (python, launcher.script, *launcher.args)}

    def _follow(self, before: Any, after: Any) -> dict[str, Any]:
        if self._hold:
            return {}
        return follow(before, after, self._user_set, self._gpu_vendor(after), self.form)

    def _gpu_vendor(self, model: Any) -> str:
        """Whose GPU flag follows the job's GPUs (:func:`gpu_vendor_of`): the vendor of the partition ``model``'s job
        runs on by the profile (its own, else the profile's), without a profile the one the container says now or as
        loaded. :meth:`_follow` asks with the model after the edit, so a move to an AMD partition follows --rocm."""
        return gpu_vendor_of(self.profile, model, self._base)


def _charliecloud(image: str, binds: tuple[Bind, ...]) -> Any:
    """A first ``ch-run`` of ``image``: ch-run starts in the image's / and mounts no project folder, so the submit
    directory is bound at the first free /mnt/N (most images have /mnt/0 … /mnt/9) and the step starts there, where
    train.py is found. None when /mnt/0 … /mnt/9 are all taken."""
    used = {bind_destination(b).rstrip("/") for b in binds}
    mount = next((f"/mnt/{n}" for n in range(10) if f"/mnt/{n}" not in used), "")
    return make_container("charliecloud", image, (*binds, Bind("$PWD", mount)), cd=mount) if mount else None


def runnable_runtime(profile: Any) -> str:
    """The container runtime a new job of ``profile`` uses (:meth:`ClusterProfile.runnable_runtime`: the first its
    cluster runs, not one it only renders), as the form's Container control names it; apptainer without a profile."""
    if profile is None:
        return "apptainer"
    runtime = profile.runnable_runtime()
    return "apptainer" if runtime == "singularity" else runtime  # the site's name for Apptainer: profile.place


def _container_program(box: Any) -> str:
    """The program the container layer ``box`` calls (``ch-run``, ``apptainer``, a path to one), "" for none."""
    if isinstance(box, ChRun):
        return "ch-run"
    if isinstance(box, ApptainerRun):
        return str(box.binary or "apptainer")
    return ""


def _other_render_only_programs(profile: Any, model: Any) -> set[str]:
    """The programs of ``model``'s preparation steps (apptainer pull, ch-image, ch-convert …) other than its
    container's that ``profile`` lists as render-only: lint's HPC416 reports each of them once, and the form's own
    finding (:func:`render_only_message`) names only the container's."""
    own = _container_program(getattr(model, "container", None))
    steps = getattr(model, "prepare", ()) or ()
    programs = {str(s.binary or "apptainer") if isinstance(s, (ApptainerPull, ApptainerBuild)) else
                str(getattr(s, "program", "") or "") for s in steps}
    return {p for p in programs - {own, ""} if profile.render_only_runtime(p)}


def render_only_message(profile: Any, model: Any) -> str:
    """Why a job of ``model`` cannot run on ``profile``'s cluster, or "": its container runtime is one the profile
    lists as render-only (:meth:`ClusterProfile.render_only_message`; lint's HPC416 says it of the script too), with
    the Container to choose instead."""
    if profile is None:
        return ""
    program = _container_program(getattr(model, "container", None))
    if not program:
        return ""
    runs = ["apptainer" if r == "singularity" else r for r in profile.runnable_runtimes()]  # the control's names
    fix = (f"choose Container = {runs[0]} (the runtime it runs)" if runs else
           "run the program without a container, or use a profile for a cluster that has it")
    return profile.render_only_message(program, fix)


#: login hosts that are the machine the kernel runs on
_THIS_MACHINE = ("localhost", "127.0.0.1", "::1")


def _python_with_jupyterlab(profile: Any) -> str:
    """The kernel's own Python when ``profile``'s jobs run on this machine and it has JupyterLab, else "".

    A profile whose login host is this machine is the practice cluster's (its nodes are this machine too): there the
    Python running this form is on every node, and with JupyterLab installed it starts it (``python -m jupyterlab``),
    where a bare ``jupyter`` may not be on the job's PATH. On a real cluster the nodes have their own environments,
    and the field stays ``jupyter`` for the person to point at theirs."""
    import importlib.util
    import socket
    import sys
    host = str(getattr(profile, "login_host", "") or "")
    if not host or host not in (*_THIS_MACHINE, socket.gethostname()):
        return ""
    try:
        found = importlib.util.find_spec("jupyterlab") is not None
    except (ImportError, ValueError):
        found = False
    return sys.executable if found and sys.executable else ""


def _commands_back(job: SlurmJob, text: str) -> SlurmJob:
    """``job``, read from ``text`` (:func:`hpcwidgets.parse.parse_job`, which keeps the lines from the first real
    work on as commands) when it found none, so every shell line is a set-up line: with its last lines back in
    Commands when ``text`` is the script the form writes for that split (commands that are no real work, such as
    ``echo done``).

    The form writes Set-up as one block and each command apart after it, so the lines that stand alone at the end
    are the candidates; the first split whose script is ``text`` exactly is taken, fewest set-up lines first. Any
    other text keeps every line as set-up. The split taken is the form's own script exactly, so it needs no layout of
    the text read (the renderer writes it as it was)."""
    from ..render import render
    if job.commands:
        return job
    setup = tuple(job.setup)
    alone = 0
    for chunk in reversed(text.rstrip("\n").split("\n\n")):
        if alone == len(setup) or "\n" in chunk.strip("\n"):
            break
        alone += 1
    for k in range(len(setup) - alone, len(setup)):
        split = job.replace(setup=setup[:k], commands=setup[k:], layout=None)
        try:
            if render(split, validate=False) == text:
                return split
        except (HpcWidgetsError, ValueError):
            return job
    return job


def _runtime_of(box: Any) -> str:
    """The container runtime choice ("none", "apptainer", "charliecloud") that shows ``box``."""
    return "charliecloud" if isinstance(box, ChRun) else "apptainer" if isinstance(box, ApptainerRun) else "none"


def _gpus(job: Any) -> int | None:
    """GPUs on each node of a workflow's job (None while the job is not a SlurmJob)."""
    return job.gpus_on_each_node if isinstance(job, SlurmJob) else None


_SHELL_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")


def _check_file_name(path: str) -> None:
    """FileError for a File name holding a shell variable (``$HOME/job.sh``): no shell reads the box, so it would
    name a folder literally called ``$HOME``; the message gives the name with the variable's value."""
    found = _SHELL_VARIABLE.search(path)
    if found is None:
        return
    meant = os.path.expandvars(path)
    hint = f"write {meant}" if meant != path else "write the folder's own path"
    raise FileError(f"{path}: File is not read by a shell, so {found.group(0)} would be taken literally (a folder "
                    f"named {found.group(0)}); {hint}, or ~/ for your home folder", path)


def _control_args(fld: Field) -> dict[str, Any]:
    """What every field's control shows: its label, its help as a tooltip, the labels' common width."""
    return dict(description=fld.label, tooltip=fld.help, style=DESCRIPTION_STYLE)


#: a name ipywidgets' Combobox can offer: its view writes each option into the page's HTML as it is, unescaped
_DATALIST_SAFE = re.compile(r"[^\"'<>&]+")


def _datalist_safe(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` without those a Combobox's list would write into the page as markup (a profile is a file anyone
    can edit); such a name can still be typed."""
    return tuple(n for n in names if _DATALIST_SAFE.fullmatch(n))


class Disclosure(w.VBox):
    """A part of the form that opens and closes (Advanced, Load or reset). ipywidgets' Accordion header is no
    button and takes no keyboard focus, so its parts could only be opened with a mouse; here a real button opens
    and closes it (Tab to it, then Enter or Space), its label saying what it does: "Show advanced fields (3)",
    "Hide advanced fields"."""

    def __init__(self, title: str, children: list[w.Widget], *, what: str = "", count: int = 0, expanded: bool = False,
                 **kw: Any):
        self.title = title
        self.what = what or title
        self.count = count
        self.toggle = w.ToggleButton(value=expanded, layout=w.Layout(width="auto", max_width="100%"))
        self.toggle.add_class("hpcw-disclosure-toggle")
        self.body = w.VBox(children, layout=w.Layout(width="100%", display="" if expanded else "none"))
        self.body.add_class("hpcw-disclosure-body")
        super().__init__([self.toggle, self.body], **kw)
        self.add_class("hpcw-disclosure")
        self.toggle.observe(self._on_toggle, names="value")
        self._label()

    @property
    def expanded(self) -> bool:
        """Whether the part is shown."""
        return bool(self.toggle.value)

    @expanded.setter
    def expanded(self, value: bool) -> None:
        self.toggle.value = bool(value)

    def _on_toggle(self, change: dict) -> None:
        self.body.layout.display = "" if change["new"] else "none"
        self._label()

    def _label(self) -> None:
        what = self.what
        shown = self.expanded
        self.toggle.description = (f"Hide {what}" if shown else
                                   f"Show {what}" + (f" ({self.count})" if self.count else ""))
        self.toggle.icon = "caret-down" if shown else "caret-right"
        self.toggle.tooltip = (f"{self.title}: shown; click (or press Enter) to hide it" if shown else
                               f"{self.title}: hidden; click (or press Enter) to show it")


class Controls(Mapping):
    """A builder's controls by name (see :attr:`Builder.controls`): each field once, by the model's name for it,
    and the form's older name for a field (``slurm.nodes`` for ``job.nodes``) accepted wherever a name is."""

    def __init__(self, named: dict[str, w.Widget], aliases: dict[str, str]):
        self._by_name = named
        self._aliases = aliases

    def __getitem__(self, name: str) -> w.Widget:
        try:
            return self._by_name[self._aliases.get(name, name)]
        except KeyError:
            close = difflib.get_close_matches(str(name), [*self._by_name, *self._aliases], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "list(builder.controls) names them all"
            raise KeyError(f"the form has no control {name!r}; {hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name or name in self._aliases

    def __repr__(self) -> str:
        return f"Controls({', '.join(self._by_name)})"


def _is_python(word: str) -> bool:
    return word.split("/")[-1].startswith("python")


BUILDERS = (ApptainerBuilder, DefFileBuilder, CharliecloudBuilder, SlurmBuilder, TorchrunBuilder,
            JupyterJobBuilder, WorkflowBuilder)


def _shown(value: Any) -> str:
    """A control's value in a message: quoted text, "empty" for nothing, on/off for a switch."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return repr(value) if value != "" else "empty"


def _where(exc: ParseError) -> str:
    """``line L, column C: `` for a ParseError that knows where it stopped ("" when it does not)."""
    if not exc.line:
        return ""
    return f"line {exc.line}, column {exc.column}: " if exc.column else f"line {exc.line}: "
