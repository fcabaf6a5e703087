"""Every shell example in README.md, docs/ and examples/ runs and does what it says.

The ```sh blocks of README.md and docs/*.md run in a temp directory holding copies of
examples/, completions/ and man/ (as in a checkout), with HOME there too and a stub
``curl`` first on PATH. Blocks preceded by ``<!-- no-test: ... -->`` (they create venvs and
install packages) are the only ones skipped. The examples' own tests post to a real HTTP
server on 127.0.0.1."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import BIN, LOCALQUEUE, REPO, needs

EXAMPLES = REPO / "examples"
BLOCK = re.compile(r"(<!-- no-test[^>]*-->\n)?```sh\n(.*?)```", re.S)
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# (document, block, skipped) for every ```sh block
SHELL_BLOCKS = [
    (doc.name, m[2], bool(m[1])) for doc in DOCUMENTS for m in BLOCK.finditer(doc.read_text())
]
README_BLOCKS = [(block, skipped) for doc, block, skipped in SHELL_BLOCKS if doc == "README.md"]
CURL_STUB = '#!/bin/sh\nprintf "%s\\n" "$@" >> "$CURL_LOG"\n'


def run(args: list[str], env: dict[str, str], cwd: Path, **kwargs: Any) -> Any:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, **kwargs
    )


def jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def statuses(text: str) -> list[str]:
    """The worker result lines among other output (make echoes its commands)."""
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line["status"] for line in lines if "status" in line]


# -- README.md and docs/ ------------------------------------------------------------------


def test_the_readme_links_every_page_of_docs_and_every_link_resolves():
    pages = {f"docs/{doc.name}" for doc in DOCUMENTS[1:]}
    assert len(pages) >= 7  # the reference moved out of the README
    readme = (REPO / "README.md").read_text()
    assert pages <= set(re.findall(r"\]\((docs/[^)#]+)\)", readme))
    for doc in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def test_only_the_install_blocks_are_skipped():
    skipped = [block for _, block, no_test in SHELL_BLOCKS if no_test]
    assert len(skipped) == 3
    assert all("pip install" in block for block in skipped)
    fresh = [block for block in skipped if FRESH.match(block)]
    assert len(fresh) == 2  # the two fresh-machine commands, one line each
    assert all(block.count("\n") == 1 for block in fresh)
    assert len(README_BLOCKS) - len(skipped) >= 4


FRESH = re.compile(r"python3 -m venv (\S+) && ")


def fresh_machine_commands() -> list[tuple[str, list[list[str]]]]:
    """The README's two fresh-machine commands: (the venv each makes, its commands)."""
    return [
        (match[1], [shlex.split(command) for command in block.strip().split(" && ")])
        for block, no_test in README_BLOCKS
        if no_test and (match := FRESH.match(block))
    ]


def test_the_two_fresh_machine_commands_use_a_venv_each():
    """Run one after the other in one checkout, neither undoes the other's install."""
    (run_venv, run_it), (test_venv, test_it) = fresh_machine_commands()
    assert run_venv != test_venv
    for venv, commands in ((run_venv, run_it), (test_venv, test_it)):
        assert commands[0] == ["python3", "-m", "venv", venv]
        assert all(command[0].startswith(f"{venv}/bin/") for command in commands[1:])
    assert ".[cli]" in run_it[1] and "-e" not in run_it[1]
    assert run_it[-1][-2:] == ["emails", "examples.email_worker:send_email"]
    assert test_it[1][-2:] == ["-e", ".[test]"] and test_it[-1][1:] == ["-m", "pytest"]


def test_ci_runs_the_readme_test_command():
    """.ci/run makes its venv elsewhere, then runs the same commands in it."""
    ((venv, commands),) = fresh_machine_commands()[1:]
    ci = [shlex.split(line, comments=True) for line in (REPO / ".ci/run").read_text().splitlines()]
    for command in commands:
        assert [word.replace(venv, "$venv") for word in command] in ci, command


@pytest.fixture
def checkout(tmp_path: Path, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A working directory like a checkout, and the environment to run README blocks in."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("examples", "completions", "man"):
        shutil.copytree(REPO / name, work / name)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "curl").write_text(CURL_STUB)
    (stubs / "curl").chmod(0o755)
    env = dict(env, PATH=f"{stubs}:{env['PATH']}", CURL_LOG=str(tmp_path / "curl.log"))
    return work, env


