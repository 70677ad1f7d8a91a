"""The fields of an imported JSON record, read by their JSON type: each failure is a
ValueError naming the field.

Every field is checked before it becomes a record: Python's own conversions would turn
"false" into True (bool), [["mode", "wall"]] into a dict, or let a number through where a
name belongs, and the store would keep the wrong value.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from ci.history.records import parse_time


def string(value: Any, name: str) -> str:
    """A string."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {_json_type(value)}")
    return value


def optional_string(value: Any, name: str) -> str | None:
    """A string or null."""
    return None if value is None else string(value, name)


def boolean(value: Any, name: str) -> bool:
    """true or false (never "false", 0 or 1)."""
    if not isinstance(value, bool):
        raise ValueError(
            f"{name} must be true or false, not {_json_type(value)} {json.dumps(value)}"
        )
    return value


def number(value: Any, name: str) -> float:
    """A finite number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {_json_type(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value}")
    return float(value)


def mapping(value: Any, name: str) -> dict[str, Any]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, not {_json_type(value)}")
    return value


def string_map(value: Any, name: str) -> dict[str, str]:
    """A JSON object of strings."""
    found = mapping(value, name)
    for key, item in found.items():
        string(item, f"{name}.{key}")
    return found


def array(value: Any, name: str) -> list[Any]:
    """A JSON list."""
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list, not {_json_type(value)}")
    return value


def timestamp(value: Any, name: str) -> datetime:
    """An ISO 8601 time with its offset, as UTC."""
    return parse_time(string(value, name))


def optional_timestamp(value: Any, name: str) -> datetime | None:
    """`timestamp`, or null."""
    return None if value is None else timestamp(value, name)


_JSON_TYPES = {
    bool: "a boolean",
    str: "a string",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "a value")
