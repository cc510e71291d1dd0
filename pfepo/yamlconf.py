"""YAML loading with source positions, so every config/policy error names FILE:LINE:COL and the field.

pydantic reports errors by path (``regions.1.endpoints.0.ip``); operators need the line in their file.
We compose the YAML into a node tree once, keep a path -> (line, col) index, and translate errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class Problem:
    """One located problem in a file; ``str()`` gives ``FILE:LINE:COL: message``."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, never just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Loader(yaml.SafeLoader):
    pass


def _index(node: yaml.Node, path: Loc, out: dict[Loc, tuple[int, int]]) -> None:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            # Errors about a key (unknown/extra) point at the key itself.
            out[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _index(value_node, (*path, key), out)
            out[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), out)


@dataclass
class LocatedDoc:
    """A parsed YAML document and where each path sits in the file."""

    file: str
    data: Any
    positions: dict[Loc, tuple[int, int]]

    def where(self, loc: Loc) -> tuple[int, int]:
        """Line/col of the deepest known prefix of ``loc`` (pydantic may add union/tag parts)."""
        loc = tuple(loc)
        while loc:
            if loc in self.positions:
                return self.positions[loc]
            loc = loc[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, loc: Loc, message: str) -> Problem:
        line, col = self.where(loc)
        return Problem(self.file, line, col, message)


def parse_text(text: str, file: str = "<string>") -> LocatedDoc:
    """Parse YAML text; a syntax error becomes a located ConfigError."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(file, line, col, f"YAML syntax error: {msg}")]) from None
    positions: dict[Loc, tuple[int, int]] = {}
    if node is None:
        return LocatedDoc(file, None, {(): (1, 1)})
    _index(node, (), positions)
    data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return LocatedDoc(file, data, positions)


def parse_file(path: str | Path) -> LocatedDoc:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), 1, 1, f"cannot read file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), 1, 1, f"file is not UTF-8 text (byte {exc.start})")]) from None
    return parse_text(text, str(path))


def _field_path(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "(document)"


def _strip_tags(data: Any, loc: Loc) -> Loc:
    """Drop pydantic's discriminated-union tag steps (``executors.x.webhook.timeout``) from a path.

    A step that is not a key of the mapping at that point but equals the mapping's ``type`` value is the
    union member's tag, not part of the document.
    """
    out: list[int | str] = []
    node = data
    for step in loc:
        if isinstance(node, dict) and step not in node and node.get("type") == step:
            continue
        out.append(step)
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
        else:
            node = None
    return tuple(out)


def validation_problems(doc: LocatedDoc, exc: ValidationError, prefix: Loc = ()) -> list[Problem]:
    """Translate a pydantic ValidationError into located problems naming the field."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        loc = _strip_tags(doc.data, loc)
        loc = (*prefix, *loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append(doc.problem(loc, f"{_field_path(loc)}: {msg}"))
    return problems


def validate_doc(doc: LocatedDoc, model: type[M], context: dict | None = None) -> M:
    """Validate a located document against a model; raise ConfigError with every problem."""
    if doc.data is None:
        raise ConfigError([Problem(doc.file, 1, 1, "file is empty")])
    try:
        obj = model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc)) from None
    # Models may expose cross-reference checks that need the whole document (unknown names...).
    check = getattr(obj, "reference_errors", None)
    if check is not None:
        problems = [doc.problem(loc, f"{_field_path(loc)}: {msg}") for loc, msg in check()]
        if problems:
            raise ConfigError(problems)
    return obj


def load_model(path: str | Path, model: type[M], context: dict | None = None) -> M:
    """Read, parse and validate ``path`` as ``model``."""
    return validate_doc(parse_file(path), model, context)
