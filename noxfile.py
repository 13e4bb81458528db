"""Developer tasks. `nox -s tests` is what CI runs (see README)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "docs", "tests"]

PYTHON = "3.11"
# The CPU build of torch: pip finds it on these machines' disk. Unpinned, Ax's
# dependency on torch would resolve to a multi-GB CUDA build.
TORCH = "torch==2.13.0"


def install_project(session: nox.Session, *extras: str) -> None:
    session.install(TORCH)
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


DOCKER_SOCKET = "/tmp/localdocker/run/docker.sock"


SLURM_ENV = "/tmp/localslurm/env.sh"


def start_slurm(session: nox.Session) -> None:
    """Start the local Slurm cluster and sshd; export their coordinates to the session."""
    session.run("bash", "ci/start-slurm.sh", external=True)
    with open(SLURM_ENV, encoding="utf-8") as env:
        for line in env:
            key, _, value = line.strip().removeprefix("export ").partition("=")
            if key:
                session.env[key] = value


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite: real worker processes, a real Docker engine, real Slurm.

    Starts a private Docker engine (ci/start-docker.sh: installs Debian's docker.io
    if missing, as root, and imports two local test images) and a single-node Slurm
    cluster with accounting and an OpenSSH login node on 127.0.0.1:2222/2223
    (ci/start-slurm.sh: installs Debian's slurm, munge, mariadb and openssh-server
    if missing), and stops both afterwards.
    """
    install_project(session, "test", "bench")  # bench: the comparison suite's smoke test
    session.run("bash", "ci/install-chromium.sh", external=True)  # the report's browser test
    session.run("bash", "ci/start-docker.sh", external=True)
    session.env["DOCKER_HOST"] = f"unix://{DOCKER_SOCKET}"
    try:
        start_slurm(session)
        # --durations: where the suite's time goes, in every CI log (it must stay well under 15 min).
        session.run("pytest", *(session.posargs or ["-q", "--durations=15"]))
    finally:
        session.run("bash", "ci/stop-slurm.sh", external=True)
        session.run("bash", "ci/stop-docker.sh", external=True)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "examples", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "bench", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    install_project(session, "lint")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the docs site (mkdocs material, API pages by mkdocstrings) with --strict."""
    install_project(session, "docs")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")


@nox.session(python=PYTHON)
def example(session: nox.Session) -> None:
    """Run the tutorial's complete example end to end."""
    install_project(session)
    session.chdir(session.create_tmp())
    session.run("python", f"{session.invoked_from}/examples/batch_trial_submission.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The comparison suite: ours against Ax's run_trials and Orchestrator, a hand loop, Optuna.

    ``nox -s bench -- --quick`` is the smoke version; see ``python -m bench --help``.
    """
    install_project(session, "bench")
    session.run("python", "-m", "bench", *session.posargs)
