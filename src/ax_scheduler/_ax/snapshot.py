"""Ax's JSON snapshot of a client, written fast, and the client rebuilt from one."""

from __future__ import annotations

from typing import Any, cast

from ax.api.client import Client
from ax.core.data import Data
from ax.core.experiment import Experiment
from ax.service.ax_client import AxClient
from ax.storage.json_store.decoder import object_from_json
from ax.storage.json_store.encoder import object_to_json
from ax.storage.json_store.encoders import experiment_to_dict
from ax.storage.json_store.registry import CORE_CLASS_ENCODER_REGISTRY, CORE_ENCODER_REGISTRY
from ax.storage.utils import data_to_data_by_trial

from .._exceptions import CheckpointError


class SnapshotEncoder:
    """Encodes an experiment and its generation strategy as Ax's JSON store does,
    caching each trial's data encoding between snapshots."""

    def __init__(self) -> None:
        self._data_json: dict[tuple[Any, ...], Any] = {}  # see _trial_data_json

    # Ax's snapshot re-encodes every trial's data each time: it splits the
    # experiment's data into per-trial DataFrames and builds, sorts and encodes
    # each (about 7 ms a trial: 8 s for a snapshot of 1,000 trials, and twice,
    # as the generation strategy embeds the experiment too). A trial's encoding
    # only changes with its data rows, so it is computed once per distinct rows.
    def _trial_data_json(self, rows: list[Any]) -> Any:
        key = tuple(tuple(vars(row).values()) for row in rows)
        encoded = self._data_json.get(key)
        if encoded is None:
            (by_timestamp,) = data_to_data_by_trial(Data(data_rows=rows)).values()
            encoded = self._data_json[key] = object_to_json(by_timestamp)
        return encoded

    def _encode_experiment(self, experiment: Experiment) -> dict[str, Any]:
        """``experiment_to_dict``, with each trial's data encoding cached."""
        if type(experiment) is not Experiment:  # a subclass: Ax's own way
            return CORE_ENCODER_REGISTRY[type(experiment)](experiment)
        encoded = experiment_to_dict(cast(Experiment, _WithoutData(experiment)))
        rows_by_trial: dict[int, list[Any]] = {}
        for row in experiment.data._data_rows:
            rows_by_trial.setdefault(row.trial_index, []).append(row)
        encoded["data_by_trial"] = {
            index: self._trial_data_json(rows) for index, rows in sorted(rows_by_trial.items())
        }
        return encoded

    def _to_json(self, obj: Any) -> Any:
        registry = {**CORE_ENCODER_REGISTRY, Experiment: self._encode_experiment}
        return object_to_json(
            obj, encoder_registry=registry, class_encoder_registry=CORE_CLASS_ENCODER_REGISTRY
        )

    def encode_pair(self, experiment: Experiment, strategy: Any) -> tuple[Any, Any]:
        """The experiment's and the generation strategy's JSON.

        The strategy embeds the same experiment (its top-level ``experiment``):
        that part is encoded once and shared, not walked a second time.
        """
        encoded = self._to_json(experiment)
        if strategy is None:
            return encoded, None
        stubs: list[Any] = []

        def stub(embedded: Experiment) -> dict[str, Any]:
            stubs.append(embedded)
            return {"__type": "ax_scheduler.shared_experiment"}

        registry = {**CORE_ENCODER_REGISTRY, Experiment: stub}
        strategy_json = object_to_json(
            strategy, encoder_registry=registry, class_encoder_registry=CORE_CLASS_ENCODER_REGISTRY
        )
        if stubs != [experiment] or not isinstance(strategy_json.get("experiment"), dict):
            return encoded, self._to_json(strategy)  # embedded elsewhere: Ax's full way
        strategy_json["experiment"] = encoded
        return encoded, strategy_json


class _WithoutData:
    """An experiment seen without its data, for ``experiment_to_dict``.

    The encoder reads ``experiment.__class__.__name__`` and attributes; this view
    passes all of them through except ``data``, which is empty, so Ax skips the
    per-trial data encoding that :class:`AxAdapter` does itself (cached).
    """

    data = Data()

    def __init__(self, experiment: Experiment) -> None:
        self._wrapped = experiment

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


def client_from_snapshot(snapshot: dict[str, Any]) -> AxClient | Client:
    """Rebuild the client a snapshot was written from.

    Accepts what :meth:`AxAdapter.snapshot` writes for either client, and a bare
    experiment written by Ax's ``json_store.save_experiment`` (loaded into a
    legacy ``AxClient`` with a default generation strategy).
    """
    kind = snapshot.get("_type") or snapshot.get("__type")
    if kind == "Client":
        return Client._from_json_snapshot(snapshot=snapshot)
    if kind == "AxClient":
        return AxClient.from_json_snapshot(serialized=dict(snapshot))
    if kind == "Experiment":
        client = AxClient()
        client._set_experiment(experiment=object_from_json(snapshot))
        client._set_generation_strategy()
        return client
    raise CheckpointError(
        f"not an ax-scheduler or Ax JSON snapshot: its type is {kind!r};"
        " expected 'AxClient', 'Client' or 'Experiment'"
    )
