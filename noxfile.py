"""Developer tasks. `nox -s lint typecheck docs tests` is what CI runs (see README).

typecheck, docs, tests, example and bench share ONE virtual environment,
``.nox/shared``: each would otherwise install its own torch and Ax (about 2 GB and
two minutes apiece). It is made once, and made again only when pyproject.toml or
the pins below change. torch comes first, by pip (pip finds the CPU build on these
machines' disk; uv does not look there); the rest by uv when it is installed
(`pip install uv`: several times faster), else by pip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "docs", "tests"]

PYTHON = "3.11"
# The CPU build of torch: pip finds it on these machines' disk. Unpinned, Ax's
# dependency on torch would resolve to a multi-GB CUDA build.
TORCH = "torch==2.13.0"
EXTRAS = "test,bench,lint,docs,mysql"
ROOT = Path(__file__).parent
SHARED = ROOT / ".nox" / "shared"


def shared_python() -> str:
    """The interpreter the shared environment is made from: Python 3.11 if found."""
    return shutil.which(f"python{PYTHON}") or sys.executable


def wanted_stamp() -> str:
    """What the shared environment must have been installed from."""
    recipe = (ROOT / "pyproject.toml").read_bytes() + f"{TORCH} {EXTRAS}".encode()
    return hashlib.sha256(recipe).hexdigest()


def use_shared_env(session: nox.Session) -> Path:
    """Make (or reuse) ``.nox/shared``; the commands the session runs find its
    programs first on PATH. Returns its ``bin`` directory: a session without a
    virtualenv of its own names its programs by their path (nox does not look
    them up on the session's PATH)."""
    stamp, bin_dir = SHARED / "installed.sha256", SHARED / "bin"
    if not (stamp.exists() and stamp.read_text() == wanted_stamp()):
        shutil.rmtree(SHARED, ignore_errors=True)
        session.run(shared_python(), "-m", "venv", str(SHARED), external=True)
        python = str(bin_dir / "python")
        session.run(python, "-m", "pip", "install", "--quiet", TORCH, external=True)
        project = ["-e", f"{ROOT}[{EXTRAS}]"]
        uv = shutil.which("uv")
        if uv:
            # --compile-bytecode: pip compiles at install, uv does not; without it, every
            # fresh interpreter compiled Ax again (12 s an import instead of 5, measured).
            argv = [uv, "pip", "install", "--compile-bytecode", "--python", python, *project]
            session.run(*argv, external=True)
        else:
            session.run(python, "-m", "pip", "install", "--quiet", *project, external=True)
        stamp.write_text(wanted_stamp())
    session.env["VIRTUAL_ENV"] = str(SHARED)
    session.env["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    return bin_dir


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


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The whole test suite: real worker processes, a real Docker engine, real Slurm.

    Starts a private Docker engine (ci/start-docker.sh: installs Debian's docker.io
    if missing, as root, and imports two local test images) and a single-node Slurm
    cluster with accounting and an OpenSSH login node on 127.0.0.1:2222/2223
    (ci/start-slurm.sh: installs Debian's slurm, munge, mariadb and openssh-server
    if missing), and stops both afterwards.
    """
    bin_dir = use_shared_env(session)
    session.run("bash", "ci/install-chromium.sh", external=True)  # the report's browser test
    session.run("bash", "ci/start-docker.sh", external=True)
    session.env["DOCKER_HOST"] = f"unix://{DOCKER_SOCKET}"
    try:
        start_slurm(session)
        # One process: two xdist workers took as long (910 s against 920 s, measured
        # on 2 cores: most tests are CPU-bound, an Ax import alone is 6 s of CPU).
        # --durations: where the suite's time goes, in every CI log.
        default = ["-q", "--durations=25"]
        session.run(str(bin_dir / "pytest"), *(session.posargs or default), external=True)
    finally:
        session.run("bash", "ci/stop-slurm.sh", external=True)
        session.run("bash", "ci/stop-docker.sh", external=True)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "examples", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "bench", "noxfile.py")


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    bin_dir = use_shared_env(session)
    session.run(str(bin_dir / "mypy"), external=True)


@nox.session(venv_backend="none")
def docs(session: nox.Session) -> None:
    """Build the docs site (mkdocs material, API pages by mkdocstrings) with --strict."""
    bin_dir = use_shared_env(session)
    site = SHARED / "site"
    session.run(
        str(bin_dir / "mkdocs"), "build", "--strict", "--site-dir", str(site), external=True
    )


@nox.session(venv_backend="none")
def example(session: nox.Session) -> None:
    """Run the tutorial's complete example end to end."""
    bin_dir = use_shared_env(session)
    scratch = SHARED / "example"
    scratch.mkdir(exist_ok=True)
    session.chdir(scratch)
    session.run(
        str(bin_dir / "python"), str(ROOT / "examples" / "batch_trial_submission.py"), external=True
    )


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """The comparison suite: ours against Ax's run_trials and Orchestrator, a hand loop, Optuna.

    ``nox -s bench -- --quick`` is the smoke version; see ``python -m bench --help``.
    """
    bin_dir = use_shared_env(session)
    session.chdir(ROOT)  # python -m bench: the bench package of this checkout
    session.run(str(bin_dir / "python"), "-m", "bench", *session.posargs, external=True)
