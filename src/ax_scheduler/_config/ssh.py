"""How to reach SSH hosts and a login node, and SSHRunner's options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .._exceptions import ConfigError
from ._base import _Options, describe_validation_error


class SSHOptions(_Options):
    """How to reach a host over SSH: the ``ssh={...}`` of a cluster or SSH runner.

    Host keys are verified against ``known_hosts`` unless ``verify_host_key`` is
    set to False, which must be said explicitly. Secrets (``password``,
    ``passphrase``) are kept as :class:`pydantic.SecretStr` and never printed.

    Attributes:
        host: Host name or address.
        port: SSH port.
        username: Remote user; None uses the local user name (or ~/.ssh/config).
        client_keys: Private key files; None uses the SSH agent and default keys.
        passphrase: Passphrase of encrypted client keys.
        password: Password authentication, if the server allows it.
        known_hosts: File of trusted host keys.
        verify_host_key: False skips host key verification (insecure).
        connect_timeout: Seconds to wait for a connection.
        keepalive_interval: Seconds between keep-alive probes, so a dead link is
            noticed even while no command runs.
        max_sessions: Commands in flight at once on the one connection (OpenSSH
            allows 10 sessions per connection by default).
        reconnect_attempts: How often a dropped connection is re-established
            (1, 2, 4 ... s apart) before the host counts as down.
    """

    _argument = "ssh"

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str | None = None
    client_keys: list[str] | None = None
    passphrase: SecretStr | None = None
    password: SecretStr | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    verify_host_key: bool = True
    connect_timeout: PositiveFloat = 15.0
    keepalive_interval: PositiveFloat = 30.0
    max_sessions: PositiveInt = 8
    reconnect_attempts: NonNegativeInt = 5

    @property
    def address(self) -> str:
        """``user@host:port`` for messages (no secrets)."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"


#: Environment variable names a host's ``env`` may set (they reach ``env NAME=VALUE``).
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SSHHost(SSHOptions):
    """One host of :class:`~ax_scheduler.SSHRunner`: how to reach it and what it runs.

    Everything :class:`SSHOptions` accepts, plus:

    Attributes:
        slots: Trials this host runs at once (its GPUs, say).
        python: The Python that runs the worker; it needs cloudpickle and the
            objective's imports.
        job_dir: Directory for the worker, objectives and trial files; relative
            paths start at the remote home.
        env: Extra environment variables of each trial (``PYTHONPATH``,
            ``CUDA_VISIBLE_DEVICES`` ...). Values travel as single arguments of
            ``env``, never through a shell.
    """

    _argument = "host"

    slots: PositiveInt = 1
    python: str = Field(default="python3", min_length=1)
    job_dir: str = Field(default="ax_scheduler_jobs", min_length=1)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("slots")
    @classmethod
    def _check_slots(cls, slots: int, info: ValidationInfo) -> int:
        # Each running trial holds one session on the host's one connection until
        # it exits; commands (reading results, killing) need at least one more.
        max_sessions = info.data.get("max_sessions")
        if max_sessions is not None and slots >= max_sessions:
            raise ValueError(
                f"too many for max_sessions={max_sessions}: each running trial holds one"
                " SSH session and commands need one more; set max_sessions to at least"
                f" {slots + 1} (the server's MaxSessions, default 10 with one taken by"
                " SFTP, must allow it)"
            )
        return slots

    @field_validator("env")
    @classmethod
    def _check_env(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not ENV_NAME.match(name):
                raise ValueError(f"environment variable name {name!r} is not like 'PYTHONPATH'")
        return env

    @classmethod
    def from_entry(cls, index: int, entry: Any) -> SSHHost:
        """Validate ``hosts[index]``: a dict of options, or a bare host name.

        Raises:
            ConfigError: A key is unknown or a value invalid; the message names
                ``hosts[index]``, the key and the value.
        """
        if isinstance(entry, SSHHost):
            return entry
        if isinstance(entry, str):
            entry = {"host": entry}
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"hosts[{index}] must be a dict like {{'host': 'gpu1', 'slots': 2}} or a"
                f" host name, got {entry!r}"
            )
        try:
            return cls.model_validate(dict(entry))
        except ValidationError as exc:
            message = describe_validation_error(exc, sorted(cls.model_fields), f"hosts[{index}]")
            raise ConfigError(message) from None


class SSHConfig(_Options):
    """The ``config={...}`` of :class:`~ax_scheduler.SSHRunner`.

    Attributes:
        max_resubmits: Resubmissions of a trial whose host went down (to another
            host) before it counts as failed.
        stop_grace_seconds: Seconds between SIGTERM and SIGKILL when a trial's
            remote process group is stopped.
        poll_interval: Seconds between checks of a trial's process after its
            connection dropped (it keeps running; the runner re-attaches), and
            between the reads of a host's running trials' progress files (one
            command per host).
    """

    _argument = "config"

    max_resubmits: NonNegativeInt = 2
    stop_grace_seconds: NonNegativeFloat = 5.0
    poll_interval: PositiveFloat = 1.0
