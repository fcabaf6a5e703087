"""One SQLite file owned by localqueue: opening it safely, its pragmas, its errors.

Shared by the queue store and the attempt store. What it guarantees:

* a new file is created mode 0600 *before* SQLite opens it (the WAL and SHM files
  inherit that mode);
* a file that is not this kind of localqueue store (another program's database, garbage,
  a newer schema) is refused with StoreError naming the path, and never written to;
* an older schema version is migrated, all steps in one transaction;
* WAL, ``synchronous`` FULL (or NORMAL on request), ``busy_timeout``;
* a connection inherited across ``fork()`` is never used nor closed (the fork rule of
  :mod:`localqueue.backends.process`); the child opens its own;
* sqlite3 errors become StoreLockedError (busy past the timeout) or StoreError.
"""

from __future__ import annotations

import _thread
import os
import sqlite3
import stat
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress

from localqueue import _failpoints
from localqueue.backends import process
from localqueue.errors import StoreError, StoreLockedError, StoreReplacedError

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["DURABILITY_LEVELS", "SQLiteFile"]

DURABILITY_LEVELS = {"full": "FULL", "normal": "NORMAL"}
_HEADER = b"SQLite format 3\x00"
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_READONLY_DIRECTORY = 1544  # SQLITE_READONLY_DIRECTORY: cannot create the -shm beside it
_SCHEMA_FACTS = """SELECT user_version, application_id, (SELECT count(*) FROM sqlite_master)
    FROM pragma_user_version, pragma_application_id"""


class _OpenFiles(process.ForkHooks):
    """The files (st_dev, st_ino) this process has SQLite connections open on, and how
    many. Such a file is not opened again to read its header: closing any descriptor of a
    file drops every POSIX lock the process holds on it, SQLite's included (a transaction
    would lose its SHARED lock, and another process could then take the file as unused
    and delete its WAL). A forked child holds no locks: its table starts empty."""

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.counts: dict[tuple[int, int], int] = {}

    def opened(self, identity: tuple[int, int]) -> None:
        with self.lock:
            self.counts[identity] = self.counts.get(identity, 0) + 1

    def closed(self, identity: tuple[int, int]) -> None:
        with self.lock:
            left = self.counts.pop(identity, 0) - 1
            if left > 0:
                self.counts[identity] = left

    def after_in_child(self) -> None:
        self.lock = _thread.allocate_lock()
        self.counts = {}


_OPEN_FILES = _OpenFiles()
process.on_fork(_OPEN_FILES)


_NOTHING: AbstractContextManager[None] = nullcontext()


