"""The docs tell the truth: their code is code the test suite runs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ax_scheduler
from ax_scheduler import SchedulerConfig

ROOT = Path(__file__).parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
SOURCES = [*sorted((ROOT / "examples").glob("*.py")), ROOT / "tests" / "objectives.py"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_python_block_in_docs_is_code_that_runs_in_an_example(doc: Path) -> None:
    sources = [source.read_text() for source in SOURCES]
    for block in python_blocks(doc):
        assert any(block in source for source in sources), f"not in any example:\n{block}"


def test_tutorial_complete_example_is_the_example_file() -> None:
    example = (ROOT / "examples" / "batch_trial_submission.py").read_text()
    assert example in python_blocks(ROOT / "docs" / "tutorial.md")


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path: Path) -> None:
    (block,) = python_blocks(ROOT / "README.md")
    script = tmp_path / "quickstart.py"
    script.write_text(textwrap.dedent(block))
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
        assert re.search(rf"[├└]── {name}\b|^{name}$", api, flags=re.MULTILINE), name
