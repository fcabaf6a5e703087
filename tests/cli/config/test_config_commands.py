"""``config init|show|set`` and the precedence flag > env > file > default."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS


def config_file(home):
    return home / "xdg" / "localqueue" / "config.yaml"


def show(cli, **kwargs):
    [settings] = cli.json("config", "show", store=False, **kwargs)
    return settings


def test_show_defaults_without_a_file(cli, home):
    assert show(cli) == {
        "store_path": "./localqueue_queue.sqlite3",
        "retry_store_path": "./localqueue_retries.sqlite3",
        "durability": "full",
        "lease_timeout": 30.0,
        "strict": False,
        "config_file": str(config_file(home)),
    }
    assert not config_file(home).exists()


def test_init_writes_absolute_store_paths_and_refuses_to_overwrite(cli, home):
    """cron runs commands elsewhere (often in $HOME): a relative store_path would name
    another, new store there, so init writes where the stores are now."""
    [written] = cli.json("config", "init", "--store-path", "./jobs.sqlite3", store=False)
    assert written == {
        "config_file": str(config_file(home)),
        "store_path": str(cli.cwd / "jobs.sqlite3"),
        "retry_store_path": str(cli.cwd / "localqueue_retries.sqlite3"),
    }
    text = config_file(home).read_text()
    assert f"store_path: {cli.cwd / 'jobs.sqlite3'}" in text
    assert show(cli, cwd=home)["store_path"] == str(cli.cwd / "jobs.sqlite3")
    again = cli("config", "init", store=False)
    assert again.returncode == 1
    assert "--force" in again.stderr
    cli.json("config", "init", "--force", "--retry-store-path", "r.db", store=False)
    assert show(cli)["retry_store_path"] == str(cli.cwd / "r.db")
    assert show(cli)["store_path"] == str(cli.cwd / "localqueue_queue.sqlite3")
    url = "postgresql://u@db.example/jobs"
    cli.json("config", "init", "--force", "--store-path", url, store=False)
    assert show(cli)["store_path"] == url
    cli.json("config", "init", "--force", "--store-path", "lmdb://envdir", store=False)
    assert show(cli)["store_path"] == f"lmdb://{cli.cwd / 'envdir'}"


@pytest.mark.parametrize(
    ("store_path", "retry_store_path"),
    [
        ("app/jobs.sqlite3", "{cwd}/app/localqueue_retries.sqlite3"),
        ("lmdb://envdir", "lmdb://{cwd}/envdir"),
        ("postgresql://u@db.example/jobs", "postgresql://u@db.example/jobs"),
    ],
)
def test_init_writes_the_retry_store_kept_with_the_queue_store(
    cli, home, store_path, retry_store_path
):
    [written] = cli.json("config", "init", "--store-path", store_path, store=False)
    expected = retry_store_path.format(cwd=cli.cwd)
    assert written["retry_store_path"] == expected
    assert f"retry_store_path: {expected}" in config_file(home).read_text()
    assert show(cli, cwd=home)["retry_store_path"] == expected


def test_show_derives_the_retry_store_from_the_store_in_effect(cli, monkeypatch):
    monkeypatch.setenv("LOCALQUEUE_STORE_PATH", "/srv/app/q.sqlite3")
    assert show(cli)["retry_store_path"] == "/srv/app/localqueue_retries.sqlite3"
    monkeypatch.setenv("LOCALQUEUE_STORE_PATH", "lmdb:///srv/app/env")
    assert show(cli)["retry_store_path"] == "lmdb:///srv/app/env"
    monkeypatch.setenv("LOCALQUEUE_RETRY_STORE_PATH", "r.sqlite3")  # set: used as it is
    assert show(cli)["retry_store_path"] == "r.sqlite3"


def test_set_checks_keys_and_types(cli, home):
    cli.json("config", "set", "durability", "normal", store=False)
    cli.json("config", "set", "lease_timeout", "12.5", store=False)
    assert show(cli)["durability"] == "normal"
    assert show(cli)["lease_timeout"] == 12.5
    for key, value in [("bogus", "1"), ("durability", "sometimes"), ("lease_timeout", "-3")]:
        result = cli("config", "set", key, value, store=False)
        assert result.returncode == 2, (key, value)
        assert result.stderr.startswith("localqueue: error:")
    assert "bogus" not in config_file(home).read_text()


def test_xdg_config_home_unset_falls_back_to_home_dot_config(cli, home, monkeypatch):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    cli.json("config", "set", "store_path", "from-home.db", store=False)
    assert (home / "home" / ".config" / "localqueue" / "config.yaml").exists()
    assert show(cli)["store_path"] == "from-home.db"


def test_localqueue_config_names_the_file_read_and_written(cli, home, monkeypatch):
    other = home / "elsewhere" / "lq.yaml"
    monkeypatch.setenv("LOCALQUEUE_CONFIG", str(other))
    cli.json("config", "init", "--store-path", "other.db", store=False)
    assert other.exists()
    assert not config_file(home).exists()
    assert show(cli)["store_path"] == str(cli.cwd / "other.db")
    assert show(cli)["config_file"] == str(other)


def test_localqueue_config_naming_a_missing_file_is_an_error_but_for_init(cli, home, monkeypatch):
    """A typo in LOCALQUEUE_CONFIG must not fall back to the defaults (another store)."""
    missing = home / "typo" / "lq.yaml"
    monkeypatch.setenv("LOCALQUEUE_CONFIG", str(missing))
    for args in (
        ("config", "show"),
        ("config", "set", "durability", "normal"),
        ("queue", "add", "q", "--value", "1"),
        ("queue", "stats"),
    ):
        result = cli(*args, store=False)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr == (
            f"localqueue: error: LOCALQUEUE_CONFIG names {missing}, which does not exist"
            " (create it with `localqueue config init`)\n"
        )
    assert not missing.exists()
    assert not (cli.cwd / "localqueue_queue.sqlite3").exists()
    cli.json("config", "init", store=False)
    assert show(cli)["config_file"] == str(missing)


@pytest.mark.parametrize("where", ["set", "file", "env", "flag"])
def test_enum_values_are_case_insensitive(cli, home, monkeypatch, where):
    if where == "set":
        cli.json("config", "set", "durability", "NORMAL", store=False)
    elif where == "file":
        config_file(home).parent.mkdir(parents=True)
        config_file(home).write_text("durability: Normal\n")
    elif where == "env":
        monkeypatch.setenv("LOCALQUEUE_DURABILITY", "NORMAL")
    if where != "flag":
        assert show(cli)["durability"] == "normal"
    added = cli("queue", "add", "q", "--value", "1", "--durability", "NORMAL")
    assert added.returncode == 0, added.stderr
    assert cli("queue", "stats", "q", "--format", "PROMETHEUS").returncode == 0


def test_precedence_flag_over_env_over_file_over_default(cli, home, monkeypatch):
    work = cli.cwd
    cli.json("queue", "add", "q", "--value", "0", store=False)
    assert (work / "localqueue_queue.sqlite3").exists()  # the default, in the cwd

    cli.json("config", "set", "store_path", "file.db", store=False)
    cli.json("queue", "add", "q", "--value", "1", store=False)
    assert (work / "file.db").exists()

    monkeypatch.setenv("LOCALQUEUE_STORE_PATH", "env.db")
    cli.json("queue", "add", "q", "--value", "2", store=False)
    assert (work / "env.db").exists()

    cli.json("queue", "add", "q", "--value", "3", "--store-path", "flag.db", store=False)
    assert (work / "flag.db").exists()

    for name, expected in [("localqueue_queue.sqlite3", 1), ("file.db", 1), ("env.db", 1)]:
        size = cli("queue", "size", "q", "--store-path", name, store=False).stdout
        assert size == f"{expected}\n", name


def test_env_durability_and_bad_env_values(cli, monkeypatch):
    monkeypatch.setenv("LOCALQUEUE_DURABILITY", "normal")
    assert show(cli)["durability"] == "normal"
    monkeypatch.setenv("LOCALQUEUE_DURABILITY", "fast")
    result = cli("config", "show", store=False)
    assert result.returncode == 2
    assert "LOCALQUEUE_DURABILITY" in result.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("store_path: [1, 2]\n", "store_path"),
        ("unknown_key: 1\n", "unknown setting"),
        ("- a list\n", "mapping"),
        ("store_path: 'unterminated\n", "not valid YAML"),
    ],
)
def test_a_broken_config_file_is_a_clear_usage_error(cli, home, text, message):
    config_file(home).parent.mkdir(parents=True)
    config_file(home).write_text(text)
    result = cli("queue", "size", "q", store=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_durability_flag_is_checked(cli):
    result = cli("queue", "add", "q", "--value", "1", "--durability", "fast")
    assert result.returncode == 2
    assert "--durability" in result.stderr
    ok = cli("queue", "add", "q", "--value", "1", "--durability", "normal")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["value"] == 1


def test_retry_store_path_resolution(cli, monkeypatch):
    monkeypatch.setenv("LOCALQUEUE_RETRY_STORE_PATH", "env-retries.db")
    cli.json("queue", "add", "q", "--value", "1", store=False)
    cli.json("queue", "process", "q", "tests_handlers:ok", store=False)
    assert (cli.cwd / "env-retries.db").exists()
    assert not (cli.cwd / "localqueue_retries.sqlite3").exists()


def test_a_tilde_in_a_store_path_means_home(cli, home):
    cli.json("config", "set", "store_path", "~/jobs.sqlite3", store=False)
    assert show(cli)["store_path"] == str(home / "home" / "jobs.sqlite3")
