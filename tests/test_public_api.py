"""The package's public surface."""

from __future__ import annotations

import subprocess
import sys
import types

import ax_scheduler


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name in dir(ax_scheduler)
        if not name.startswith("_")
        and not isinstance(getattr(ax_scheduler, name), types.ModuleType)
    }
    public -= {"annotations", "TYPE_CHECKING", "Any"}
    assert sorted(ax_scheduler.__all__) == ax_scheduler.__all__
    assert set(ax_scheduler.__all__) == public
    for name in ax_scheduler.__all__:
        assert getattr(ax_scheduler, name).__doc__, f"{name} has no docstring"


def _defined_in(module_name: str, base: type) -> set[str]:
    """Public classes ``module_name`` (and, for a package, its modules) defines that
    derive from ``base``."""
    import importlib
    import pkgutil

    module = importlib.import_module(module_name)
    names = [module_name]
    if hasattr(module, "__path__"):
        names += [info.name for info in pkgutil.walk_packages(module.__path__, f"{module_name}.")]
    found = set()
    for name in names:
        for attribute, value in vars(importlib.import_module(name)).items():
            if (
                isinstance(value, type)
                and issubclass(value, base)
                and value.__module__ == name
                and not attribute.startswith("_")
            ):
                found.add(attribute)
    assert found, f"no {base.__name__} in {module_name}: the test looks in the wrong place"
    return found


def test_every_public_class_is_exported() -> None:
    """Built from where the classes are defined, not from __all__ (which __dir__ uses)."""
    from pydantic import BaseModel

    from ax_scheduler.runners._base import Runner

    expected = (
        _defined_in("ax_scheduler._exceptions", BaseException)
        | _defined_in("ax_scheduler._config", BaseModel)
        | {
            name
            for module in ("local", "ssh", "slurm", "docker")
            for name in _defined_in(f"ax_scheduler.runners.{module}", Runner)
        }
        | {"AxScheduler", "Batch", "Progress", "RunSummary", "Runner", "Job"}
        | {"FunctionObjective", "ScriptObjective", "ContainerObjective"}
    )
    missing = expected - set(ax_scheduler.__all__)
    assert not missing, f"public but not exported from ax_scheduler: {sorted(missing)}"
    for name in expected:
        assert getattr(ax_scheduler, name) is not None


def test_the_lazy_exports_and_the_type_checkers_view_agree() -> None:
    """Type checkers read the TYPE_CHECKING imports; users get _EXPORTS: one list."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(ax_scheduler))
    checked = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for imported in node.body
        if isinstance(imported, ast.ImportFrom)
        for alias in imported.names
    }
    assert checked == set(ax_scheduler.__all__)


def test_the_package_is_typed() -> None:
    from pathlib import Path

    assert (Path(ax_scheduler.__file__).parent / "py.typed").is_file()


def test_every_name_in_the_reference_pages_resolves() -> None:
    import re
    from pathlib import Path

    pages = (Path(__file__).parents[1] / "docs" / "reference").glob("*.md")
    named = {
        m for page in pages for m in re.findall(r"^::: ax_scheduler\.(\w+)", page.read_text(), re.M)
    }
    assert named
    assert named <= set(ax_scheduler.__all__) | {"testing"}


def test_worker_side_import_does_not_load_ax() -> None:
    code = "import sys, ax_scheduler._worker; print('ax' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
