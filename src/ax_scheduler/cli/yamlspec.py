"""YAML whose errors point at ``file:line: key``: the experiment file's error reporting.

The YAML is composed into nodes that remember their lines; a pydantic error's
``loc`` is walked down those nodes to the line of the deepest key the file has.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError

from .._exceptions import SpecError

Loc = tuple[str | int, ...]

#: The pydantic error type of a validator whose message names the bad value itself
#: (``PydanticCustomError(INPUT_NAMED, message)``): no "(got ...)" is added to it.
INPUT_NAMED = "input_named"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: where (a pydantic-style ``loc``) and what."""

    loc: Loc
    message: str
    line: int | None = None  # known without walking loc (a YAML syntax error)


@dataclass(frozen=True)
class Source:
    """Where a spec came from, and the YAML nodes that map keys to lines."""

    name: str
    root: Any = None  # yaml.Node, or None for a spec stored in a checkpoint

    def describe(self, problem: Problem) -> str:
        """``file:line: key: message``."""
        line = problem.line or self.line_of(problem.loc)
        where = f"{self.name}:{line}" if line is not None else self.name
        key = format_loc(problem.loc)
        return f"{where}: {key}: {problem.message}" if key else f"{where}: {problem.message}"

    def line_of(self, loc: Loc) -> int | None:
        """The line of the deepest key of ``loc`` the file has (1-based)."""
        node = self.root
        if node is None:
            return None
        line: int = node.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = [(k, v) for k, v in node.value if k.value == str(part)]
                if found:
                    key, node = found[-1]
                    line = key.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and part in range(len(node.value)):
                node = node.value[part]
                line = node.start_mark.line + 1
        return line

    def error(self, problems: list[Problem]) -> SpecError:
        """A :class:`SpecError` with ``problems``, in the order of their lines."""
        ordered = sorted(
            problems, key=lambda problem: problem.line or self.line_of(problem.loc) or 0
        )
        return SpecError([self.describe(problem) for problem in ordered])

    def fail(self, loc: Loc, message: str, line: int | None = None) -> SpecError:
        """A :class:`SpecError` with one problem."""
        return self.error([Problem(loc, message, line)])


def format_loc(loc: Loc) -> str:
    """``("parameters", 1, "bounds")`` -> ``parameters[1].bounds``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.removeprefix(".")


def problems_of(exc: ValidationError, model: Any, prefix: Loc = ()) -> list[Problem]:
    """pydantic's errors as problems, with the valid keys named for an unknown one.

    A required key that is missing because it was misspelt is reported once, as
    the unknown key with its suggestion.
    """
    problems: list[Problem] = []
    missing: list[Loc] = []
    suggested: set[Loc] = set()
    for error in exc.errors():
        loc = prefix + tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            valid = valid_keys_at(model, tuple(error["loc"])[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            suggested.update((*loc[:-1], key) for key in close)
            problems.append(Problem(loc, unknown_key_message(close, valid)))
        elif error["type"] == "missing":
            missing.append(loc)
        else:
            problems.append(Problem(loc, _message(error)))
    return problems + [
        Problem(loc, "required key is missing") for loc in missing if loc not in suggested
    ]


def _message(error: Any) -> str:
    """pydantic's message, or a validator's own (without pydantic's "Value error, "),
    and the bad value unless the message names it."""
    raised = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
    message = str(raised) if raised is not None else str(error["msg"])
    scalar = isinstance(error["input"], str | int | float | bool) or error["input"] is None
    if scalar and error["type"] != INPUT_NAMED:
        message += f" (got {error['input']!r})"
    return message


def unknown_key_message(close: list[str], valid: list[str]) -> str:
    """``unknown key; did you mean 'max_trials'? Valid keys here: ...``."""
    hint = f"did you mean {close[0]!r}? Valid" if close else "valid"
    return f"unknown key; {hint} keys here: {', '.join(valid)}"


def valid_keys_at(model: Any, loc: Loc) -> list[str]:
    """The keys a model accepts at ``loc`` (for suggestions), or [] if not a model there."""
    annotation = model
    for part in loc:
        annotation = _step_into(annotation, part)
    found = _model_in(annotation)
    if found is None:
        return []
    allowed = getattr(found, "allowed_keys", None)
    return list(allowed()) if callable(allowed) else sorted(found.model_fields)


def _step_into(annotation: Any, part: str | int) -> Any:
    model = _model_in(annotation)
    if model is not None:
        field = model.model_fields.get(str(part))
        return None if field is None else field.annotation
    args = [arg for arg in typing.get_args(_unannotated(annotation)) if arg is not type(None)]
    return args[-1] if args else None  # list[X] -> X, dict[K, X] -> X


def _unannotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation is (``X``, ``X | None``, ``Annotated[X, ...]``), if any."""
    annotation = _unannotated(annotation)
    # The members of a union, not the items of a dict[str, X] or a list[X].
    members = typing.get_args(annotation) if _is_union(annotation) else ()
    candidates = [annotation, *members]
    for candidate in map(_unannotated, candidates):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def parse_yaml(text: str, source: Source) -> tuple[Any, Any]:
    """The YAML's root node (for lines) and its data, which must be a mapping.

    Raises:
        SpecError: A syntax error, or the file holds no mapping.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise source.fail((), *yaml_problem(exc)) from None
    finally:
        loader.dispose()
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise source.fail((), f"expected a mapping of keys (name: ..., parameters: ...), got {got}")
    return root, data


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, int | None]:
    """The message and line of a YAML syntax error, with where the broken part began."""
    mark = getattr(exc, "problem_mark", None)
    message = f"YAML syntax error: {getattr(exc, 'problem', None) or exc}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        message += f" ({context} that began on line {context_mark.line + 1})"
    elif context:
        message += f" ({context})"
    return message, None if mark is None else mark.line + 1


def check_duplicate_keys(node: Any, source: Source, loc: Loc = ()) -> None:
    """Refuse a key given twice in one mapping.

    PyYAML keeps the last of two equal keys silently: the first would be ignored.

    Raises:
        SpecError: The second of two equal keys, with the first's line.
    """
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if key.value in seen:
                message = f"duplicate key (first on line {seen[key.value]})"
                raise source.fail((*loc, key.value), message, key.start_mark.line + 1)
            seen[key.value] = key.start_mark.line + 1
            check_duplicate_keys(value, source, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            check_duplicate_keys(item, source, (*loc, index))
