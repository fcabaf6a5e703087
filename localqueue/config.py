"""Settings for the command line: defaults < config file < ``LOCALQUEUE_*`` env < flags.

The config file is YAML (``$XDG_CONFIG_HOME/localqueue/config.yaml``, else
``~/.config/localqueue/config.yaml``; ``LOCALQUEUE_CONFIG`` names another file). It is read
with ``yaml.safe_load`` and only when it exists, so a command line without a config file
never imports PyYAML. Every setting is checked (unknown keys and wrong types are errors).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = [
    "SETTINGS",
    "ConfigError",
    "Setting",
    "Settings",
    "config_path",
    "load_file",
    "named",
    "parse_value",
    "resolve",
    "write_file",
]

CONFIG_ENV = "LOCALQUEUE_CONFIG"


class ConfigError(ValueError):
    """A setting has a bad value, or the config file cannot be read or is malformed."""


def _path(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("must be a non-empty string (a path or URL)")
    return os.path.expanduser(value) if value.startswith("~") else value


def _durability(value: object) -> str:
    text = value.lower() if isinstance(value, str) else value  # NORMAL means normal
    if text not in ("full", "normal"):
        raise ConfigError("must be 'full' or 'normal'")
    return str(text)


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLEANS.update({"false": False, "no": False, "off": False, "0": False})


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise ConfigError("must be true or false")


def _positive_seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ConfigError("must be a number of seconds > 0")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError("must be a number of seconds > 0") from None
    if not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError("must be a number of seconds > 0")
    return float(value)


class Setting:
    """One setting: its config key, environment variable, default and checker.

    (Plain classes here and below: a dataclass costs a millisecond of start-up each.)"""

    __slots__ = ("check", "choices", "default", "env", "help", "key")

    def __init__(
        self,
        key: str,
        env: str,
        default: Any,
        check: Callable[[object], Any],
        help: str,
        choices: tuple[str, ...] = (),
    ) -> None:
        self.key, self.env, self.default, self.check, self.help = key, env, default, check, help
        self.choices = choices  # the values to offer (shell completion), when they are few


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "store_path",
            "LOCALQUEUE_STORE_PATH",
            "./localqueue_queue.sqlite3",
            _path,
            "queue store: a SQLite file, lmdb://DIR or postgresql://...",
        ),
        Setting(
            "retry_store_path",
            "LOCALQUEUE_RETRY_STORE_PATH",
            None,  # kept with the queue store: StoreAddress.attempts
            _path,
            "retry store: where `queue process` and `queue exec` count attempts (a SQLite"
            " file, lmdb://DIR or postgresql://...)",
        ),
        Setting(
            "durability",
            "LOCALQUEUE_DURABILITY",
            "full",
            _durability,
            "SQLite commit durability: full (fsync every commit) or normal",
            ("full", "normal"),
        ),
        Setting(
            "lease_timeout",
            "LOCALQUEUE_LEASE_TIMEOUT",
            30.0,
            _positive_seconds,
            "seconds a leased message stays invisible to other workers",
        ),
        Setting(
            "strict",
            "LOCALQUEUE_STRICT",
            False,
            _boolean,
            "exit 4 instead of warning when a command names a queue the store never held",
            ("true", "false"),
        ),
    )
}


class Settings:
    """The effective settings of one command line. The stores' paths are parsed once,
    here: ``store`` and ``retry_store`` are their addresses, ``retry_store`` derived from
    ``store`` (kept with the queues) when no retry store is set."""

    __slots__ = (
        "config_file",
        "durability",
        "lease_timeout",
        "retry_store",
        "store",
        "strict",
    )

    def __init__(
        self,
        *,
        store_path: str,
        retry_store_path: str | None,
        durability: str,
        lease_timeout: float,
        strict: bool,
        config_file: str,
    ) -> None:
        from localqueue.backends import StoreAddress

        self.store = StoreAddress.parse(store_path)
        self.retry_store = (
            self.store.attempts()
            if retry_store_path is None
            else StoreAddress.parse(retry_store_path)
        )
        self.durability = durability
        self.lease_timeout = lease_timeout
        self.strict = strict
        self.config_file = config_file

    def __repr__(self) -> str:
        return f"Settings({self.to_dict()!r})"

    @property
    def store_path(self) -> str:
        return str(self.store)

    @property
    def retry_store_path(self) -> str:
        return str(self.retry_store)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store_path": self.store_path,
            "retry_store_path": self.retry_store_path,
            "durability": self.durability,
            "lease_timeout": self.lease_timeout,
            "strict": self.strict,
            "config_file": self.config_file,
        }


def config_path(environ: Mapping[str, str] | None = None) -> str:
    """The config file this command line uses (it may not exist)."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_ENV)
    if named:
        return named
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "localqueue", "config.yaml")


def named(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``LOCALQUEUE_CONFIG`` names the config file (which must then exist)."""
    return bool((os.environ if environ is None else environ).get(CONFIG_ENV))


def parse_value(key: str, value: object, origin: str) -> Any:
    """Check one setting's value; ConfigError names ``origin`` and the key."""
    setting = SETTINGS.get(key)
    if setting is None:
        known = ", ".join(SETTINGS)
        raise ConfigError(f"{origin}: unknown setting {key!r} (known: {known})")
    try:
        return setting.check(value)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {key} {exc} (got {value!r})") from None


def load_file(path: str, *, required: bool = False) -> dict[str, Any]:
    """The checked settings in ``path``; ``{}`` when the file does not exist, unless it
    is ``required`` (a file ``LOCALQUEUE_CONFIG`` names: a typo there must not silently
    fall back to the defaults)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"{CONFIG_ENV} names {path}, which does not exist"
                " (create it with `localqueue config init`)"
            ) from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return {str(key): parse_value(str(key), value, path) for key, value in data.items()}


def write_file(path: str, values: Mapping[str, Any]) -> None:
    """Write ``values`` (already checked) as YAML, atomically, creating directories."""
    import yaml

    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as file:
        file.write(yaml.safe_dump(dict(values), sort_keys=False))
    os.replace(temp, path)


def resolve(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge defaults < config file < environment < ``flags`` (None means "not given")."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    values: dict[str, Any] = {key: setting.default for key, setting in SETTINGS.items()}
    values.update(load_file(path, required=named(env)))
    for key, setting in SETTINGS.items():
        raw = env.get(setting.env)
        if raw:
            values[key] = parse_value(key, raw, f"environment variable {setting.env}")
    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = parse_value(key, value, f"--{key.replace('_', '-')}")
    return Settings(config_file=path, **values)