@needs("bash", "jq")
@pytest.mark.parametrize(
    "block",
    [pytest.param(block, id=f"{doc}: {block[:40]}") for doc, block, no_test in SHELL_BLOCKS
     if not no_test],
)  # fmt: skip
def test_documented_shell_block(block: str, checkout):
    work, env = checkout
    result = run(["bash", "-e", "-o", "pipefail", "-c", block], env, work)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = jsonl(result.stdout) if result.stdout.startswith("{") else []
    if "examples.email_worker:send_email" in block:  # Quickstart
        assert out[-1]["status"] == "acked" and out[-1]["queue"] == "emails"
        assert "send_email: to=user@example.com" in result.stderr
    elif "examples/process_webhook.sh" in block:
        assert out[-1]["status"] == "acked" and out[-1]["queue"] == "webhooks"
        posted = (work.parent / "curl.log").read_text()
        assert "https://example.com/hook" in posted
        body = json.loads(posted.split("--data\n")[1].split("\n")[0])
        assert body == {"event": "signup", "data": {"user": 42}, "message_id": out[0]["id"],
                        "attempt": 1}  # fmt: skip
    elif "localqueue completion --install" in block:  # Install: completion, man page
        installed = Path(env["HOME"]) / ".local/share/bash-completion/completions/localqueue"
        assert installed.read_bytes() == (REPO / "completions/localqueue.bash").read_bytes()
        assert f"wrote {installed}" in result.stderr
        assert "localqueue queue add [OPTIONS] NAME" in result.stdout
    elif "--key account-42" in block:  # enqueue once: the second add is a duplicate
        assert [m["key"] for m in out] == ["account-42", "account-42", "account-7"]
        assert "duplicate" not in out[0] and out[1] == {**out[0], "duplicate": True}
        assert out[2]["priority"] == 10 and out[2]["state"] == "ready"
        size = run([LOCALQUEUE, "queue", "size", "sync"], env, work)
        assert size.stdout == "2\n"
    elif "queue pause webhooks" in block:  # the drain leases nothing while paused
        assert "queue 'webhooks' is paused" in result.stderr
        assert [m["paused"] for m in out] == [True, True, False]  # pause, stats, resume
        assert out[1]["ready"] == 1
    elif "queue limit webhooks --rate 10/s" in block:  # limits and groups, kept in the store
        webhooks, invoices, stats = out
        assert (webhooks["rate"], webhooks["max_inflight"], webhooks["per_group"]) == (
            "10/s",
            2,
            None,
        )
        assert invoices["per_group"] == 1 and stats["per_group"] == 1
        assert (stats["ready"], stats["held"]) == (2, 0)
        popped = [run([LOCALQUEUE, "queue", "pop", "invoices"], env, work) for _ in range(2)]
        assert sorted(json.loads(p.stdout)["group"] for p in popped) == ["c1", "c2"]
    elif "queue keep hooks 7d" in block:  # a kept history: the job's record, its output
        added, keep, done, record = out
        assert keep == {"queue": "hooks", "keep_seconds": 604800.0, "keep_count": None}
        assert done["status"] == "acked" and record["id"] == added["id"] == done["id"]
        assert record["state"] == "finished" and record["output"]["stdout"] == (
            '{"event":"signup"}\n'
        )
    elif block.startswith("echo"):  # the opening lines: a message in, an empty queue drained
        assert out[0]["queue"] == "emails" and out[0]["value"] == {"to": "a@b.c"}
        size = run([LOCALQUEUE, "queue", "size", "emails"], env, work)
        assert size.stdout == "1\n"
    else:
        pytest.fail(f"a shell block without an outcome check:\n{block}")


# -- a local webhook receiver -------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """200 for POST /hook, 500 for anything else; every request is recorded."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(200 if self.path == "/hook" else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def enqueue(env: dict[str, str], cwd: Path, queue: str, *values: Any) -> list[str]:
    lines = "".join(json.dumps(value) + "\n" for value in values)
    result = run([LOCALQUEUE, "queue", "add", queue], env, cwd, input=lines)
    assert result.returncode == 0, result.stderr
    return [message["id"] for message in jsonl(result.stdout)]


