"""Config: a pydantic model; bad input names the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from ax_scheduler import AxScheduler, ConfigError, JobLibRunner, SchedulerConfig
from conftest import legacy_client


def test_defaults() -> None:
    config = SchedulerConfig.from_user(None)
    assert config.synchronous is True
    assert config.trial_timeout is None
    assert config.max_parallel_trials is None


def test_legacy_name_for_trial_timeout_is_accepted() -> None:
    assert SchedulerConfig.from_user({"max_trial_monitoring_time": 60}).trial_timeout == 60


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown config key 'synchronus'; allowed keys: .*synchronous"
    ):
        SchedulerConfig.from_user({"synchronus": False})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"monitoring_interval": -1},
            "config['monitoring_interval']: input should be greater than 0, got -1",
        ),
        ({"synchronous": "sometimes"}, "config['synchronous']: input should be a valid boolean"),
        (
            {"max_parallel_trials": 0},
            "config['max_parallel_trials']: input should be greater than 0, got 0",
        ),
        ({"trial_timeout": "soon"}, "config['trial_timeout']"),
    ],
)
def test_bad_values_name_key_and_value(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SchedulerConfig.from_user(config)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_scheduler_rejects_bad_config_before_doing_anything() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'n_jobs'"):
        AxScheduler(legacy_client(), JobLibRunner(n_jobs=1), config={"n_jobs": 4})


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="config must be a dict of options, got list"):
        SchedulerConfig.from_user([("synchronous", False)])  # type: ignore[arg-type]


def test_max_parallel_trials_caps_the_runner_capacity() -> None:
    scheduler = AxScheduler(
        legacy_client(), JobLibRunner(n_jobs=4), config={"max_parallel_trials": 2}
    )
    assert scheduler._core.capacity == 2
    scheduler.close()


def test_wrong_client_and_runner_types_are_named() -> None:
    with pytest.raises(
        TypeError, match=r"needs an ax\.service\.ax_client\.AxClient or an ax\.api\.client\.Client"
    ):
        AxScheduler(object(), JobLibRunner(n_jobs=1))
    with pytest.raises(TypeError, match="runner must be an ax_scheduler runner"):
        AxScheduler(legacy_client(), "local")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_jobs": 0}, "n_jobs must be a positive int or -1 for all cores, got 0"),
        ({"n_jobs": -1000}, "leaves no worker"),
        ({"n_jobs": 2, "backend": "dask"}, "backend must be one of loky, threading, got 'dask'"),
    ],
)
def test_joblib_runner_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobLibRunner(**kwargs)  # type: ignore[arg-type]


def test_joblib_runner_takes_the_older_packages_config_argument() -> None:
    assert JobLibRunner(n_jobs=2, config={}).capacity == 2
    assert JobLibRunner(n_jobs=2, config=None).capacity == 2


@pytest.mark.parametrize(
    ("config", "instead"),
    [
        ({"tmp_dir": "./tmp"}, "config={'job_output_dir': <tmp_dir>}"),
        ({"container_engine": "docker"}, "DockerRunner()"),
        ({"n_job": 4}, "unknown config key 'n_job': JobLibRunner takes n_jobs and backend"),
    ],
)
def test_joblib_runner_config_keys_say_what_to_write_instead(
    config: dict[str, object], instead: str
) -> None:
    # The older package's enhanced example passes both tmp_dir and container_engine.
    with pytest.raises(ConfigError) as raised:
        JobLibRunner(n_jobs=-1, config=config)
    assert instead in str(raised.value)
    assert repr(next(iter(config))) in str(raised.value)


def test_n_jobs_minus_one_means_all_cores() -> None:
    from joblib import cpu_count

    assert JobLibRunner(n_jobs=-1).capacity == cpu_count()


def test_a_bad_value_is_quoted_as_given_not_rewritten() -> None:
    # The argument's name was once put in by replacing "config" in the whole message,
    # values included.
    from ax_scheduler import ScriptOptions, SSHHost

    with pytest.raises(ConfigError) as raised:
        ScriptOptions.from_user({"args": "my_config.yaml"})
    assert "script_options['args']" in str(raised.value)
    assert "got 'my_config.yaml'" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        SSHHost.from_entry(2, {"host": "gpu1", "slots": "config"})
    assert "hosts[2]['slots']" in str(raised.value)
    assert "got 'config'" in str(raised.value)


def test_a_bool_for_a_number_names_the_value_once() -> None:
    with pytest.raises(ConfigError) as raised:
        SchedulerConfig.from_user({"trial_timeout": True})
    message = str(raised.value)
    assert "expected a number or None, not a bool, got True" in message
    assert message.count("True") == 1
