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


def test_worker_side_import_does_not_load_ax() -> None:
    code = "import sys, ax_scheduler._worker; print('ax' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
