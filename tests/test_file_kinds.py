"""A file of the wrong kind: every command and AxScheduler.resume say what it is and what to run.

The kinds are the experiment file (YAML), the checkpoint a run keeps, and the Ax
JSON snapshot save_experiment() writes; anything else gets what was expected.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ax_scheduler import AxScheduler, CheckpointError, JobLibRunner
from ax_scheduler.cli import app
from conftest import legacy_client, modern_client

EXAMPLES = Path(__file__).parents[1] / "examples"
START = "start it with `ax-scheduler run experiment.yaml`"
LOAD = "load it with AxScheduler.load_experiment(path, runner)"
SHOW_OR_LOAD = (
    "show its trials with `ax-scheduler status saved.json`, or continue it in Python"
    " with AxScheduler.load_experiment(path, runner)"
)
#: Files of no kind, and what each message says they hold.
NO_KIND = {
    "empty.json": (b"", "it is empty"),
    "blank.yaml": (b"\n  \n", "it is empty"),
    "binary.dat": (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "it is binary, not text"),
    "other.json": (
        b'{"results": [1, 2], "seed": 3}',
        "it holds JSON with the keys 'results', 'seed'",
    ),
    "list.json": (b"[1, 2]", "it holds a JSON list"),
    "broken.json": (b'{"results": ', "it is not valid JSON (Expecting value: line 1 column 13"),
    "notes.txt": (b"some notes\n", "it is neither JSON nor YAML with an experiment file's keys"),
}
EXPECTED = {
    "run": "expected YAML with the keys name, parameters, objectives, objective, runner and"
    " max_trials (docs/cli.md describes them)",
    "resume": "expected the checkpoint `ax-scheduler run` keeps (run.json by default,"
    " or the file's config.checkpoint_path)",
    "status": "expected the checkpoint `ax-scheduler run` keeps (run.json by default, or the"
    " file's config.checkpoint_path) or a file written by save_experiment() or Ax's"
    " save_to_json_file()",
}
EXPECTED["report"] = EXPECTED["status"]
NOT = {
    "run": "not an experiment file",
    "resume": "not a checkpoint",
    "status": "not a checkpoint or a save_experiment() file",
    "report": "not a checkpoint or a save_experiment() file",
}


def save_snapshot(client: Any, path: Path) -> Path:
    scheduler = AxScheduler(client, JobLibRunner(n_jobs=1))
    try:
        return scheduler.save_experiment(path)
    finally:
        scheduler.close()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What save_experiment() writes for the legacy client."""
    path = save_snapshot(legacy_client(), tmp_path_factory.mktemp("saved") / "saved.json")
    return dict(json.loads(path.read_text()))


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot: dict[str, Any]) -> Path:
    """The current directory, with a file of each kind and files of none."""
    from ax_scheduler._checkpoint import encode

    shutil.copy(EXAMPLES / "experiment.yaml", tmp_path / "experiment.yaml")
    (tmp_path / "saved.json").write_text(json.dumps(snapshot))
    header = {"experiment": "test_experiment", "runner": "joblib", "config": {}}
    (tmp_path / "run.json").write_text(encode(header, snapshot))
    for name, (content, _) in NO_KIND.items():
        (tmp_path / name).write_bytes(content)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(*args: str) -> str:
    """stderr of `ax-scheduler ARGS`, which must exit 2 with one line and no traceback."""
    result = CliRunner().invoke(app, list(args), prog_name="ax-scheduler")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.count("\n") == 1, result.stderr
    return str(result.stderr.removesuffix("\n"))


# -- the command line ---------------------------------------------------------------------
def test_run_given_a_checkpoint_says_to_resume_it(files: Path) -> None:
    message = refused("run", "run.json")
    assert message == (
        "error: run.json is an ax-scheduler checkpoint, not an experiment file: continue it"
        " with `ax-scheduler resume run.json`"
    )
    assert f"\n{message}\n" in (EXAMPLES.parent / "docs" / "cli.md").read_text()
    assert refused("resume", "run.json", "--experiment", "run.json") == (
        "error: run.json is an ax-scheduler checkpoint, not an experiment file: continue it"
        " with `ax-scheduler resume run.json`"
    )


def test_run_and_resume_given_a_save_experiment_file_say_what_reads_it(files: Path) -> None:
    assert refused("run", "saved.json") == (
        f"error: saved.json was written by save_experiment(), not an experiment file: {SHOW_OR_LOAD}"
    )
    assert refused("resume", "saved.json") == (
        f"error: saved.json was written by save_experiment(), not a checkpoint: {SHOW_OR_LOAD}"
    )


def test_resume_status_and_report_given_the_experiment_file_say_to_run_it(files: Path) -> None:
    assert refused("resume", "experiment.yaml") == (
        f"error: experiment.yaml is an experiment file, not a checkpoint: {START}"
    )
    for command in ("status", "report"):
        assert refused(command, "experiment.yaml") == (
            "error: experiment.yaml is an experiment file, not a checkpoint or a"
            f" save_experiment() file: {START}; `ax-scheduler {command}` reads the checkpoint"
            " the run keeps (run.json next to it, or its config.checkpoint_path)"
        )


