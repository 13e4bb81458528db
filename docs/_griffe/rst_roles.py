"""Render the package's Sphinx-style roles as mkdocstrings cross-references.

The docstrings write ``:class:`~ax_scheduler.SchedulerConfig``` and
``:meth:`run``` (Sphinx roles). mkdocstrings renders Markdown, where those would
show as literal text, so this griffe extension rewrites each role at load time:

- a target that resolves to a public, documented object (``ax_scheduler.X`` or a
  member of one, relative names looked up in the enclosing class first) becomes
  ``[`X`][ax_scheduler.X]``, which autorefs links, and which fails
  ``mkdocs build --strict`` if that object is not rendered on any page;
- any other target (a private helper, a third-party class) becomes plain code.

``~`` shows the last name only, as in Sphinx; ``:meth:`` and ``:func:`` get ``()``.
A paragraph ending in ``::`` (a reST literal block) ends in ``:`` instead.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|data|exc|mod|obj):`(~?)\.?([\w.]+)`")
LITERAL_BLOCK = re.compile(r"(\S)::$", flags=re.MULTILINE)
PACKAGE = "ax_scheduler"


class RstRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != PACKAGE:
            return
        public: dict[str, str] = {}  # canonical path -> the public name users import
        for name, member in pkg.members.items():
            if member.is_alias and member.target_path.startswith(PACKAGE + "."):
                public[member.final_target.path] = f"{PACKAGE}.{name}"
        for obj in walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value, obj, pkg, public)


def walk(obj: griffe.Object) -> list[griffe.Object]:
    """The object and every object defined under it (aliases skipped)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(walk(member))  # type: ignore[arg-type]
    return found


def rewrite(text: str, obj: griffe.Object, pkg: griffe.Module, public: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        short, target = match.group(1), match.group(2)
        role = match.group(0)[1:].split(":", 1)[0]
        shown = target.rsplit(".", 1)[-1] if short else target
        if role in ("meth", "func"):
            shown += "()"
        path = resolve(target, obj, pkg, public)
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"

    return LITERAL_BLOCK.sub(r"\1:", ROLE.sub(replace, text))


def resolve(
    target: str, obj: griffe.Object, pkg: griffe.Module, public: dict[str, str]
) -> str | None:
    """The public path of ``target`` as seen from ``obj``, if it is documented."""
    first = target.split(".", 1)[0]
    if target.startswith(PACKAGE + "."):
        path = target
    elif f"{PACKAGE}.{first}" in public.values():
        path = f"{PACKAGE}.{target}"
    else:
        cls = obj if obj.is_class else obj.parent
        if cls is None or not cls.is_class or first not in cls.all_members:
            return None
        owner = public.get(cls.path)
        if owner is None:
            return None
        path = f"{owner}.{target}"
    parts = path.split(".")[1:]
    if any(part.startswith("_") for part in parts):
        return None
    try:
        found = pkg[".".join(parts)]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return path if found.docstring is not None else None
