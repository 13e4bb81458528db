"""The help screens: a usage line with the arguments' names, and flags without a type.

typer 0.27 began writing a required argument as ``{file}`` in the usage line;
typer 0.29's rich help puts ``<bool>`` after every flag (``--overwrite``,
``--version``, ``--help``), as if it took a value, and keeps a docstring's line
breaks. The command and group classes here keep the conventions the help had
before, under every typer release ``typer>=0.12`` allows: ``Usage: ax-scheduler
run [OPTIONS] FILE``, a flag shown bare, paragraphs wrapped at the terminal's width.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup


class Command(TyperCommand):
    """An ``ax-scheduler`` command (``app.command(cls=Command)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflowed(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        arguments = [param for param in self.get_params(ctx) if isinstance(param, TyperArgument)]
        return pieces + [_usage_name(argument) for argument in arguments]


class Group(TyperGroup):
    """The ``ax-scheduler`` command itself (``typer.Typer(cls=Group)``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))


def _bare_flags(params: list[Any]) -> list[Any]:
    """The parameters, each flag with an empty metavar.

    An option's metavar is what the help shows for its value, in place of its
    type: empty, nothing is shown after a flag. Set here, where the help reads
    the parameters, it also reaches ``--help``, which typer adds itself.
    """
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def _usage_name(argument: Any) -> str:
    """``FILE``, ``[FILE]`` if optional, ``FILE...`` if it takes several."""
    name = argument.metavar or str(argument.name).upper()
    name = name if argument.required else f"[{name}]"
    return name if argument.nargs == 1 else f"{name}..."


def _reflowed(text: str | None) -> str | None:
    """Each paragraph of a docstring on one line, for rich to wrap where it fits."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        " ".join(line.strip() for line in lines.splitlines()) for lines in paragraphs
    )
