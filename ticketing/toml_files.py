"""Reading the project's TOML files (import mappings, trigger rules, routing) with one kind of
error, and saying what is wrong in them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def read_toml(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """Parse `path`; an unreadable or invalid file raises `error` naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as problem:
        raise error(f"{path}: cannot read the {what}: {problem.strerror}") from problem
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{path}: not valid TOML: {problem}") from problem


def describe_validation(error: ValidationError) -> str:
    """pydantic's errors as `field.path: message` joined by '; ' (aliases such as `if` kept)."""
    parts = []
    for problem in error.errors(include_url=False):
        location = ".".join(str(p) for p in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)
