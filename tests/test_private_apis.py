"""The private APIs of other libraries that ax-scheduler relies on, where no public
way exists. Each check names what would break, so an upgrade that removes one
fails here first, loudly, instead of somewhere obscure.

pyproject.toml pins ax-platform to the minor version these tests ran on.
"""

from __future__ import annotations

import inspect
import threading

import pytest


def test_threading_still_has_register_atexit_and_loky_still_uses_it() -> None:
    # _shutdown.arm: our exit hook must run before loky's pool-joining hook, or a
    # script ending with background trials hangs until they finish.
    assert callable(getattr(threading, "_register_atexit", None)), (
        "threading._register_atexit is gone: ax_scheduler._shutdown.arm needs another"
        " way to run before loky joins its pools at exit"
    )
    import loky.process_executor

    assert "_register_atexit" in inspect.getsource(loky.process_executor), (
        "loky no longer registers its exit hook with threading._register_atexit:"
        " check that ax_scheduler._shutdown still runs before it"
    )


#: Methods; the instance attributes are checked on live clients below.
AX_PRIVATE = [
    # (module, class, attribute, where ax-scheduler reads it)
    ("ax.service.ax_client", "AxClient", "_set_experiment", "client_from_snapshot"),
    ("ax.service.ax_client", "AxClient", "_set_generation_strategy", "client_from_snapshot"),
    ("ax.api.client", "Client", "_from_json_snapshot", "client_from_snapshot"),
    ("ax.api.client", "Client", "_generation_strategy_or_choose", "ModernAdapter"),
    # AxAdapter._generate_jointly saves what it generates as the clients' own calls do.
    *(
        (module, cls, name, "AxAdapter._generate_jointly")
        for module, cls in (("ax.service.ax_client", "AxClient"), ("ax.api.client", "Client"))
        for name in (
            "_save_generation_strategy_to_db_if_possible",
            "_save_or_update_trials_in_db_if_possible",
        )
    ),
]


@pytest.mark.parametrize(("module", "cls", "attribute", "user"), AX_PRIVATE)
def test_ax_still_has_the_private_names_we_read(
    module: str, cls: str, attribute: str, user: str
) -> None:
    import importlib

    owner = getattr(importlib.import_module(module), cls)
    assert hasattr(owner, attribute), f"Ax's {cls}.{attribute} is gone; {user} reads it"


def test_ax_clients_keep_their_private_state_where_we_read_it() -> None:
    from conftest import legacy_client, modern_client

    legacy = legacy_client()
    assert legacy._generation_strategy is not None, "AxClient._generation_strategy: snapshots"
    assert isinstance(legacy._enforce_sequential_optimization, bool), "AxClient snapshots"
    modern = modern_client()
    assert modern._experiment is not None, "Client._experiment: ModernAdapter.experiment"
    assert modern._maybe_generation_strategy is not None, "ModernAdapter._generation_strategy"
    for client in (legacy, modern):  # AxAdapter._generate_jointly seeds Ax's generation
        assert hasattr(client, "_random_seed"), f"{type(client).__name__}._random_seed"
    assert hasattr(modern._experiment.data, "_data_rows"), "AxAdapter._encode_experiment"
