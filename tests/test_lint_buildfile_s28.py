"""Build-file misses of the session-27 audit: conda activate in a build step (HPC712) and files with logins or keys
copied into an image (HPC702)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

DOCKER = "FROM continuumio/miniconda3:24.4.0-0\nRUN conda create -y -n ml python=3.11\n"
DEF = "Bootstrap: docker\nFrom: continuumio/miniconda3:24.4.0-0\n\n%post\n    conda create -y -n ml python=3.11\n"


def found(text: str, code: str, path: str = "") -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, path=path) if f.code == code]


# --- HPC712: conda activate in a build step ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "says"), [
    (DOCKER + "RUN conda activate ml && pip install numpy==1.26.4\n", 3, "has not been set up"),
    (DOCKER + "RUN mamba activate ml; pip install numpy==1.26.4\n", 3, "mamba has not been set up"),
    (DOCKER + "RUN . /opt/conda/etc/profile.d/conda.sh && conda activate ml\n", 3, "last command of this RUN"),
    (DEF + "    conda activate ml\n    pip install numpy==1.26.4\n", 6, "same %post section"),
    (DOCKER + "RUN conda init bash\nRUN conda activate ml && python -V\n", 4, "has not been set up"),
])
def test_conda_activate_without_set_up_or_with_nothing_after_it_is_reported(text, line, says):
    [(at, message)] = found(text, "HPC712")
    assert at == line and says in message
    assert "conda run -n ml" in message or "/opt/conda/envs/ml/bin" in message


@pytest.mark.parametrize("text", [
    DOCKER + "RUN . /opt/conda/etc/profile.d/conda.sh && conda activate ml && pip install numpy==1.26.4\n",
    DOCKER + 'RUN eval "$(conda shell.bash hook)" && conda activate ml && pip install numpy==1.26.4\n',
    DOCKER + 'SHELL ["/bin/bash", "--login", "-c"]\nRUN conda activate ml && pip install numpy==1.26.4\n',
    DOCKER + 'SHELL ["/bin/bash", "-lc"]\nRUN conda activate ml && pip install numpy==1.26.4\n',
    DOCKER + 'ENV BASH_ENV=/root/.bashrc\nSHELL ["/bin/bash", "-c"]\nRUN conda activate ml && python -V\n',
    DOCKER + "RUN conda run -n ml pip install numpy==1.26.4\n",
    DEF + "    . /opt/conda/etc/profile.d/conda.sh\n    conda activate ml\n    pip install numpy==1.26.4\n",
    DEF + "\n%runscript\n    conda activate ml\n    exec python \"$@\"\n",   # run time: not a build step
    DOCKER + "RUN echo 'conda activate ml' >> ~/.bashrc\n",                 # only written into a file
])
def test_conda_activate_where_it_works_is_left_alone(text):
    assert found(text, "HPC712") == []


def test_a_setup_in_another_run_does_not_count():
    text = DOCKER + "RUN . /opt/conda/etc/profile.d/conda.sh\nRUN conda activate ml && python -V\n"
    assert [line for line, _ in found(text, "HPC712")] == [4]


# --- HPC702: a file with logins or keys copied into the image ----------------------------------------------------------

@pytest.mark.parametrize(("line", "what"), [
    ("COPY .env /app/.env", "environment file"),
    ("COPY config/.env.production /app/", "environment file"),
    ("COPY --chown=1000:1000 .netrc requirements.txt /root/", ".netrc"),
    ('ADD ["id_ed25519", "/root/.ssh/"]', "SSH private key"),
    ("COPY .ssh /root/.ssh", "SSH folder"),
    ("COPY .git-credentials /root/", "git's saved logins"),
    ("COPY .aws/credentials /root/.aws/credentials", "AWS credentials"),
    ("COPY kaggle.json /root/.kaggle/", "Kaggle"),
    ("COPY .cache/huggingface/token /root/.cache/huggingface/token", "Hugging Face token"),
])
def test_a_secret_file_copied_by_a_dockerfile_is_reported(line, what):
    [(at, message)] = found(f"FROM python:3.11.9-slim\n{line}\n", "HPC702")
    assert at == 2 and what in message and "--mount=type=secret" in message


@pytest.mark.parametrize("line", [
    "COPY .env.example /app/",
    "COPY requirements.txt environment.yml /app/",
    "COPY id_ed25519.pub /root/.ssh/authorized_keys",
    "COPY --from=builder /root/.netrc /tmp/",   # from another stage of this build, not from outside
    "COPY $ENV_FILE /app/",
    "COPY . /app",
])
def test_files_without_secrets_are_not_reported(line):
    assert found(f"FROM python:3.11.9-slim\n{line}\n", "HPC702") == []


def test_a_secret_file_in_files_of_a_definition_file_is_reported_and_other_sections_are_not():
    text = ("Bootstrap: docker\nFrom: python:3.11.9-slim\n\n%files\n    ~/.netrc /root/.netrc\n    train.py /opt/\n\n"
            "%files from build\n    /root/.env /opt/.env\n\n%post\n    cat .env >/dev/null || true\n")
    [(at, message)] = found(text, "HPC702")
    assert at == 5 and "%files copies ~/.netrc" in message and "--bind ~/.netrc" in message


# --- HPC704: an installer piped into sh that puts its tool under the build's home --------------------------------------

PY = "FROM python:3.11.9-slim\n"


@pytest.mark.parametrize(("run", "product"), [
    ("RUN curl -LsSf https://astral.sh/uv/install.sh | sh", "uv's installer"),
    ("RUN curl -LsSf https://astral.sh/uv/0.4.18/install.sh | sh", "uv's installer"),
    ("RUN wget -qO- https://astral.sh/uv/install.sh | sh", "uv's installer"),
    ("RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y", "rustup"),
    ("RUN curl -sSL https://install.python-poetry.org | python3 -", "Poetry's installer"),
    ("RUN curl -fsSL https://pixi.sh/install.sh | bash", "pixi's installer"),
    ("RUN curl -fsSL https://install.julialang.org | sh -s -- --yes", "juliaup's installer"),
])
def test_an_installer_piped_into_sh_that_installs_into_home_is_reported(run, product):
    [(line, message)] = found(PY + run + "\n", "HPC704")
    assert line == PY.count("\n") + run.count("\n") + 1 and product in message and "/root" in message


def test_the_same_in_a_definition_file_names_apptainer():
    text = "Bootstrap: docker\nFrom: python:3.11.9-slim\n\n%post\n    curl -LsSf https://astral.sh/uv/install.sh | sh\n"
    [(line, message)] = found(text, "HPC704")
    assert line == 5 and "Apptainer runs the container as you" in message and "UV_INSTALL_DIR" in message


@pytest.mark.parametrize("run", [
    "ENV UV_INSTALL_DIR=/usr/local/bin\nRUN curl -LsSf https://astral.sh/uv/install.sh | sh",
    "RUN curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh",
    "RUN curl -LsSf https://astral.sh/uv/install.sh | UV_INSTALL_DIR=/usr/local/bin sh",
    "RUN curl -LsSf https://astral.sh/uv/install.sh | sh && mv /root/.local/bin/uv /usr/local/bin/",
    "RUN curl -LsSf https://astral.sh/uv/install.sh | sh\nRUN cp /root/.local/bin/uv /usr/local/bin/uv",
    "ENV CARGO_HOME=/opt/cargo RUSTUP_HOME=/opt/rustup\nRUN curl -sSf https://sh.rustup.rs | sh -s -- -y",
    "RUN curl -fsSL https://install.julialang.org | sh -s -- --yes --path /opt/juliaup",
    "RUN curl -LsSf https://astral.sh/uv/install.sh -o /tmp/uv.sh",   # only downloaded
    "RUN curl -LsSf https://example.org/install.sh | sh",            # an installer lint does not know
    "ENV POETRY_HOME=/opt/poetry\nRUN curl -sSL https://install.python-poetry.org | python3 -",
])
def test_an_installer_told_where_to_go_or_moved_out_is_left_alone(run):
    assert found(PY + run + "\n", "HPC704") == []
