"""Checkpoints in a database: Ax's own SQL store, written a changed trial at a time.

``checkpoint_path="sqlite:///run.db"`` (any SQLAlchemy URL: ``mysql+pymysql://...``,
``postgresql://...``) keeps the run in Ax's SQL store (``ax.storage.sqa_store``):
the experiment and generation strategy are saved whole once, then each write saves
only the trials changed since the last (their status, run metadata and data) and
the generator runs made since. A JSON checkpoint rewrites the whole experiment
every time, O(trials) per write; this is O(changes).

Beside Ax's tables, one of ours (``ax_scheduler_runs``) holds a row per experiment:
the checkpoint header (runner kind, options, client type) and the results table, so
``ax-scheduler status`` reads a database with SQLAlchemy alone, without Ax.

Ax's store keeps one engine per process (``init_engine_and_session_factory``): a
client that already saves to a database of its own (``db_settings`` /
``storage_config``) can only checkpoint to that same database, where its own calls
and this store's writes then keep one consistent record.

Every function here that touches Ax objects runs on the scheduler's Ax thread.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._exceptions import CheckpointError

if TYPE_CHECKING:
    from ._ax import AxAdapter

#: A string that is a database URL (``dialect[+driver]://...``), not a file path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Our table beside Ax's.
RUNS_TABLE = "ax_scheduler_runs"


def is_database_url(target: object) -> bool:
    """Whether a ``checkpoint_path`` value names a database rather than a file."""
    return isinstance(target, str) and bool(_URL.match(target))


def check_database_url(url: str) -> str:
    """``url`` if SQLAlchemy can parse it and has its driver.

    Raises:
        ValueError: It cannot (the message says why, and what a valid URL looks like).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    example = "e.g. 'sqlite:///run.db' or 'mysql+pymysql://user:password@host/database'"
    try:
        make_url(url).get_dialect()
    except NoSuchModuleError:  # an ArgumentError too: caught first
        raise ValueError(f"no SQLAlchemy dialect for {redacted(url)!r}; {example}") from None
    except ArgumentError as exc:
        raise ValueError(f"{redacted(url)!r} is not a database URL ({exc}); {example}") from None
    except ImportError as exc:
        raise ValueError(
            f"the database driver for {redacted(url)!r} is not installed ({exc}); for"
            " MySQL/MariaDB: pip install 'ax-scheduler[mysql]'"
        ) from None
    return url


