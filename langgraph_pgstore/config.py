"""Settings from arguments and environment variables, and DSN redaction.

Every knob has one environment variable; explicit arguments win over the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

import platformdirs

from .errors import ConfigurationError, InvalidInput
from .tenancy import validate_id

__all__ = ["PoolOptions", "Settings", "redact_dsn"]

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PoolOptions(TypedDict, total=False):
    """Keyword options accepted by ``connect()``; each overrides its environment variable."""

    min_size: int
    """Connections kept open (``PGSTORE_POOL_MIN_SIZE``, default 1)."""
    max_size: int
    """Upper bound of open connections (``PGSTORE_POOL_MAX_SIZE``, default 10)."""
    timeout: float
    """Seconds to wait for a free connection (``PGSTORE_POOL_TIMEOUT``, default 30)."""
    max_idle: float
    """Seconds an idle connection is kept (``PGSTORE_POOL_MAX_IDLE``, default 300)."""
    max_lifetime: float
    """Seconds before a connection is replaced (``PGSTORE_POOL_MAX_LIFETIME``, default 1800)."""
    connect_timeout: float
    """Seconds to establish one connection (``PGSTORE_CONNECT_TIMEOUT``, default 10)."""
    prepare_threshold: int | None
    """psycopg prepared statements; ``None`` for pgbouncer transaction mode
    (``PGSTORE_PREPARE_THRESHOLD``, default 5, ``none`` disables)."""
    schema: str
    """Schema holding every table, ours and the checkpoint tables (``PGSTORE_SCHEMA``)."""
    check_connection: bool
    """Check a connection before handing it out (``PGSTORE_CHECK_CONNECTION``, default true)."""
    tenant: str | None
    """Act for one user (an external user id) by default: with tenancy on, row-level
    security then hides other users' rows (``PGSTORE_TENANT``; the role must not bypass
    row-level security). A per-request ``db.tenant(...)`` scope overrides it."""


def _env_bool(value: str) -> bool:
    low = value.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"expected a boolean, got {value!r}")


def _env_threshold(value: str) -> int | None:
    if value.strip().lower() in {"none", "null", ""}:
        return None
    return int(value)


_ENV: dict[str, tuple[str, Any]] = {
    "min_size": ("PGSTORE_POOL_MIN_SIZE", int),
    "max_size": ("PGSTORE_POOL_MAX_SIZE", int),
    "timeout": ("PGSTORE_POOL_TIMEOUT", float),
    "max_idle": ("PGSTORE_POOL_MAX_IDLE", float),
    "max_lifetime": ("PGSTORE_POOL_MAX_LIFETIME", float),
    "connect_timeout": ("PGSTORE_CONNECT_TIMEOUT", float),
    "prepare_threshold": ("PGSTORE_PREPARE_THRESHOLD", _env_threshold),
    "schema": ("PGSTORE_SCHEMA", str),
    "check_connection": ("PGSTORE_CHECK_CONNECTION", _env_bool),
    "tenant": ("PGSTORE_TENANT", str),
}


def default_data_dir() -> Path:
    """Per-user directory of the embedded server (``PGSTORE_DATA_DIR`` overrides)."""
    env = os.environ.get("PGSTORE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("langgraph-pgstore")) / "pg17"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. ``url`` is None when the embedded server should be used."""

    url: str | None = None
    min_size: int = 1
    max_size: int = 10
    timeout: float = 30.0
    max_idle: float = 300.0
    max_lifetime: float = 1800.0
    connect_timeout: float = 10.0
    prepare_threshold: int | None = 5
    schema: str = "public"
    check_connection: bool = True
    tenant: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)

    def __repr__(self) -> str:
        """The dataclass repr, with the URL's password redacted (settings get logged)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.url:
            values["url"] = redact_dsn(self.url)
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return f"Settings({shown})"

    @classmethod
    def resolve(cls, url: str | None = None, **options: Any) -> Settings:
        """Merge explicit options over ``PGSTORE_*`` / ``DATABASE_URL`` over defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ConfigurationError(f"unknown option(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, (var, parse) in _ENV.items():
            raw = os.environ.get(var)
            if raw is not None:
                try:
                    values[name] = parse(raw)
                except (ValueError, ConfigurationError) as exc:
                    raise ConfigurationError(f"{var}={raw!r} is not valid: {exc}") from exc
        values.update({k: v for k, v in options.items() if k != "data_dir" or v is not None})
        raw_url = url or os.environ.get("PGSTORE_DATABASE_URL") or os.environ.get("DATABASE_URL")
        settings = cls(url=normalize_url(raw_url) if raw_url else None, **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not _SCHEMA_RE.match(self.schema):
            raise ConfigurationError(f"schema must be a plain identifier, got {self.schema!r}")
        if self.min_size < 0 or self.max_size < max(1, self.min_size):
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size, max_size >= 1 "
                f"(got {self.min_size}, {self.max_size})"
            )
        if self.tenant is not None:
            try:
                validate_id(self.tenant, "tenant")
            except InvalidInput as exc:
                raise ConfigurationError(str(exc)) from exc
        if self.prepare_threshold is not None and self.prepare_threshold < 0:
            raise ConfigurationError("prepare_threshold must be >= 0 or None")

    def with_url(self, url: str) -> Settings:
        return replace(self, url=url)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every connection we open (pool or single)."""
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": self.prepare_threshold,
            "connect_timeout": max(1, int(self.connect_timeout)),
        }
        if self.schema != "public":  # quoted: an unquoted AppData would fold to appdata
            kwargs["options"] = f'-c search_path="{self.schema}",public'
        # The tenant is no connection option: it is set inside each transaction (tenancy.py).
        return kwargs


def normalize_url(url: str) -> str:
    """Accept libpq URLs and SQLAlchemy-style ``postgresql+driver://`` ones."""
    url = url.strip()
    if "://" not in url:
        if "=" in url:  # libpq key=value DSN
            return url
        raise ConfigurationError(f"not a PostgreSQL URL: {redact_dsn(url)}")
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0].lower()
    if base not in {"postgresql", "postgres"}:
        raise ConfigurationError(
            f"unsupported URL scheme {scheme!r}: expected postgresql:// ({redact_dsn(url)})"
        )
    try:
        urlsplit(url).port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigurationError(f"malformed URL {redact_dsn(url)}: {exc}") from exc
    return f"postgresql://{rest}"


_URL_PASSWORD = re.compile(r"(://[^:/@]*:)([^@]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&]*)", re.IGNORECASE)


def redact_dsn(dsn: str | None) -> str:
    """Return the DSN with any password replaced by ``***`` (safe to log or print)."""
    if not dsn:
        return "<embedded>"
    out = _URL_PASSWORD.sub(r"\1***\3", dsn)
    out = _QUERY_PASSWORD.sub(r"\1***", out)
    return _KV_PASSWORD.sub(r"\1***", out)
