"""PostgreSQL plumbing shared by the queue store and the attempt store.

:class:`PgSession` owns one autocommit connection to one schema, guarded by a lock so
threads take turns. It

* creates or migrates the schema on first use, under ``pg_advisory_xact_lock``, and keeps
  a per-component version in the schema's ``meta`` table (a newer version is refused);
* reconnects with backoff after the connection is lost (server restart,
  ``pg_terminate_backend``). A connection found dead *before* a statement is sent is
  replaced silently; a statement that loses its connection is retried once when it is
  safe to repeat, and otherwise raises StoreError (at-least-once: an ack that failed
  leaves the message to be redelivered when its lease expires);
* never uses (nor closes) a connection inherited across ``fork()``: the child opens
  its own, and the parent's session is left alone;
* turns psycopg errors into StoreError / StoreLockedError, with passwords removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.pq import TransactionStatus

from localqueue.backends import StoreAddress, process
from localqueue.errors import LocalQueueError, StoreError, StoreLockedError

__all__ = [
    "DEFAULT_SCHEMA",
    "PgSession",
    "redact",
    "split_schema",
    "validate_schema",
    "with_schema",
]

DEFAULT_SCHEMA = "localqueue"

T = TypeVar("T")
Op = Callable[[psycopg.Connection[Any]], T]

_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_URL_PASSWORD_RE = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.IGNORECASE)
_KV_PASSWORD_RE = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_LOCKED = (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_RECONNECT_PAUSE_MIN, _RECONNECT_PAUSE_MAX = 0.05, 1.0

META_DDL = """CREATE TABLE IF NOT EXISTS {meta} (
    key text PRIMARY KEY,
    value text NOT NULL
)"""


def validate_schema(schema: str) -> str:
    """Return ``schema`` when it is a plain PostgreSQL identifier, else raise ValueError."""
    if not isinstance(schema, str) or not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(
            f"invalid schema name {schema!r}: use 1-63 characters of A-Z a-z 0-9 _, "
            "not starting with a digit"
        )
    return schema


def split_schema(dsn: str, schema: str | None) -> tuple[str, str]:
    """The connection string without localqueue's own ``schema=NAME`` URL parameter, and
    the schema to use: ``schema`` when given, else that parameter, else ``localqueue``.
    (``--store-path postgresql://host/db?schema=jobs`` picks a schema from the CLI.)"""
    if not isinstance(dsn, str) or not dsn:
        raise ValueError("a PostgreSQL connection string is required")
    from_url = None
    if StoreAddress.parse(dsn).kind == "postgres":  # a URL; else key=value pairs
        base, query = _url_query(dsn)
        kept = [(key, value) for key, value in query if key != "schema"]
        if len(kept) != len(query):
            from_url = [value for key, value in query if key == "schema"][-1]
            dsn = base + ("?" + urllib.parse.urlencode(kept) if kept else "")
    return dsn, validate_schema(schema or from_url or DEFAULT_SCHEMA)


def _url_query(url: str) -> tuple[str, list[tuple[str, str]]]:
    """A URL's text before ``?`` and its query parameters. (Not ``urlunsplit``, which
    drops the ``//`` of a URL without a host: ``postgresql:///db`` for a Unix socket.)"""
    base, _, query = url.partition("?")
    return base, urllib.parse.parse_qsl(query, keep_blank_values=True)


def with_schema(dsn: str, schema: str) -> str:
    """The inverse of :func:`split_schema`: a ``postgresql://`` URL of the connection
    string ``dsn`` (a URL, or key=value pairs, each of which a URL takes as a parameter)
    with ``schema=NAME`` in its query."""
    if StoreAddress.parse(dsn).kind == "postgres":
        base, query = _url_query(dsn)
    else:
        base = "postgresql://"
        query = [(key, str(value)) for key, value in psycopg.conninfo.conninfo_to_dict(dsn).items()]
    kept = [(key, value) for key, value in query if key != "schema"]
    return base + "?" + urllib.parse.urlencode([*kept, ("schema", schema)])


def redact(text: str, password: str | None = None) -> str:
    """``text`` with anything that looks like a password (in a URL, a ``password=``
    pair, or the literal ``password`` given) replaced by ``***``."""
    text = _URL_PASSWORD_RE.sub(r"\g<head>:***@", text)
    text = _KV_PASSWORD_RE.sub(r"\g<head>***", text)
    if password:
        text = text.replace(password, "***")
    return text


def _password_of(dsn: str) -> str | None:
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return None
    return None if password is None else str(password)


def _has_input(conn: psycopg.Connection[Any]) -> bool:
    """True when an idle connection has something to read: on a connection that is not
    LISTENing that is the server's goodbye (a FATAL error or end of file)."""
    try:
        fd = conn.fileno()
    except psycopg.Error:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


class _Live(process.ForkHooks):
    """The sessions and listeners of this process: a forked child forgets their
    connections (without closing them: the fork rule) and opens its own."""

    def __init__(self) -> None:
        self.objects: weakref.WeakSet[Any] = weakref.WeakSet()

    def after_in_child(self) -> None:
        for obj in list(self.objects):
            obj._after_fork()


_LIVE = _Live()
process.on_fork(_LIVE)


def register_for_fork(obj: _ForkAware) -> None:
    """Call ``obj._after_fork()`` in every child process forked from now on."""
    _LIVE.objects.add(obj)


class PgSession:
    """One lock-guarded autocommit connection to one localqueue schema (see
    :func:`split_schema` for how ``schema`` is chosen).

    ``component`` names the owner of ``tables`` in ``meta`` (``<component>_version``);
    ``create`` holds the DDL of a fresh schema at ``version`` (``{schema}`` and
    ``{meta}`` are filled in), ``migrations[n]`` the DDL that takes version ``n`` to
    ``n + 1``; ``meta_init`` gives extra ``meta`` rows to write with a fresh schema.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None,
        component: str,
        version: int,
        tables: dict[str, str],
        create: Sequence[str],
        migrations: dict[int, Sequence[str]] | None = None,
        meta_init: Callable[[], dict[str, str]] | None = None,
        busy_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        reconnect_timeout: float = 30.0,
    ) -> None:
        if busy_timeout < 0 or connect_timeout <= 0 or reconnect_timeout < 0:
            raise ValueError("timeouts must be positive")
        self.dsn, self.schema = split_schema(dsn, schema)
        self.component = component
        self.version = version
        self._tables = dict(tables)
        self.busy_timeout = float(busy_timeout)
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self._create = [self.render(statement) for statement in create]
        self._migrations = {
            found: [self.render(statement) for statement in statements]
            for found, statements in (migrations or {}).items()
        }
        self._meta_init = meta_init
        self._password = _password_of(dsn)
        self.meta: dict[str, str] = {}
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._ready = False
        self._ever_connected = False
        self._pid = os.getpid()
        register_for_fork(self)

    # -- naming and errors -------------------------------------------------------------

    def render(self, template: str) -> bytes:
        """SQL text with ``{schema}``, ``{meta}`` and the session's ``tables`` (``{key}``
        for every ``key: table``) filled in as schema-qualified quoted identifiers."""
        names: dict[str, sql.Composable] = {
            "schema": sql.Identifier(self.schema),
            "meta": sql.Identifier(self.schema, "meta"),
        }
        names.update(
            {key: sql.Identifier(self.schema, table) for key, table in self._tables.items()}
        )
        return sql.SQL(template).format(**names).as_bytes(None)

    def url(self) -> str:
        """A ``postgresql://`` URL that opens this database and schema again (with its
        password: for opening, not for messages)."""
        return with_schema(self.dsn, self.schema)

    def describe(self) -> str:
        """Where this session connects, without the password."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        except psycopg.Error:
            return "PostgreSQL (unparsable connection string)"
        user = f"{info['user']}@" if info.get("user") else ""
        host = info.get("host") or "localhost"
        port = f":{info['port']}" if info.get("port") else ""
        return f"postgresql://{user}{host}{port}/{info.get('dbname', '')} schema {self.schema}"

    def _clean(self, exc: BaseException) -> str:
        one_line = " ".join(str(exc).split())  # libpq messages span lines; ours do not
        return redact(one_line, self._password) or type(exc).__name__

    def _translate(self, exc: psycopg.Error, what: str) -> LocalQueueError:
        if isinstance(exc, _LOCKED):
            return StoreLockedError(
                f"{self.describe()}: {what} waited more than {self.busy_timeout:g}s for a lock "
                f"held by another session; try again ({self._clean(exc)})"
            )
        return StoreError(f"{self.describe()}: {what} failed: {self._clean(exc)}")

    # -- connections -------------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection (one attempt), or StoreError."""
        kwargs: dict[str, Any] = {"autocommit": True}
        try:
            params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        except psycopg.Error as exc:
            raise StoreError(f"invalid PostgreSQL connection string: {self._clean(exc)}") from None
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = max(1, round(self.connect_timeout))
        if "application_name" not in params:
            kwargs["application_name"] = "localqueue"
        try:
            conn = psycopg.connect(self.dsn, **kwargs)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.describe()}: {self._clean(exc)}") from None
        try:
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false)",
                (f"{max(1, round(self.busy_timeout * 1000))}ms",),
            )
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot set up {self.describe()}: {self._clean(exc)}") from None
        self._ever_connected = True
        return conn

    def _open(self) -> psycopg.Connection[Any]:
        """Connect; once this session has been connected before, keep trying with
        backoff for ``reconnect_timeout`` seconds (a server restarting)."""
        if not self._ever_connected:
            return self.connect()
        deadline = time.monotonic() + self.reconnect_timeout
        pause = _RECONNECT_PAUSE_MIN
        while True:
            try:
                return self.connect()
            except StoreError:
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, _RECONNECT_PAUSE_MAX)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():  # belt and braces: the fork hook already did this
            self._after_fork()
        conn = self._conn
        if conn is not None and (conn.closed or _has_input(conn)):
            self._discard()
            conn = None
        if conn is None:
            conn = self._conn = self._open()
        return conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # it is gone either way
                conn.close()

    def _after_fork(self) -> None:
        # Forget the parent's connection without closing it: closing would end the
        # parent's session, while psycopg never finishes a connection when an object
        # inherited across fork() is garbage-collected.
        self._lock = threading.RLock()
        self._conn = None
        self._pid = os.getpid()

    def close(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._after_fork()
            self._discard()

    # -- running statements ------------------------------------------------------------

    @contextlib.contextmanager
    def waiting_at_most(
        self, conn: psycopg.Connection[Any], seconds: float | None
    ) -> Iterator[None]:
        """Statements inside the block wait at most ``seconds`` (when shorter than
        ``busy_timeout``) for a lock: a lease extension must not wait longer than the
        lease it extends has left."""
        if seconds is None or seconds >= self.busy_timeout:
            yield
            return
        setting = "SELECT set_config('lock_timeout', %s, false)"
        conn.execute(setting, (f"{max(1, round(seconds * 1000))}ms",))
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute(setting, (f"{max(1, round(self.busy_timeout * 1000))}ms",))

    def run(self, what: str, op: Op[T], *, retry: bool = True, bootstrap: bool = True) -> T:
        """Run ``op`` on the session's connection while holding its lock.

        When the connection turns out to be lost, ``op`` runs once more on a new one if
        ``retry`` (only for operations that are safe to repeat); otherwise StoreError says
        the change may or may not have been applied.
        """
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    if bootstrap and not self._ready:
                        self._bootstrap(conn)
                    return op(conn)
                except psycopg.Error as exc:
                    if not conn.closed:
                        raise self._translate(exc, what) from None
                    self._discard()
                    if retry and attempt == 1:
                        continue
                    raise StoreError(
                        f"{self.describe()}: lost the connection during {what}; it may or may "
                        f"not have been applied ({self._clean(exc)})"
                    ) from None
                except BaseException:
                    # Our own errors leave the connection idle; an interrupt (^C) in the
                    # middle of a statement may not: never reuse such a connection.
                    if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                        self._discard()
                    raise
            raise AssertionError("unreachable")

    # -- the schema --------------------------------------------------------------------

    def _read_meta(self, conn: psycopg.Connection[Any]) -> dict[str, str] | None:
        try:
            rows = conn.execute(self.render("SELECT key, value FROM {meta}")).fetchall()
        except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName):
            return None
        return {str(key): str(value) for key, value in rows}

    def _check_version(self, meta: dict[str, str]) -> int | None:
        raw = meta.get(f"{self.component}_version")
        if raw is None:
            return None
        if not raw.isdigit():
            raise StoreError(f"{self.describe()}: not a localqueue schema (version {raw!r})")
        found = int(raw)
        if found > self.version:
            raise StoreError(
                f"{self.describe()}: the {self.component} tables are at schema version "
                f"{found}, newer than this localqueue understands ({self.version}); upgrade "
                "localqueue"
            )
        if found < 1:
            raise StoreError(f"{self.describe()}: unknown schema version {found}")
        return found

    def _bootstrap(self, conn: psycopg.Connection[Any]) -> None:
        meta = self._read_meta(conn)
        if meta is None or self._check_version(meta) != self.version:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"localqueue:{self.schema}",)
                )
                conn.execute(self.render("CREATE SCHEMA IF NOT EXISTS {schema}"))
                conn.execute(self.render(META_DDL))
                meta = self._read_meta(conn) or {}
                found = self._check_version(meta)
                if found is not None and found < self.version:
                    self._migrate(conn, found)
                    meta[f"{self.component}_version"] = str(self.version)
                elif found is None:
                    for statement in self._create:
                        conn.execute(statement)
                    fresh = {f"{self.component}_version": str(self.version)}
                    fresh.update(self._meta_init() if self._meta_init else {})
                    insert = "INSERT INTO {meta} (key, value) VALUES (%s, %s)"
                    conn.cursor().executemany(self.render(insert), list(fresh.items()))
                    meta.update(fresh)
        self.meta = meta
        self._ready = True

    def _migrate(self, conn: psycopg.Connection[Any], found: int) -> None:
        for step in range(found, self.version):
            if step not in self._migrations:
                raise StoreError(f"{self.describe()}: no migration from schema version {step}")
            for statement in self._migrations[step]:
                conn.execute(statement)
        conn.execute(
            self.render("UPDATE {meta} SET value = %s WHERE key = %s"),
            (str(self.version), f"{self.component}_version"),
        )

    def drop_schema(self) -> None:
        """DROP SCHEMA ... CASCADE: every localqueue table in the schema (queue and
        attempt tables alike) is gone; the next use creates them afresh."""

        def drop(conn: psycopg.Connection[Any]) -> None:
            conn.execute(self.render("DROP SCHEMA IF EXISTS {schema} CASCADE"))

        self.run("drop schema", drop, bootstrap=False)
        self._ready = False
        self.meta = {}
