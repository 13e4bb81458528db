"""The docs tell the truth: their code is code the test suite runs.

Every fenced block of docs/**/*.md and README.md is one of:

- ```python: verbatim in an example file (examples/*.py, run by a test), in
  tests/objectives.py, or in README's quick start (run below);
- ```yaml: verbatim in an examples/*.yaml file (the CLI's tests run those);
- ```bash / ```sh / ```console: commands that are an `ax-scheduler ...` call (its
  subcommand must exist), `python examples/<file>.py` (a tested example), or on
  ALLOWED_COMMANDS;
- ```text: output or diagrams, not code.

Anything else fails, naming the file and the block.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import ax_scheduler
from ax_scheduler import SchedulerConfig

ROOT = Path(__file__).parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
PAGES = [*DOCS, ROOT / "README.md"]
EXAMPLES = ROOT / "examples"

SHELLS = {"bash", "sh", "shell", "console"}

#: Commands a reader runs that are not examples: installing, and the README's two
#: commands (CI runs the second; `nox -s example` runs the tutorial's example).
ALLOWED_COMMANDS = {
    "python3 -m pip install -e .",
    "python3 -m pip install nox uv && python3 -m nox -s example",
    "python3 -m pip install nox uv && python3 -m nox -s lint typecheck docs tests",
}

#: `[VAR=value ...] python[3] examples/<name>.py`: an example, run as users run it.
EXAMPLE_COMMAND = re.compile(r"^(?:\w+=\S*\s+)*python3?\s+examples/(?P<name>[\w-]+\.py)$")

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    flags=re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str

    def __str__(self) -> str:
        first = self.body.strip().splitlines()[0] if self.body.strip() else ""
        return f"{self.page.relative_to(ROOT)}:{self.line} (```{self.lang}: {first!r})"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = match.group("indent")
        body = "".join(
            line.removeprefix(indent) for line in match.group("body").splitlines(keepends=True)
        )
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, match.group("lang").strip(), body))
    return found


def python_blocks(path: Path) -> list[str]:
    return [block.body for block in blocks(path) if block.lang == "python"]


def readme_quick_start() -> str:
    (block,) = python_blocks(ROOT / "README.md")
    return block


def python_sources() -> list[str]:
    files = [*sorted(EXAMPLES.glob("*.py")), ROOT / "tests" / "objectives.py"]
    return [path.read_text() for path in files] + [readme_quick_start()]


def commands(body: str, lang: str) -> list[str]:
    """The commands of a shell block: continuations joined; comments and output dropped."""
    lines = body.replace("\\\n", " ").splitlines()
    if lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    return [" ".join(line.split()) for line in lines if line.strip() and not line.startswith("#")]


def cli_subcommand(command: str) -> str | None:
    """``"run"`` for ``ax-scheduler run spec.yaml``; ``""`` for bare ``ax-scheduler``."""
    words = command.split()
    if not words or words[0] != "ax-scheduler":
        return None
    return next((word for word in words[1:] if not word.startswith("-")), "")


def problem(block: Block) -> str | None:
    """Why ``block`` is not run by the test suite, or None if it is."""
    if block.lang == "text":
        return None
    if block.lang == "python":
        if any(block.body in source for source in python_sources()):
            return None
        return "a python block must appear verbatim in an examples/*.py file"
    if block.lang == "yaml":
        specs = [path.read_text() for path in EXAMPLES.glob("*.y*ml")]
        if any(block.body in spec for spec in specs):
            return None
        return "a yaml block must appear verbatim in an examples/*.yaml file"
    if block.lang in SHELLS:
        for command in commands(block.body, block.lang):
            example = EXAMPLE_COMMAND.match(command)
            if example and not (EXAMPLES / example.group("name")).exists():
                return f"{command!r} runs an example that does not exist"
            if not (example or cli_subcommand(command) is not None or command in ALLOWED_COMMANDS):
                return (
                    f"{command!r} is neither `ax-scheduler ...`, `python examples/<file>.py`"
                    " nor on ALLOWED_COMMANDS in tests/test_docs.py"
                )
        return None
    return f"```{block.lang} is not code the suite runs: declare output as ```text"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_is_code_the_test_suite_runs(page: Path) -> None:
    problems = [f"{block}: {why}" for block in blocks(page) if (why := problem(block))]
    assert not problems, "\n".join(problems)


def test_the_block_rules_catch_what_they_should(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```\nuntyped\n```\n\n"
        "```json\n{}\n```\n\n"
        "```python\nprint('not in any example')\n```\n\n"
        "```bash\nrm -rf build\n```\n\n"
        "```bash\npython examples/no_such_example.py\n```\n\n"
        "```console\n$ ax-scheduler --help\nUsage: ax-scheduler\n```\n\n"
        "  ```text\n  indented output\n  ```\n"
    )
    found = [(block.lang, problem(block)) for block in blocks(page)]
    assert [lang for lang, _ in found] == ["", "json", "python", "bash", "bash", "console", "text"]
    assert [why is None for _, why in found] == [False] * 5 + [True, True]


def cli_commands() -> list[str]:
    return sorted(
        {
            command
            for page in PAGES
            for block in blocks(page)
            if block.lang in SHELLS
            for command in commands(block.body, block.lang)
            if cli_subcommand(command) is not None
        }
    )


@pytest.mark.parametrize("command", cli_commands())
def test_the_docs_cli_commands_exist(command: str) -> None:
    """The full commands run in tests/test_cli.py; here: the subcommand is real."""
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = script["ax-scheduler"].split(":")
    launcher = (
        f"import sys; sys.argv[0] = 'ax-scheduler'; from {module} import {function}; {function}()"
    )
    subcommand = cli_subcommand(command)
    argv = [sys.executable, "-c", launcher, *([subcommand] if subcommand else []), "--help"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{command!r}: {result.stderr[-2000:]}"


def test_every_example_is_run_by_a_test() -> None:
    tests = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    examples = sorted(EXAMPLES.glob("*.py"))
    # simulate.py is a script objective of other examples; cli_objective.py of the
    # CLI's spec files (examples/*.yaml, which tests/test_cli.py runs).
    others = [*examples, *EXAMPLES.glob("*.y*ml")]

    def run_by_another_example(name: str) -> bool:
        return any(name in other.read_text() for other in others if other.name != name)

    missing = [
        p.name for p in examples if p.name not in tests and not run_by_another_example(p.name)
    ]
    assert not missing, f"examples no test runs: {missing}"


def test_tutorial_complete_example_is_the_example_file() -> None:
    example = (EXAMPLES / "batch_trial_submission.py").read_text()
    assert example in python_blocks(ROOT / "docs" / "tutorial.md")


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(textwrap.dedent(readme_quick_start()))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(eval(result.stdout.strip().splitlines()[-1])) == {"x", "y"}
    assert (tmp_path / "run.json").exists()


def test_api_page_lists_every_config_option_and_error() -> None:
    api = (ROOT / "docs" / "api.md").read_text()
    for key in SchedulerConfig.model_fields:
        assert f"| `{key}` |" in api, key
    errors = [name for name in ax_scheduler.__all__ if name.endswith("Error")]
    for name in errors:
        assert re.search(rf"[├└]── {name}\b|^{name}\b", api, flags=re.MULTILINE), name


def test_api_reference_renders_every_public_name() -> None:
    reference = "".join(path.read_text() for path in (ROOT / "docs" / "reference").glob("*.md"))
    missing = [
        name for name in ax_scheduler.__all__ if f"::: ax_scheduler.{name}\n" not in reference
    ]
    assert not missing, f"no `::: ax_scheduler.<name>` in docs/reference/*.md for {missing}"
