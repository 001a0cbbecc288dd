"""A bounded YAML reader for configuration files: plain values, never constructed objects.

``yaml.safe_load`` refuses Python tags but still composes the whole node graph recursively
(libyaml's composer is C recursion: a document nested a million deep overflows the stack) and
builders such as OmegaConf copy every aliased node ("billion laughs": nine anchors of nine
aliases each expand to 10**9 nodes). This reader takes libyaml's *events* (a flat stream, no
recursion) and builds dicts, lists and strings itself, with bounds on nesting depth and event
count. An alias is the same object as its anchor, never a copy; the size the document would
reach if a loader copied every alias is computed alongside (``expanded``) so that an alias bomb
is reported without ever being expanded. Tags are recorded, never acted on: a
``!!python/object/apply:os.system`` tag is data for the policy to judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from mlgate.scan.config_refs import child_path
from mlgate.scan.limits import ResourceLimitError

MAX_DEPTH = 500  # nesting levels (honest configs need a few dozen)
MAX_TAGS = 1000  # distinct tags recorded (each is reported; the first ones suffice)
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"
# Tags every safe loader resolves to plain data (YAML 1.1 types).
SAFE_TAGS = frozenset(
    _CORE + t
    for t in "str int float bool null map seq omap pairs set binary timestamp merge value".split()
)
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}


class YamlLimitError(ResourceLimitError):
    """The document is nested deeper or holds more nodes than the reader allows."""


@dataclass(frozen=True)
class Tag:
    """An explicit, non-standard tag: what a loader would be asked to construct."""

    path: str
    tag: str
    value: str  # the tagged scalar ("" for a tagged collection)


@dataclass
class _Frame:
    value: dict[Any, Any] | list[Any]
    path: str
    anchor: str | None
    size: int = 1
    key: Any = None
    has_key: bool = False


@dataclass
class YamlReading:
    """The documents of a stream, the tags met and the alias-expanded size."""

    documents: list[Any] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    # Values a repeated key replaced, as ``{key: value}``: loaders differ on which one wins.
    shadowed: list[tuple[str, dict[Any, Any]]] = field(default_factory=list)
    expanded: int = 0
    recursive_alias: bool = False
    tags_truncated: bool = False  # more than MAX_TAGS distinct tags


def read_yaml(raw: bytes, max_nodes: int, expand_cap: int) -> YamlReading:
    """Read every document of ``raw``; raises ``yaml.YAMLError`` when it is not YAML and
    :class:`YamlLimitError` past ``max_nodes`` events or :data:`MAX_DEPTH` levels."""
    builder = _Builder(expand_cap)
    for count, event in enumerate(yaml.parse(raw, Loader=_PARSER), 1):
        if count > max_nodes:
            raise YamlLimitError(f"more than {max_nodes} YAML nodes")
        builder.feed(event)
    return builder.reading


class _Builder:
    """Turns parser events into values (one stack frame per open collection)."""

    def __init__(self, expand_cap: int) -> None:
        self.reading = YamlReading()
        self.cap = expand_cap
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int | None]] = {}  # value, size (None: still open)
        self.tags_seen: set[str] = set()

    def feed(self, event: Any) -> None:
        if isinstance(event, yaml.ScalarEvent):
            self._tag(event, event.value)
            self._add(_scalar(event), 1, event.anchor)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self._open(event)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            frame = self.stack.pop()
            self._add(frame.value, frame.size, frame.anchor, closing=True)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event.anchor)

    def _open(self, event: Any) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise YamlLimitError(f"YAML nested deeper than {MAX_DEPTH} levels")
        self._tag(event, "")
        value: dict[Any, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
        frame = _Frame(value, self._child_path(), event.anchor)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, None)
        self.stack.append(frame)

    def _alias(self, anchor: str) -> None:
        if anchor not in self.anchors:
            raise yaml.composer.ComposerError(None, None, f"undefined alias {anchor!r}")
        value, size = self.anchors[anchor]
        if size is None:  # an alias inside its own anchor: infinite when copied
            self.reading.recursive_alias = True
        self._add(value, self.cap + 1 if size is None else size, None)

    def _add(self, value: Any, size: int, anchor: str | None, closing: bool = False) -> None:
        size = min(size, self.cap + 1)
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.reading.documents.append(value)
            self.reading.expanded = min(self.reading.expanded + size, self.cap + 1)
            return
        parent = self.stack[-1]
        parent.size = min(parent.size + size, self.cap + 1)
        if isinstance(parent.value, list):
            parent.value.append(value)
        elif not parent.has_key:
            parent.key = (
                value if isinstance(value, str | bool | None) else f"<{type(value).__name__}>"
            )
            parent.has_key = True
        else:
            if parent.key in parent.value:
                earlier = {parent.key: parent.value[parent.key]}
                self.reading.shadowed.append((child_path(parent.path, parent.key), earlier))
            parent.value[parent.key] = value
            parent.has_key = False

    def _child_path(self) -> str:
        if not self.stack:
            return f"document[{len(self.reading.documents)}]"
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            return f"{parent.path}[{len(parent.value)}]"
        return child_path(parent.path, parent.key) if parent.has_key else f"{parent.path}.<key>"

    def _tag(self, event: Any, value: str) -> None:
        tag = event.tag
        if tag is None or tag == "!" or tag in SAFE_TAGS or tag in self.tags_seen:
            return
        if len(self.tags_seen) >= MAX_TAGS:
            self.reading.tags_truncated = True
            return
        self.tags_seen.add(tag)  # distinct tags only: a million copies of one cost nothing
        self.reading.tags.append(Tag(self._child_path(), tag, value))


def _scalar(event: Any) -> str | bool | None:
    """A scalar as a string; plain null and boolean words as the loader resolves them."""
    if event.tag is None and event.implicit[0] and not event.style:
        if event.value in _NULLS:
            return None
        if event.value in _BOOLS:
            return _BOOLS[event.value]
    return str(event.value)
