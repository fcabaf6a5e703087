"""What every command shares, without Typer: settings, opening queues, writing JSON lines.

Nothing here imports Typer, so the fast path of ``queue add`` (see ``app.main``) can use it.
"""

from __future__ import annotations

import os
import sys

from localqueue import codec, config
from localqueue.cli.exit_codes import CliError

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from typing import Any, TextIO

    from localqueue.backends import StoreAddress
    from localqueue.queue import PersistentQueue
    from localqueue.stores.base import QueueStore

__all__ = [
    "NoSuchStore",
    "check_queue_known",
    "emit",
    "emit_raw",
    "open_queue",
    "open_store",
    "require_backend",
    "require_server_store",
    "require_store",
    "settings",
    "stderr_is_tty",
    "store_exists",
    "wait_for_reader",
]


class NoSuchStore(CliError):
    """The store a reading command or a worker names does not exist (exit 1): only
    ``queue add`` creates one."""


def settings(**flags: Any) -> config.Settings:
    """The effective settings for these flags (None means the flag was not given)."""
    return config.resolve(flags)


def open_queue(
    name: str,
    conf: config.Settings,
    *,
    lease_timeout: float | None = None,
    create: bool = False,
) -> PersistentQueue:
    """Open queue ``name`` on the store the settings point at.

    Only a command that enqueues (``create``) may create the store. For every other one
    a store that does not exist is an error (exit 1) and nothing is created, and a queue
    name the store never held is a warning naming the queues it knows (``strict``
    setting: an error, exit 4) -- see :func:`check_queue_known`. An invalid ``name`` is a
    usage error (exit 2) before the store is looked at, whether it exists or not."""
    from localqueue.queue import PersistentQueue

    codec.validate_queue_name(name)  # before a store is opened, or created
    store = open_store(conf, create=create)
    try:
        queue = PersistentQueue(
            name,
            store=store,
            lease_timeout=conf.lease_timeout if lease_timeout is None else lease_timeout,
        )
        if not create:
            check_queue_known(store, queue.name, conf)
    except BaseException:
        store.close()
        raise
    return queue


def store_exists(address: StoreAddress) -> bool:
    """Whether the store at ``address`` exists: the SQLite file, the LMDB environment's
    directory. A PostgreSQL URL passes here: :func:`require_server_store` asks the
    server once the store is open."""
    return address.kind == "postgres" or os.path.lexists(address.where)


def require_backend(address: StoreAddress) -> None:
    """A usage error (exit 2) naming the install when the store at ``address`` needs an
    optional dependency that cannot be imported (``pip install "localqueue[postgres]"``)."""
    from localqueue.backends import OPTIONAL

    if address.kind not in OPTIONAL:
        return
    module, extra, what = OPTIONAL[address.kind]
    scheme = str(address).partition("://")[0]
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        from localqueue.cli.exit_codes import UsageError

        raise UsageError(
            f"{scheme}:// is a {what} store, which needs the {module} package ({exc}):"
            f' pip install "localqueue[{extra}]"'
        ) from None


def require_server_store(store: QueueStore, address: StoreAddress) -> None:
    """For a PostgreSQL store: exit 1 with ``no such store`` unless its schema holds a
    queue store already (any other use would create it: a typo in ``?schema=``)."""
    if address.kind != "postgres":
        return
    from localqueue.stores.postgres import PostgresQueueStore

    if isinstance(store, PostgresQueueStore) and not store.exists():
        raise NoSuchStore(f"no such store: {store_label(str(address))} (schema {store.schema})")


def require_store(address: StoreAddress) -> None:
    """Exit 1 with ``no such store: PATH`` unless the store exists (see :func:`store_exists`)."""
    if not store_exists(address):
        raise NoSuchStore(f"no such store: {address}")


def store_label(path: str) -> str:
    """``path`` for a diagnostic: a URL without its password."""
    if "://" not in path or "@" not in path:
        return path
    scheme, _, rest = path.partition("://")
    userinfo, at, host = rest.rpartition("@")
    return f"{scheme}://{userinfo.partition(':')[0]}{at}{host}"


def check_queue_known(store: QueueStore, name: str, conf: config.Settings) -> None:
    """Warn on stderr when the store never held queue ``name`` (a typo looks like an
    empty queue otherwise), naming the queues it knows; with the ``strict`` setting
    (``--strict``, ``strict: true``) raise instead: exit 4, nothing done."""
    from localqueue.errors import LocalQueueError

    try:
        known = store.known_queues()
    except LocalQueueError:  # busy or damaged: the command's own work meets it and says
        return  # so (a --forever worker backs off rather than dying at start)
    if name in known:
        return
    from localqueue.cli.exit_codes import NOT_FOUND, warning

    listed = f"queues: {', '.join(known)}" if known else "it holds no queues"
    message = f"no queue {name!r} in {store_label(conf.store_path)} ({listed})"
    if conf.strict:
        raise CliError(message, NOT_FOUND)
    warning(message)


def emit(value: Any, stdout: TextIO | None = None) -> None:
    """Write ``value`` as one compact JSON line on stdout (or ``stdout``) and flush it."""
    emit_raw(codec.dumps_line(value), stdout)


def emit_raw(data: bytes, stdout: TextIO | None = None) -> None:
    """Write bytes (whole lines) on stdout (or ``stdout``) and flush them."""
    stream = sys.stdout if stdout is None else stdout
    if stream is None:  # started with stdout closed (>&-)
        raise CliError("stdout is closed: nowhere to write the output")
    out = stream.buffer
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        raise  # the reader left (| head): app.main ends quietly
    except OSError as exc:  # a full disk, a closed descriptor...
        raise CliError(f"cannot write to stdout: {exc.strerror or exc}") from None


def wait_for_reader(seconds: float) -> bool:
    """Sleep ``seconds``; return False sooner when stdout's reader is gone (the ``head``
    of ``| head -n 1`` exited), so a ``--watch`` ends with its reader, like ``tail -f``."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # 0: only POLLERR/POLLHUP, a closed reader
    except (AttributeError, OSError, ValueError):  # no stdout to watch: just sleep
        import time

        time.sleep(seconds)
        return True
    return not poller.poll(seconds * 1000)


def stderr_is_tty() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def color_allowed() -> bool:
    """NO_COLOR (https://no-color.org) turns colour off; so does a non-terminal stderr."""
    return not os.environ.get("NO_COLOR") and stderr_is_tty()


def check_seconds(option: str, seconds: float) -> float:
    """A usage error unless ``seconds`` is a finite number >= 0."""
    from localqueue.cli.exit_codes import UsageError

    if not 0 <= seconds < float("inf"):
        raise UsageError(f"{option} must be a number of seconds >= 0, got {seconds!r}")
    return seconds


def stdout_is_tty() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def open_store(conf: config.Settings, *, create: bool = False) -> QueueStore:
    """Open the store the settings name. Only a command that enqueues (``create``) may
    create it: for every other one it must exist (exit 1, nothing created)."""
    from localqueue.stores import open_store as open_any

    address = conf.store
    require_backend(address)
    if not create:
        require_store(address)
    store = open_any(address, durability=conf.durability)
    if not create:
        try:
            require_server_store(store, address)
        except BaseException:
            store.close()
            raise
    return store
