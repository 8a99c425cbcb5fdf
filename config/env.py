"""Typed readers for settings that come from the environment.

Every environment read in the project goes through these helpers, so a bad
value fails at start-up with ImproperlyConfigured instead of deep inside a request.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

# Written by ./run.sh with the settings it chose (secret, database, broker, port), so that `manage.py`
# run afterwards in another shell reaches the same services. The environment always wins over it.
LOCAL_ENV_FILE = Path(__file__).resolve().parent.parent / "var" / "local.env"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def local_env_read(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a local env file (# comments and blank lines skipped); {} when there is none."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def local_env_load() -> None:
    """Fill the variables not set in the environment from LOCAL_ENV_FILE (or the file it names)."""
    path = Path(os.environ.get("LOCAL_ENV_FILE") or LOCAL_ENV_FILE)
    for key, value in local_env_read(path).items():
        os.environ.setdefault(key, value)


local_env_load()


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def envsecret(name: str) -> str:
    """A secret from NAME or from the file named by NAME_FILE (Docker secrets)."""
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    return os.environ.get(name, "")


def database_from_url(url: str) -> dict:
    """Django DATABASES entry from postgres://user:pass@host:port/name?host=/socket/dir."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(f"DATABASE_URL must be a postgres:// URL, got scheme {parts.scheme!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = query.pop("host", None) or unquote(parts.hostname or "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": query,
    }


def cache_from_url(url: str) -> dict:
    """Django CACHES entry: "db" (a PostgreSQL table), "redis://host:port/db" or "locmem" (this process only)."""
    if url == "db":
        # Culling counts the table on every write: keep it small enough for that to stay cheap.
        backend, options = "django.core.cache.backends.db.DatabaseCache", {"MAX_ENTRIES": 10_000, "CULL_FREQUENCY": 3}
        return {"BACKEND": backend, "LOCATION": "django_cache", "OPTIONS": options}
    if url.startswith(("redis://", "rediss://", "unix://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    if url == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    raise ImproperlyConfigured(f"CACHE_URL must be db, locmem or a redis:// URL, got {url!r}")