class SQLiteFile:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str,
        application_id: int,
        schema_version: int,
        schema: Sequence[str],
        migrations: Mapping[int, Sequence[str]] | None = None,
        durability: str = "full",
        busy_timeout: float = 5.0,
        initialise: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        if durability not in DURABILITY_LEVELS:
            raise ValueError(f"durability must be 'full' or 'normal', got {durability!r}")
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0, got {busy_timeout!r}")
        self.path = os.fspath(path)
        self.kind = kind
        self.durability = durability
        self.busy_timeout = float(busy_timeout)
        self._application_id = application_id
        self._schema_version = schema_version
        self._schema = schema
        self._migrations = migrations or {}
        self._initialise = initialise
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._identity: tuple[int, int] | None = None
        self.lock = _thread.RLock()  # threading.RLock itself, without importing threading
        #: ``with file.session as conn``: the lock held, this process's connection, and
        #: sqlite3 errors translated. A plain object: it is on every operation's path.
        self.session = _Session(self)
        self.connection()  # open now: a bad path or a foreign file fails at construction

    # -- errors -----------------------------------------------------------------------

    def _refuse(self, why: str) -> StoreError:
        return StoreError(f"{self.path}: {why}")

    def translate(self, exc: sqlite3.Error) -> Exception:
        """The localqueue error for a sqlite3 error."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _BUSY_CODES:
            return StoreLockedError(
                f"{self.path}: store is locked by another process"
                f" (waited {self.busy_timeout:g}s); try again"
            )
        message = str(exc)
        if code is not None and code & 0xFF in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
            message = f"database is malformed or not a localqueue store ({message})"
        elif code is not None and code & 0xFF == 8:  # SQLITE_READONLY
            message = f"the store is read-only for this user; nothing was written ({message})"
        elif code is not None and code & 0xFF in (10, 13):  # SQLITE_IOERR, SQLITE_FULL
            message += self._space_hint()
        return self._refuse(message)

    def _space_hint(self) -> str:
        """The likely cause of a failed write: the file size limit or a full disk."""
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY:
            return f"; cannot grow the file: the file size limit (ulimit -f) is {soft} bytes"
        try:
            fs = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            return ""
        free = fs.f_bavail * fs.f_frsize
        return f"; the disk is full ({free} bytes free)" if free < 2**24 else ""

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate sqlite3 errors raised inside the block."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self.translate(exc) from None

    # -- connection -------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None and self._pid == os.getpid():
            return conn
        if conn is not None:  # opened by the parent process: see the fork rule
            process.keep_inherited(conn)
            self._conn = None
        with self.errors():
            conn = self._open()
        self._conn, self._pid = conn, os.getpid()
        self._identity = self._stat_identity()
        if self._identity is not None:
            _OPEN_FILES.opened(self._identity)
        return conn

    def _stat_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def check_identity(self) -> None:
        """Raise StoreError when the file was deleted or replaced since it was opened:
        writing on would go to an unlinked file that nobody else sees."""
        if self._conn is not None and self._stat_identity() != self._identity:
            raise StoreReplacedError(
                f"{self.path}: the store file was deleted or replaced while in use"
            )

    def _check_location(self) -> None:
        """Refuse a path another user could have planted: a symlink to a file that is
        not ours, or any file in a world-writable directory owned by someone else (they
        could swap the store, its -wal or its -shm for links to files of their choice).
        A *sticky* world-writable directory such as /tmp is the exception: nobody else
        can remove or rename our files there, so the store, its -wal and its -shm are
        allowed when each is a file of ours, or does not exist yet and is created here
        with O_EXCL|O_NOFOLLOW (:meth:`_claim`)."""
        me = os.geteuid()
        try:
            parent = os.stat(os.path.dirname(os.path.abspath(self.path)))
            link: os.stat_result | None = os.lstat(self.path)
        except FileNotFoundError:
            link = None
            if not os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
                return  # creating the file reports it
        except OSError:
            return  # creating or reading the file reports it
        if parent.st_mode & stat.S_IWOTH and parent.st_uid != me:
            if not parent.st_mode & stat.S_ISVTX:
                raise self._refuse(
                    f"is in a world-writable directory owned by another user (uid"
                    f" {parent.st_uid}) without the sticky bit; keep stores in a directory"
                    " only you can write"
                )
            paths = (self.path, f"{self.path}-wal", f"{self.path}-shm")
            for path in paths:  # every one checked before any is created
                self._check_own(path, me)
            for path in paths:
                self._claim(path, me)
            return
        if link is not None and stat.S_ISLNK(link.st_mode):
            try:
                owner = os.stat(self.path).st_uid
            except OSError:
                raise self._refuse("is a symlink to nothing") from None
            if owner != me:
                raise self._refuse(
                    f"is a symlink to a file owned by another user (uid {owner}); refusing it"
                )

    def _claim(self, path: str, me: int) -> None:
        """In a shared sticky directory: create ``path`` as our own (O_EXCL|O_NOFOLLOW,
        0600), or accept it only when it already is a regular file of ours."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            os.close(os.open(path, flags, 0o600))
            return
        except FileExistsError:
            pass
        except OSError as exc:
            raise self._refuse(f"cannot create {path}: {exc.strerror}") from None
        self._check_own(path, me)

    def _check_own(self, path: str, me: int) -> None:
        """Refuse ``path`` when it exists and is a symlink or another user's file."""
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(found.st_mode):
            raise self._refuse(
                f"{path} is a symlink in a directory other users can write; refusing it"
            )
        if found.st_uid != me:
            raise self._refuse(
                f"{path} belongs to another user (uid {found.st_uid}) in a directory other"
                " users can write; refusing it"
            )

    def _create_or_check_file(self) -> None:
        self._check_location()
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            os.close(os.open(self.path, flags, 0o600))
            return
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise self._refuse("directory does not exist") from None
        except IsADirectoryError:
            raise self._refuse("is a directory, not a store file") from None
        except PermissionError:
            raise self._refuse("permission denied creating the store file") from None
        identity = self._stat_identity()
        if identity is not None and identity in _OPEN_FILES.counts:
            return  # checked when this process opened it, and open now: see _OPEN_FILES
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(100)
        except IsADirectoryError:
            raise self._refuse("is a directory, not a store file") from None
        except OSError as exc:
            raise self._refuse(f"cannot read the store file: {exc.strerror}") from None
        if header and not header.startswith(_HEADER[: len(header)]):
            raise self._refuse(f"not a localqueue {self.kind} store (not a SQLite database)")
        if header and len(header) < 100:
            raise self._refuse("database is malformed (truncated file)")

    def _connect(self, *, immutable: bool = False) -> sqlite3.Connection:
        target = str(self.path)
        if immutable:
            import urllib.parse  # rare path: kept off every command's start-up

            target = f"file:{urllib.parse.quote(os.path.abspath(target))}?immutable=1"
        return sqlite3.connect(
            target,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
            uri=immutable,
        )

    def _open(self) -> sqlite3.Connection:
        self._create_or_check_file()
        # Processes opening one new file at once race to make it a WAL database and to
        # create the schema; in the rollback-journal mode a new file starts in, SQLite
        # answers some of those lock conflicts with SQLITE_BUSY at once rather than
        # waiting (to avoid a deadlock). Such a conflict is retried, within busy_timeout.
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                return self._open_once()
            except sqlite3.OperationalError as exc:
                code = getattr(exc, "sqlite_errorcode", None)
                if code is None or code & 0xFF not in _BUSY_CODES:
                    raise
                if time.monotonic() + pause >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _open_once(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            try:
                version = self._check_schema(conn)  # before anything writes to the file
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) != _READONLY_DIRECTORY:
                    raise
                if os.path.exists(f"{self.path}-wal"):
                    raise
                # A directory we cannot write (so no -shm can be created) and no -wal:
                # nobody has the store open for writing. Read the file as it is; any
                # write fails with SQLITE_READONLY.
                conn.close()
                conn = self._connect(immutable=True)
                self._check_schema(conn)
                return conn
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {DURABILITY_LEVELS[self.durability]}")
            conn.execute("PRAGMA journal_size_limit = 8388608")
            if version == 0:
                self._create_schema(conn)
            elif version < self._schema_version:
                self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> int:
        """The file's schema version (0: empty, to be created); raise when it is not ours."""
        # One statement, so one snapshot: read apart, the three could straddle another
        # process's commit of a new schema and make it look foreign.
        version, application_id, tables = conn.execute(_SCHEMA_FACTS).fetchone()
        if version == 0 and application_id == 0:
            if tables:
                raise self._refuse(f"not a localqueue {self.kind} store (foreign schema)")
            return 0
        if application_id != self._application_id:
            raise self._refuse(f"not a localqueue {self.kind} store")
        if version > self._schema_version:
            raise self._refuse(
                f"schema version {version} is newer than this localqueue supports"
                f" ({self._schema_version}); upgrade localqueue"
            )
        return int(version)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        with self.transaction(conn):
            if self._check_schema(conn) != 0:  # another process created it meanwhile
                return
            for statement in self._schema:
                conn.execute(statement)
            if self._initialise is not None:
                self._initialise(conn)
            conn.execute(f"PRAGMA application_id = {self._application_id}")
            conn.execute(f"PRAGMA user_version = {self._schema_version}")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Take an older file to the current schema version: ``migrations[n]`` holds the
        statements that take version ``n`` to ``n + 1``; all steps run in one transaction."""
        with self.transaction(conn):
            found = self._check_schema(conn)  # another process may have migrated it
            for step in range(found, self._schema_version):
                if step not in self._migrations:
                    raise self._refuse(f"no migration from schema version {step}")
                for statement in self._migrations[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {self._schema_version}")

    # -- transactions -----------------------------------------------------------------

    @staticmethod
    @contextmanager
    def transaction(conn: sqlite3.Connection, operation: str = "") -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error. ``operation``
        names the ``<operation>-before-commit`` failpoint (see ``_failpoints``)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            if _failpoints.ACTIVE:
                _failpoints.reached(f"{operation}-before-commit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def waiting_at_most(
        self, conn: sqlite3.Connection, seconds: float | None
    ) -> AbstractContextManager[None]:
        """Writes inside the block wait at most ``seconds`` (when shorter than
        ``busy_timeout``) for another process's lock: a lease extension must not wait
        longer than the lease it extends has left."""
        if seconds is None or seconds >= self.busy_timeout:
            return _NOTHING
        return self._waiting(conn, max(1, int(seconds * 1000)))

    @contextmanager
    def _waiting(self, conn: sqlite3.Connection, milliseconds: int) -> Iterator[None]:
        conn.execute(f"PRAGMA busy_timeout = {milliseconds}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def relaxed(self, conn: sqlite3.Connection) -> AbstractContextManager[None]:
        """Commits inside the block skip their fsync at ``full`` durability. They are
        still written to the WAL, so they survive a process crash, and the next fsync'd
        commit makes them durable; only a power cut before then can undo them. For
        bookkeeping whose loss is harmless: a lease (the message is simply delivered
        again), an attempt count (one attempt more)."""
        if self.durability != "full":
            return _NOTHING
        return self._relaxed(conn)

    @staticmethod
    @contextmanager
    def _relaxed(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            conn.execute("PRAGMA synchronous = FULL")

    def atomic(self, conn: sqlite3.Connection, operation: str) -> AbstractContextManager[None]:
        """Wrap a single-statement write. SQLite already runs one statement as its own
        write transaction, so this costs nothing unless a failpoint is active, when the
        statement runs in an explicit transaction that stops before its COMMIT."""
        if _failpoints.ACTIVE:
            return self.transaction(conn, operation)
        return _NOTHING

    @staticmethod
    @contextmanager
    def read_transaction(conn: sqlite3.Connection) -> Iterator[None]:
        """A consistent snapshot for several reads."""
        conn.execute("BEGIN")
        try:
            yield
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def read_meta(self, key: str) -> str:
        with self.errors():
            found = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,))
            row = found.fetchone()
        if row is None:
            raise self._refuse(f"store metadata {key!r} is missing")
        return str(row[0])

    def backup_to(self, target: str, verify: Callable[[sqlite3.Connection], T]) -> T:
        """Copy the file to a new file ``target`` (mode 0600; an existing one is refused)
        with SQLite's online backup API, consistent while others write; check the copy's
        integrity and return ``verify(copy)``. Nothing is left at ``target`` on failure."""
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            os.close(os.open(target, flags, 0o600))
        except FileExistsError:
            raise StoreError(
                f"{target}: already exists; remove it or choose another name"
            ) from None
        except OSError as exc:
            raise StoreError(f"{target}: cannot create the backup: {exc.strerror}") from None
        try:
            copy = sqlite3.connect(target)
            try:
                with self.session as conn:
                    conn.backup(copy)
                (verdict,) = copy.execute("PRAGMA integrity_check").fetchone()
                result = verify(copy)
            finally:
                copy.close()
            if verdict != "ok":
                raise StoreError(f"{target}: the backup failed verification ({verdict})")
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(target)
            raise
        return result

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()
            if self._identity is not None:
                _OPEN_FILES.closed(self._identity)


def read_only(path: str, budget: float) -> sqlite3.Connection:
    """A read-only connection to the store file ``path`` that creates nothing and gives
    up after ``budget`` seconds (a query past it is interrupted), for a reader that must
    never wait nor write (shell completion). With no ``-wal`` file next to the store no
    writer is active and everything is in the file, so it is read as immutable (no
    ``-shm``/``-wal`` created); otherwise the writer's ``-wal``/``-shm`` are shared."""
    uri = "file:" + os.path.abspath(path).replace("%", "%25").replace("?", "%3f")
    uri = uri.replace("#", "%23") + "?mode=ro"
    if not os.path.exists(path + "-wal"):
        uri += "&immutable=1"
    conn = sqlite3.connect(uri, uri=True, timeout=budget, isolation_level=None)
    deadline = time.monotonic() + budget
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    return conn


class _Session:
    """The guard behind :attr:`SQLiteFile.session`."""

    __slots__ = ("_file",)

    def __init__(self, file: SQLiteFile) -> None:
        self._file = file

    def __enter__(self) -> sqlite3.Connection:
        self._file.lock.acquire()
        try:
            return self._file.connection()
        except BaseException:
            self._file.lock.release()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: object
    ) -> None:
        self._file.lock.release()
        if isinstance(exc, sqlite3.Error):
            raise self._file.translate(exc) from None
