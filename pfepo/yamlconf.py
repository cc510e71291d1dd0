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


# Caps that keep a hostile or broken file from costing more than a small, known amount of time and
# memory (a 254-byte alias bomb once took 21.6 s and 1.6 GB in a hot reload).
MAX_BYTES = 1_048_576
MAX_DEPTH = 64
MAX_NODES = 200_000
_PLAIN_TAGS = frozenset({None, "!"})


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str):
        self.mark, self.message = mark, message


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases/anchors and explicit tags and caps depth and node count.

    Aliases are refused outright (rather than capped): configs and policies never need them, and a
    refused alias cannot expand. Explicit tags (``!!int "abc"``, ``!!python/object``) are refused so a
    value is always what it looks like.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"YAML aliases (*{event.anchor}) are not supported; write the "
                           "value out")
        if getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, f"YAML anchors (&{event.anchor}) are not supported")
        tag = getattr(event, "tag", None)
        if tag not in _PLAIN_TAGS and not isinstance(event, yaml.DocumentStartEvent):
            raise _Refused(event.start_mark, f"explicit YAML tags ({tag}) are not supported")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(event.start_mark, f"more than {MAX_NODES} YAML nodes")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _index(node: yaml.Node, path: Loc, out: dict[Loc, tuple[int, int]]) -> None:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else f"<{key_node.id}>"
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
    """Parse YAML text safely; any problem (syntax, alias, tag, depth, size) becomes a located ConfigError."""
    if len(text) > MAX_BYTES:
        raise ConfigError([Problem(file, 1, 1, f"file is larger than {MAX_BYTES} bytes")])
    deep = _flow_too_deep(text)
    if deep:
        raise ConfigError([Problem(file, deep[0], deep[1], f"nesting deeper than {MAX_DEPTH} levels")])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        raise ConfigError([Problem(file, line, col, exc.message)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(file, line, col, f"YAML syntax error: {msg}")]) from None
    except (ValueError, OverflowError, RecursionError, TypeError) as exc:  # e.g. a 5000-digit integer
        raise ConfigError([Problem(file, 1, 1, f"unreadable YAML value: {str(exc)[:200]}")]) from None
    finally:
        loader.dispose()
    if node is None:
        return LocatedDoc(file, None, {(): (1, 1)})
    positions: dict[Loc, tuple[int, int]] = {}
    _index(node, (), positions)
    return LocatedDoc(file, data, positions)


def _flow_too_deep(text: str) -> tuple[int, int] | None:
    """Line/col where ``[``/``{`` nesting passes MAX_DEPTH, or None.

    PyYAML's scanner looks ahead over a whole flow collection (quadratic in its depth: 5000 levels took
    about a second) before the composer can refuse it, so deep flow nesting is caught here first.
    Quoted text and comments are skipped line by line; block nesting is capped by the composer.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        quote = ""
        for col, ch in enumerate(line, 1):
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "#" and (col == 1 or line[col - 2] in " \t"):
                break
            elif ch in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return lineno, col
            elif ch in "]}":
                depth = max(0, depth - 1)
    return None


def parse_file(path: str | Path) -> LocatedDoc:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError([Problem(str(path), 1, 1, f"file is larger than {MAX_BYTES} bytes")])
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