# -- examples/ ----------------------------------------------------------------------------


@needs("jq", "curl")
def test_process_webhook_posts_and_fails_on_http_errors(receiver, env, tmp_path):
    ok, fails, broken = enqueue(
        env,
        tmp_path,
        "webhooks",
        {"url": f"{receiver.url}/hook", "event": "signup", "data": {"user": 42}},
        {"url": f"{receiver.url}/down", "event": "signup", "data": {}},
        {"event": "no url"},
    )
    exec_ = [LOCALQUEUE, "queue", "exec", "webhooks", "--max-tries", "1"]
    result = run([*exec_, "--", str(EXAMPLES / "process_webhook.sh")], env, tmp_path)
    assert result.returncode == 5, result.stderr  # two were dead-lettered
    status = {line["id"]: line for line in jsonl(result.stdout)}
    assert status[ok]["status"] == "acked"
    assert status[fails]["status"] == "dead"
    assert status[fails]["error"]["exit_code"] == 22  # curl --fail: HTTP 500
    assert status[broken]["status"] == "dead"  # jq -e: no .url
    (path, headers, body), second = receiver.received
    assert path == "/hook" and second[0] == "/down"
    assert headers["Idempotency-Key"] == ok
    assert headers["Content-Type"] == "application/json"
    assert body == {"event": "signup", "data": {"user": 42}, "message_id": ok, "attempt": 1}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A stand-in for /srv/app: the examples and a .venv that has localqueue."""
    root = tmp_path / "app"
    root.mkdir()
    shutil.copytree(EXAMPLES, root / "examples")
    (root / ".venv").symlink_to(BIN.parent)
    return root


def at(app: Path, text: str) -> str:
    return text.replace("/srv/app", str(app))


@needs("flock", "jq", "curl")
def test_crontab_line_drains_once_at_a_time(receiver, app, env):
    lines = [line for line in (EXAMPLES / "crontab").read_text().splitlines() if line.strip()]
    cron_env = {"HOME": env["HOME"], "no_proxy": "127.0.0.1", "LC_ALL": "C.UTF-8"}
    jobs = []
    for line in lines:
        if line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if equals and re.fullmatch(r"[A-Z_]+", name):
            cron_env[name] = at(app, value)
        else:
            jobs.append(at(app, line.split(None, 5)[5]))  # after the 5 time fields
    assert len(jobs) == 1 and jobs[0].startswith("flock -n -E 0 ")
    enqueue(cron_env, app, "webhooks", *[{"url": f"{receiver.url}/hook", "event": "e"}] * 2)
    lock = Path(shlex.split(jobs[0])[4])
    with open(lock, "w") as held:  # the previous run is still going
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = run(["/bin/sh", "-c", jobs[0]], cron_env, app)
    assert busy.returncode == 0 and receiver.received == []  # skipped: no failure
    done = run(["/bin/sh", "-c", jobs[0]], cron_env, app)
    assert done.returncode == 0, done.stderr
    statuses = [line["status"] for line in jsonl((app / "webhooks.jsonl").read_text())]
    assert statuses == ["acked", "acked"] and len(receiver.received) == 2


@needs("make", "jq")
def test_makefile_target_fails_the_build_on_dead_letters(env, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\ny\n")
    (tmp_path / "data" / "b.csv").write_text("z\n")
    make = ["make", "--no-print-directory", "-f", str(EXAMPLES / "Makefile")]
    result = run([*make, "reports"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert statuses(result.stdout) == ["acked"] * 2
    (tmp_path / "data" / "c.csv").write_text("w\n")
    run(["ln", "-s", "missing", "data/d.csv"], env, tmp_path)  # listed, but cannot be read
    result = run([*make, "reports"], env, tmp_path)
    assert result.returncode != 0
    assert "Error 5" in result.stderr  # make names queue exec's exit code
    assert sorted(statuses(result.stdout)) == sorted(["acked"] * 3 + ["released", "dead"])


@needs("jq")
def test_ci_step_runs_the_jobs_and_checks_for_dead_letters(env, tmp_path):
    import yaml

    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["integration"]["steps"] if "localqueue" in str(s)]
    step_env = {k: v.replace("${{ runner.temp }}", str(tmp_path)) for k, v in step["env"].items()}
    # GitHub Actions runs `run:` with bash --noprofile --norc -eo pipefail
    shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
    result = run(shell, dict(env, **step_env), tmp_path)
    assert result.returncode == 0, result.stderr
    out = jsonl(result.stdout)
    assert statuses(result.stdout) == ["acked", "acked"]
    assert out[-1]["dead"] == 0 and out[-1]["total"] == 0


def unit(text: str) -> dict[str, list[str]]:
    """A systemd unit's settings (key -> values, in order; sections flattened)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_settings():
    settings = unit((EXAMPLES / "localqueue-webhooks.service").read_text())
    (command,) = settings["ExecStart"]
    argv = shlex.split(command)
    assert argv[1:4] == ["queue", "exec", "webhooks"] and "--forever" in argv
    job_timeout = float(argv[argv.index("--timeout") + 1])
    assert settings["KillSignal"] == ["SIGTERM"]
    assert settings["KillMode"] == ["mixed"]  # the running job is not signalled by systemd
    assert float(settings["TimeoutStopSec"][0]) > job_timeout
    assert settings["Restart"] == ["on-failure"]
    assert "2" in settings["RestartPreventExitStatus"][0].split()