def redacted(url: str) -> str:
    """``url`` with its password hidden: URLs are logged and shown in errors."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


@dataclass(frozen=True)
class StoredRun:
    """Our row of one experiment in a database.

    Attributes:
        header: The checkpoint header (``experiment``, ``runner``, ``config``,
            ``client_type`` ...), as a JSON checkpoint has it.
        table: The results table (``_table.TrialTable.to_json()``), or None.
    """

    header: dict[str, Any]
    table: dict[str, Any] | None


def _runs_table(metadata: Any) -> Any:
    from sqlalchemy import Column, String, Table, Text
    from sqlalchemy.dialects.mysql import LONGTEXT

    text = Text().with_variant(LONGTEXT(), "mysql", "mariadb")
    return Table(
        RUNS_TABLE,
        metadata,
        Column("experiment", String(255), primary_key=True),
        Column("header", text, nullable=False),
        Column("results", text),
    )


def _engine(url: str) -> Any:
    """Ax's store engine, set to ``url`` unless it is already (tables created).

    Ax keeps ONE engine per process: whoever set it last (a client with
    ``db_settings``, another scheduler) decides where Ax's save functions write,
    so it is checked before every write, not remembered.
    """
    from ax.storage.sqa_store import db
    from sqlalchemy import MetaData
    from sqlalchemy.engine import make_url

    if db.SESSION_FACTORY is not None and db.get_engine().url == make_url(url):
        return db.get_engine()
    db.init_engine_and_session_factory(url=url, force_init=True)
    engine = db.get_engine()
    if engine.dialect.name in ("mysql", "mariadb"):
        _text_for_long_strings(db.Base.metadata)
    db.create_all_tables(engine)
    metadata = MetaData()
    _runs_table(metadata)
    metadata.create_all(engine)
    return engine


#: The longest VARCHAR a MySQL row can hold in utf8mb4 (65,535 bytes / 4).
_MYSQL_VARCHAR_MAX = 16383


def _text_for_long_strings(metadata: Any) -> None:
    """Make Ax's over-long String columns TEXT, so MySQL/MariaDB can create them.

    Ax 1.3 declares ``metric_v2.expression_str`` as ``String(LONGTEXT_BYTES)``,
    which MySQL renders as VARCHAR(4294967295) and refuses ("Column length too
    big"); Ax's own MySQL schema is made elsewhere. As TEXT of the same length it
    holds the same values.
    """
    from sqlalchemy import String, Text

    for table in metadata.tables.values():
        for column in table.columns:
            kind = column.type
            if type(kind) is String and (kind.length or 0) > _MYSQL_VARCHAR_MAX:
                column.type = Text(kind.length)


class SqlStore:
    """Writes a run's checkpoint into a database (call every method on the Ax thread).

    Args:
        url: The SQLAlchemy URL.
        adapter: The run's client.
    """

    def __init__(self, url: str, adapter: AxAdapter) -> None:
        self.url = url
        self._adapter = adapter
        # Generator runs of the strategy already in the database: all of them if
        # the strategy came from it (a resumed run, a client saving to it itself).
        strategy = adapter._generation_strategy()
        saved = strategy is not None and strategy.db_id is not None
        self._saved_runs = len(strategy._generator_runs) if saved else 0
        own = _own_database(adapter)
        if own is not None and own != url:
            raise CheckpointError(
                f"checkpoint_path {redacted(url)!r} is not the database this Ax client"
                f" already saves to ({redacted(own)!r}): Ax's SQL store has one database"
                " per process; checkpoint to that one (or give the client none)"
            )

    def write(self, header: dict[str, Any], table: dict[str, Any] | None) -> None:
        """Save what changed since the last write, and our row.

        Raises:
            CheckpointError: The database refused the write (the changed trials
                are kept for the next one).
        """
        touched = self._adapter.take_touched()
        try:
            engine = _engine(self.url)
            self._save_ax(touched)
            self._save_row(engine, header, table)
        except Exception as exc:  # SQLAlchemy's errors, and Ax's own (ValueError ...)
            self._adapter.touch(touched)
            raise CheckpointError(
                f"cannot write the checkpoint to {redacted(self.url)!r}: {exc}"
            ) from exc

    def _save_ax(self, touched: set[int]) -> None:
        from ax.storage.sqa_store.save import (
            save_experiment,
            save_generation_strategy,
            save_or_update_trials,
            update_generation_strategy,
        )

        experiment = self._adapter.experiment
        strategy = self._adapter._generation_strategy()
        if experiment.db_id is None:
            save_experiment(experiment)
        elif touched:
            trials = [experiment.trials[index] for index in sorted(touched)]
            save_or_update_trials(experiment=experiment, trials=trials)
        if strategy is None:
            return
        runs = strategy._generator_runs
        if strategy.db_id is None:
            save_generation_strategy(generation_strategy=strategy)
        elif len(runs) > self._saved_runs:
            update_generation_strategy(
                generation_strategy=strategy, generator_runs=runs[self._saved_runs :]
            )
        self._saved_runs = len(runs)

    @staticmethod
    def _save_row(engine: Any, header: dict[str, Any], table: dict[str, Any] | None) -> None:
        from sqlalchemy import MetaData, delete, insert

        runs = _runs_table(MetaData())
        row = {
            "experiment": header["experiment"],
            "header": json.dumps(header),
            "results": None if table is None else json.dumps(table),
        }
        with engine.begin() as connection:  # one transaction: the row is whole or old
            connection.execute(delete(runs).where(runs.c.experiment == row["experiment"]))
            connection.execute(insert(runs).values(**row))


def _own_database(adapter: AxAdapter) -> str | None:
    """The URL the client itself saves to, or None."""
    settings = getattr(adapter.client, "_db_settings", None)
    url = getattr(settings, "url", None)
    return str(url) if url else None


def check_database_overwrite(url: str, experiment: str, trial_count: int) -> None:
    """Refuse to start writing over another run's checkpoint in the database.

    Raises:
        CheckpointError: The database cannot be reached, or holds another
            experiment's run, or one of this experiment with more trials.
    """
    runs = stored_runs(url, missing_ok=True)
    others = sorted(name for name in runs if name != experiment)
    if others:
        raise CheckpointError(
            f"checkpoint_path {redacted(url)!r} holds the checkpoint of experiment"
            f" {others[0]!r}, not of {experiment!r}: give each run its own database, or"
            " continue that run with AxScheduler.resume(url, runner)"
        )
    stored = runs.get(experiment)
    rows = len(stored.table.get("rows", [])) if stored is not None and stored.table else 0
    if rows > trial_count:
        raise CheckpointError(
            f"checkpoint_path {redacted(url)!r} holds a run of {experiment!r} with {rows}"
            f" trials, more than this client's {trial_count}: continue it with"
            " AxScheduler.resume(url, runner), or choose another database"
        )


def stored_runs(url: str, *, missing_ok: bool = False) -> dict[str, StoredRun]:
    """Our rows in the database at ``url``, by experiment (SQLAlchemy only, no Ax).

    Args:
        url: The database.
        missing_ok: A database without our table holds no run (else an error).

    Raises:
        CheckpointError: The database cannot be reached, or holds no run.
    """
    from sqlalchemy import MetaData, create_engine, inspect, select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    parsed = make_url(url)
    database = parsed.database or ""
    on_disk = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if on_disk and not os.path.exists(database):  # reading must not create an empty one
        if missing_ok:
            return {}
        raise CheckpointError(f"checkpoint {redacted(url)!r}: {database} does not exist")
    try:
        engine = create_engine(url)
        try:
            if not inspect(engine).has_table(RUNS_TABLE):
                if missing_ok:
                    return {}
                raise CheckpointError(
                    f"database {redacted(url)!r} holds no ax-scheduler checkpoint (no"
                    f" {RUNS_TABLE} table): was it a run's checkpoint_path?"
                )
            runs = _runs_table(MetaData())
            with engine.connect() as connection:
                rows = connection.execute(select(runs)).all()
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        raise CheckpointError(f"cannot read the database {redacted(url)!r}: {exc}") from None
    return {
        row.experiment: StoredRun(
            json.loads(row.header), None if row.results is None else json.loads(row.results)
        )
        for row in rows
    }


def the_stored_run(url: str) -> StoredRun:
    """The one run in the database at ``url``.

    Raises:
        CheckpointError: It holds none, or several (named).
    """
    runs = stored_runs(url)
    if len(runs) != 1:
        names = ", ".join(repr(name) for name in sorted(runs)) or "none"
        raise CheckpointError(
            f"database {redacted(url)!r} holds the checkpoints of {len(runs)} experiments"
            f" ({names}); a checkpoint database holds one run: give each run its own"
            " database"
        )
    return next(iter(runs.values()))


def load_client(url: str, experiment: str, client_type: str) -> Any:
    """The Ax client of a run stored at ``url`` (on the caller's thread: before any run).

    Raises:
        CheckpointError: Ax cannot load the experiment.
    """
    from ax.api.client import Client
    from ax.service.ax_client import AxClient
    from ax.storage.sqa_store.load import (
        load_experiment,
        load_generation_strategy_by_experiment_name,
    )

    try:
        _engine(url)
        loaded = load_experiment(experiment)
        strategy = load_generation_strategy_by_experiment_name(experiment, experiment=loaded)
    except Exception as exc:  # noqa: BLE001 - whatever Ax's decoder raises
        raise CheckpointError(
            f"checkpoint {redacted(url)!r} is corrupt: Ax cannot load experiment"
            f" {experiment!r} ({type(exc).__name__}: {exc})"
        ) from None
    client: Any
    if client_type == "Client":
        client = Client()
        client._maybe_experiment = loaded
        client._maybe_generation_strategy = strategy
    else:
        client = AxClient(verbose_logging=False)
        client._experiment = loaded
        client._generation_strategy = strategy
    return client