def test_the_console_script_says_it_in_one_line(files: Path) -> None:
    script = Path(sys.executable).parent / "ax-scheduler"
    result = subprocess.run(
        [str(script), "resume", "experiment.yaml"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: experiment.yaml is an experiment file, not a checkpoint: {START}\n"
    )


def test_a_wrong_file_is_refused_before_ax_is_imported(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ax_scheduler.cli.logs

    def no_ax(verbose: bool) -> None:
        raise AssertionError("Ax imported for a file of the wrong kind")

    monkeypatch.setattr(ax_scheduler.cli.logs, "import_ax", no_ax)
    for command in ("run", "resume", "status", "report"):
        refused(command, "notes.txt")


@pytest.mark.parametrize("command", ["run", "resume", "status", "report"])
@pytest.mark.parametrize("name", NO_KIND)
def test_a_file_of_no_kind_gets_what_it_holds_and_what_was_expected(
    files: Path, command: str, name: str
) -> None:
    _, holds = NO_KIND[name]
    message = refused(command, name)
    assert message.startswith(f"error: {name} is {NOT[command]}: {holds}"), message
    assert message.endswith(f"; {EXPECTED[command]}"), message


def test_a_path_with_a_space_is_quoted_in_the_command_to_run(files: Path) -> None:
    (files / "my run.json").write_bytes((files / "run.json").read_bytes())
    assert refused("run", "my run.json").endswith("`ax-scheduler resume 'my run.json'`")


# -- AxScheduler.resume ---------------------------------------------------------------------
@pytest.mark.parametrize("make_client", [legacy_client, modern_client])
def test_resume_of_a_save_experiment_file_says_to_load_it(tmp_path: Path, make_client: Any) -> None:
    saved = save_snapshot(make_client(), tmp_path / "saved.json")
    with pytest.raises(CheckpointError) as raised:
        AxScheduler.resume(saved, JobLibRunner(n_jobs=1))
    assert str(raised.value) == (
        f"{str(saved)!r} was written by save_experiment(), not an ax-scheduler checkpoint: {LOAD}"
    )


def test_resume_of_the_experiment_file_says_to_run_it(files: Path) -> None:
    with pytest.raises(CheckpointError) as raised:
        AxScheduler.resume("experiment.yaml", JobLibRunner(n_jobs=1))
    assert str(raised.value) == (
        f"'experiment.yaml' is an experiment file, not an ax-scheduler checkpoint: {START}"
    )


@pytest.mark.parametrize("name", NO_KIND)
def test_resume_of_a_file_of_no_kind_says_what_it_holds(files: Path, name: str) -> None:
    _, holds = NO_KIND[name]
    with pytest.raises(CheckpointError) as raised:
        AxScheduler.resume(name, JobLibRunner(n_jobs=1))
    message = str(raised.value)
    assert message.startswith(f"{name!r} is not an ax-scheduler checkpoint: {holds}"), message
    assert message.endswith(
        "; expected the checkpoint a run writes to its config.checkpoint_path (JSON whose"
        " first key is 'ax_scheduler_checkpoint')"
    ), message


def test_resume_of_a_truncated_checkpoint_still_says_it_is_corrupt(files: Path) -> None:
    text = (files / "run.json").read_text()
    (files / "run.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match=r"'run.json' is corrupt: not JSON"):
        AxScheduler.resume("run.json", JobLibRunner(n_jobs=1))


# -- recognising the kind -----------------------------------------------------------------
def test_every_example_experiment_file_is_recognised() -> None:
    from ax_scheduler.cli.filekinds import Kind, file_kind

    for path in EXAMPLES.glob("*.yaml"):
        assert file_kind(path).kind is Kind.EXPERIMENT, path


def test_the_kind_is_found_whatever_the_order_and_layout_of_the_keys(
    tmp_path: Path, snapshot: dict[str, Any]
) -> None:
    from ax_scheduler.cli.filekinds import Kind, file_kind

    header = {"experiment": "x", "runner": "joblib", "config": {}, "client": snapshot}
    cases = {
        "reordered_checkpoint": ({**header, "ax_scheduler_checkpoint": 1}, Kind.CHECKPOINT),
        "reordered_snapshot": ({"experiment": {}, "_type": "AxClient"}, Kind.SNAPSHOT),
        "json_store_experiment": (snapshot["experiment"], Kind.SNAPSHOT),
        "json_experiment_file": ({"name": "x", "parameters": []}, Kind.EXPERIMENT),
    }
    for name, (data, kind) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data, indent=2))
        assert file_kind(path).kind is kind, name
    (tmp_path / "flow.txt").write_text("{name: x, parameters: [], max_trials: 2}\n")
    assert file_kind(tmp_path / "flow.txt").kind is Kind.EXPERIMENT


def test_the_keys_that_mark_an_experiment_file_are_the_required_ones() -> None:
    from ax_scheduler.cli.filekinds import EXPERIMENT_KEYS
    from ax_scheduler.cli.models import ExperimentSpec

    required = [name for name, field in ExperimentSpec.model_fields.items() if field.is_required()]
    assert list(EXPERIMENT_KEYS) == required


def test_recognising_a_file_reads_its_start_only_and_imports_no_ax(files: Path) -> None:
    code = (
        "import sys; from ax_scheduler.cli.filekinds import file_kind;"
        " print([file_kind(name).kind.name for name in sys.argv[1:]], 'ax' in sys.modules)"
    )
    big = files / "big.json"  # a checkpoint's first key says what it is: the rest is not read
    big.write_text('{"ax_scheduler_checkpoint": 1, "client": "' + "x" * 10_000_000)
    names = ["big.json", "saved.json", "experiment.yaml"]
    result = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=files, timeout=60
    )
    assert result.stdout.split("]")[1].strip() == "False", result.stderr
    assert result.stdout.startswith("['CHECKPOINT', 'SNAPSHOT', 'EXPERIMENT']"), result.stdout