@needs("systemd-analyze")
def test_systemd_unit_verifies(app, tmp_path):
    unit_file = tmp_path / "localqueue-webhooks.service"
    unit_file.write_text(at(app, (EXAMPLES / "localqueue-webhooks.service").read_text()))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs("jq", "curl")
def test_systemd_worker_stops_cleanly_on_sigterm_and_exits_2_on_usage_errors(receiver, app, env):
    settings = unit(at(app, (EXAMPLES / "localqueue-webhooks.service").read_text()))
    service_env = dict(env, **dict(v.split("=", 1) for v in settings["Environment"]))
    argv = shlex.split(settings["ExecStart"][0].replace("%H", socket.gethostname()))
    enqueue(service_env, app, "webhooks", {"url": f"{receiver.url}/hook", "event": "e"})
    worker = subprocess.Popen(
        argv, env=service_env, cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert json.loads(worker.stdout.readline())["status"] == "acked"  # it is working
        worker.send_signal(signal.SIGTERM)  # what `systemctl stop` sends (KillSignal)
        assert worker.wait(timeout=30) == 0  # not a failure: Restart=on-failure stays quiet
    finally:
        worker.kill()
        worker.communicate()
    usage = run([*argv[: argv.index("--")], "--no-such-flag"], service_env, app)
    assert usage.returncode == 2  # RestartPreventExitStatus: no restart loop


class Pages(BaseHTTPRequestHandler):
    """A small site for the pipeline example: pages have a title, /missing is a 404, and
    /slow answers only once the test sets ``server.go``. Every request is recorded."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        if self.path == "/slow":
            self.server.go.wait(60)  # type: ignore[attr-defined]
        body = f"<html><title>page {self.path}</title></html>".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    server.requests = []  # type: ignore[attr-defined]
    server.go = threading.Event()  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.go.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


PIPELINE = ["make", "--no-print-directory", "-f", str(EXAMPLES / "pipeline" / "Makefile")]


def stored_pages(work: Path) -> list[str]:
    """The URLs of pages.jsonl, one per line written."""
    return [json.loads(line)["url"] for line in (work / "pages.jsonl").read_text().splitlines()]


def queue_totals(env: dict[str, str], work: Path) -> dict[str, tuple[int, int]]:
    """Each queue of the pipeline's store: (messages, of which dead)."""
    listed = run([LOCALQUEUE, "queue", "list", "-s", "pipeline.sqlite3"], env, work)
    return {q["queue"]: (q["total"], q["dead"]) for q in jsonl(listed.stdout)}


@needs("jq", "curl", "make", "grep")
def test_pipeline_example_runs_again_without_duplicates_and_reports_failed_urls(
    site, env, tmp_path
):
    urls = [f"{site.url}/a", f"{site.url}/b", f"{site.url}/c", f"{site.url}/missing"]
    (tmp_path / "urls.txt").write_text("".join(url + "\n" for url in urls) + "\n")
    # A real error stops make: here the store does not exist yet (exit 1), so the later
    # stages do not run.
    broken = run([*PIPELINE, "fetch", "parse"], env, tmp_path)
    assert broken.returncode != 0 and "Error 1" in broken.stderr
    assert "no such store" in broken.stderr and "queue exec pages" not in broken.stdout

    first = run([*PIPELINE, "pipeline"], env, tmp_path)
    # The 404 fails its fetch three times (curl -f) and is dead-lettered; the fetch stage
    # exits 5, and the later stages run all the same.
    assert first.returncode == 0, first.stderr
    assert sorted(statuses(first.stdout)) == sorted(
        ["acked"] * 3 + ["released"] * 2 + ["dead"] + ["acked"] * 6
    )
    failed = f"failed: {site.url}/missing (urls, 3 attempts): curl: (22) "
    assert [line for line in first.stderr.splitlines() if line.startswith("failed:")] == [
        failed + "The requested URL returned error: 404"
    ]
    assert sorted(stored_pages(tmp_path)) == urls[:3]
    assert sorted(site.requests) == ["/a", "/b", "/c", "/missing", "/missing", "/missing"]

    # Again: nothing is enqueued, fetched or stored twice, and the failure is still told.
    again = run([*PIPELINE, "pipeline"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert statuses(again.stdout) == [] and len(site.requests) == 6
    assert sorted(stored_pages(tmp_path)) == urls[:3]
    assert failed in again.stderr

    # A URL added to urls.txt is the only one fetched by the next run.
    with (tmp_path / "urls.txt").open("a") as file:
        file.write(f"{site.url}/d\n")
    more = run([*PIPELINE, "pipeline"], env, tmp_path)
    assert more.returncode == 0, more.stderr
    assert site.requests[6:] == ["/d"]
    assert sorted(stored_pages(tmp_path)) == [*urls[:3], f"{site.url}/d"]
    assert {"page /d"} < {json.loads(line)["title"] for line in open(tmp_path / "pages.jsonl")}
    assert queue_totals(env, tmp_path) == {"urls": (1, 1), "pages": (0, 0), "parsed": (0, 0)}


def process_group(pgid: int) -> dict[int, bytes]:
    """The processes of a process group: pid -> command line (NUL-separated)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):  # it ended meanwhile
            continue
    return found


@needs("jq", "curl", "make", "grep")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_pipeline_example_resumes_after_a_stage_worker_is_killed_without_duplicates(
    site, env, tmp_path
):
    urls = [f"{site.url}/{page}" for page in ("a", "b", "slow", "c")]
    (tmp_path / "urls.txt").write_text("".join(url + "\n" for url in urls))
    env = dict(env, LOCALQUEUE_LEASE_TIMEOUT="1")  # a killed worker's lease ends soon
    make = subprocess.Popen(
        [*PIPELINE, "pipeline"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # The fetch worker handed three pages on and is waiting on /slow: kill it.
        deadline = time.monotonic() + 60
        while "/slow" not in site.requests or queue_totals(env, tmp_path).get("pages") != (3, 0):
            assert time.monotonic() < deadline and make.poll() is None
            time.sleep(0.05)
        (worker,) = [
            pid for pid, cmdline in process_group(make.pid).items()
            if b"queue\0exec\0urls\0" in cmdline
        ]  # fmt: skip
        os.kill(worker, signal.SIGKILL)
        out, err = make.communicate(timeout=60)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    assert make.returncode != 0 and "Error 137" in err  # a killed stage stops make
    assert "queue exec pages" not in out and not (tmp_path / "pages.jsonl").exists()
    site.go.set()

    # Run again until /slow's lease has expired and it is fetched: every page once.
    deadline = time.monotonic() + 60
    while not (tmp_path / "pages.jsonl").exists() or len(stored_pages(tmp_path)) < 4:
        assert time.monotonic() < deadline
        again = run([*PIPELINE, "pipeline"], env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "failed:" not in again.stderr
        time.sleep(0.2)
    assert sorted(stored_pages(tmp_path)) == sorted(urls)
    assert sorted(site.requests) == ["/a", "/b", "/c", "/slow", "/slow"]
    assert queue_totals(env, tmp_path) == {"urls": (0, 0), "pages": (0, 0), "parsed": (0, 0)}
