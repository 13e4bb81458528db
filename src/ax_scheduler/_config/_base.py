"""What every options model shares: validation errors that name the argument, key and value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)

from .._exceptions import ConfigError


class _Options(BaseModel):
    """An options dict (``script_options``, ``ssh``, ...), validated with named errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _argument: ClassVar[str]

    @classmethod
    def from_user(cls, options: Mapping[str, Any] | None) -> Self:
        """Validate the user's dict, raising :class:`ConfigError` on bad input."""
        try:
            return cls.model_validate(dict(options or {}))
        except ValidationError as exc:
            message = describe_validation_error(exc, sorted(cls.model_fields), cls._argument)
            raise ConfigError(message) from None


def describe_validation_error(
    exc: ValidationError, allowed: list[str], argument: str = "config"
) -> str:
    """One readable line per problem: the key, what was wrong, the offending value.

    Args:
        exc: pydantic's error.
        allowed: The accepted keys, listed for an unknown one.
        argument: The argument the keys belong to (``config``, ``script_options``,
            ``hosts[0]`` ...), as the user wrote it.
    """
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or argument
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown {argument} key {key!r}; allowed keys: {', '.join(allowed)}")
        else:
            lines.append(f"{argument}[{key!r}]: {_reason(error)}, got {_shown(error['input'])!r}")
    return f"invalid {argument}: " + "; ".join(lines)


def _shown(value: Any) -> Any:
    """The offending value as an error shows it: a database URL without its password."""
    from .._sqlstore import is_database_url, redacted

    return redacted(value) if is_database_url(value) else value


def _reason(error: Any) -> str:
    """What was wrong: a validator's own ValueError as it said it, else pydantic's words."""
    cause = (error.get("ctx") or {}).get("error")
    text = str(cause) if error["type"] == "value_error" and cause is not None else error["msg"]
    return text[:1].lower() + text[1:]
