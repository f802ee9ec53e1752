"""Typed reads of the environment that fail loudly on nonsense."""

import math
import os
import re
import secrets
import zlib
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import overload

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@overload
def env_str(name: str, default: str) -> str: ...


@overload
def env_str(name: str, default: None = None) -> str | None: ...


def env_str(name: str, default: str | None = None) -> str | None:
    """`NAME`, or the contents of the file named by `NAME_FILE` (for secrets)."""
    if path := os.environ.get(f"{name}_FILE"):
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, *, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_list(name: str, *, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `24h`, `7d` → timedelta; anything else raises ValueError."""
    match = _DURATION.match(text)
    if not match or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 24h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def env_duration(name: str, *, default: str) -> timedelta:
    raw = os.environ.get(name, default)
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def write_private_file(path: Path, text: str) -> None:
    """Write a secret readable by its owner only: the file is created with
    mode 0600 (never chmod'ed after the secret is in it) and moved into place,
    so no moment exists when another user could open it."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# Placeholders from documentation and templates, refused anywhere in a key.
_PLACEHOLDERS = (
    "django-insecure",
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replaceme",
    "your-secret-key",
    "secret-key-here",
    "insecure",
    "example",
)
MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_BITS = 128


def secret_key_weakness(key: str) -> str | None:
    """Why `key` can't sign sessions in production, or None. Refused: Django's
    development prefix and documentation placeholders, under 50 characters,
    and an estimated entropy under 128 bits, judged by the characters it uses
    and by how well it compresses (which catches repetitions)."""
    lowered = key.lower()
    if placeholder := next((p for p in _PLACEHOLDERS if p in lowered), None):
        return f"it contains {placeholder!r}, a placeholder from documentation or a development key"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"it has {len(key)} characters; use at least {MIN_SECRET_KEY_LENGTH}"
    counts = Counter(key)
    shannon = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values()) * len(key)
    compressed = (len(zlib.compress(key.encode(), 9)) - len(zlib.compress(b"", 9))) * 8
    if (bits := int(min(shannon, compressed))) < MIN_SECRET_KEY_BITS:
        return f"it is too predictable (about {bits} bits; at least {MIN_SECRET_KEY_BITS} needed)"
    return None
