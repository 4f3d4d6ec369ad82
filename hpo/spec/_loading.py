"""Loading a spec: YAML with duplicate keys refused, JSON read back from a study, and pydantic
errors turned into one line ``"<file>: <field.path>: <reason>"``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ValidationError

from hpo.errors import SpecError
from hpo.errors import one_line
from hpo.spec._schema import PARAM_CLASSES
from hpo.spec._schema import StudySpec


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)
# YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e-6`` (no dot) as a string, which the strict
# schema would refuse; users write it as a number.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec YAML file.

    Args:
        path: The ``.yaml`` file.

    Returns:
        The validated spec.

    Raises:
        SpecError: One line ``"<file>: <field.path>: <reason>"`` for a missing or unreadable
            file, malformed YAML, or any invalid field.

    Example:
        >>> load_spec("studies/demo.yaml").name  # doctest: +SKIP
        'demo'
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such spec file", file=source) from None
    except UnicodeDecodeError:
        raise SpecError("not a UTF-8 text file", file=source) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc}", file=source) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(where, f"invalid YAML: {one_line(problem)}", file=source) from None
    return parse_spec(data, source=source)


def parse_spec(
    data: Any, *, source: str = "<spec>", context: dict[str, Any] | None = None
) -> StudySpec:
    """Validate an already-parsed spec mapping; errors name ``source``.

    ``context`` is passed to pydantic (:data:`~hpo.spec.TRUSTED_NAMES` for a stored spec).

    Raises:
        SpecError: The data is not a mapping or a field is invalid.
    """
    if data is None:
        raise SpecError(
            "the spec is empty; expected a mapping with name, dataset, ...", file=source
        )
    if not isinstance(data, dict):
        raise SpecError(f"the top level must be a mapping, got {type(data).__name__}", file=source)
    try:
        return StudySpec.model_validate(data, context=context)
    except ValidationError as exc:
        raise _to_spec_error(exc, source) from None


def spec_from_json(
    text: str, *, source: str = "<json>", context: dict[str, Any] | None = None
) -> StudySpec:
    """Validate a spec stored as JSON (e.g. the study user attr ``"spec"``).

    Raises:
        SpecError: The JSON is malformed or describes an invalid spec.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"invalid JSON: {one_line(str(exc))}", file=source) from None
    return parse_spec(data, source=source, context=context)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "search_space" and parts[2] in PARAM_CLASSES:
        del parts[2]
    return ".".join(str(p) for p in parts)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str] | None:
    """Keys allowed at the mapping holding ``loc[-1]`` (for "unknown key" messages)."""
    parent = loc[:-1]
    model: Any = None
    if not parent:
        model = StudySpec
    elif len(parent) == 1 and parent[0] in StudySpec.model_fields:
        model = StudySpec.model_fields[parent[0]].annotation
    elif len(parent) == 3 and parent[0] == "search_space":
        model = PARAM_CLASSES.get(str(parent[2]))
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return None


def _to_spec_error(exc: ValidationError, source: str) -> SpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    field = _format_loc(loc)
    kind = first["type"]
    message = one_line(first["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        reason = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        reason = "required key is missing"
    elif kind == "union_tag_not_found":
        reason = "missing 'type' (one of: float, int, categorical)"
    elif kind == "union_tag_invalid":
        tag = first.get("ctx", {}).get("tag")
        reason = f"unknown type {tag!r}; expected one of: float, int, categorical"
    elif kind == "value_error":
        reason = message
        if not field and ": " in message:
            field, reason = message.split(": ", 1)
    else:
        reason = f"{message}, got {_short_repr(first.get('input'))}"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return SpecError(field, reason, file=source)


__all__ = ["load_spec", "parse_spec", "spec_from_json"]
