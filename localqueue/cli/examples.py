"""The examples of every command, in one place: the end of its ``--help`` and the EXAMPLES
section of its man page are both made from ``EXAMPLES`` (see ``localqueue.cli.help`` and
``scripts/gen_man.py``).

Keys are command paths (``""`` is the program itself, ``"queue add"`` a command). Each
command has one to three examples: a caption (may be empty) and the shell lines to type.
``tests/docs/test_examples.py`` checks that every ``localqueue`` command line in them
parses with the real CLI, so a renamed flag cannot leave a stale example behind.
"""

from __future__ import annotations

__all__ = ["EXAMPLES", "Example", "epilog"]

Example = tuple[str, str]  # caption, shell lines (one or more, "\n"-separated)

EXAMPLES: dict[str, tuple[Example, ...]] = {
    "": (
        (
            "Enqueue a message and handle it with a command:",
            'localqueue queue add emails --value \'{"to": "user@example.com"}\'\n'
            "localqueue queue exec emails -- ./send_email.sh",
        ),
        (
            "Drain a queue every minute from cron, one worker at a time:",
            "* * * * * flock -n -E 0 /tmp/emails.lock localqueue queue exec emails -- ./send.sh",
        ),
    ),
    "queue": (
        ("", "localqueue queue stats emails"),
        ("", "localqueue queue list"),
    ),
    "config": (("", "localqueue config set store_path /var/lib/app/queue.sqlite3"),),
    "store": (("", "localqueue store check && localqueue store backup /backup/q.sqlite3"),),
    "completion": (
        ("Load completion in the running bash:", 'eval "$(localqueue completion bash)"'),
        ("Install it for your user (zsh, say):", "localqueue completion --install zsh"),
    ),
    "man": (
        ("", "localqueue man queue exec"),
        ("", "localqueue man | grep -A3 EXIT"),
    ),
    "queue add": (
        ("One message:", 'localqueue queue add emails --value \'{"to": "user@example.com"}\''),
        (
            "One message per JSON line, all in one transaction:",
            "jq -c '.[]' users.json | localqueue queue add emails",
        ),
        (
            "Each line as a string, delivered in a minute:",
            "ls *.csv | localqueue queue add imports --raw --delay 60",
        ),
    ),
    "queue size": (("", 'test "$(localqueue queue size emails)" -gt 1000 && echo backlog'),),
    "queue stats": (
        ("", "localqueue queue stats emails"),
        ("", "localqueue queue stats --format prometheus > /var/lib/node_exporter/lq.prom"),
    ),
    "queue list": (("", "localqueue queue list | jq -r .queue"),),
    "queue inspect": (("", "localqueue queue inspect emails 42-00a1b2c3d4e5 | jq .last_error"),),
    "queue keep": (
        ("Keep a week of finished jobs:", "localqueue queue keep webhooks 7d"),
        ("", "localqueue queue keep webhooks --count 10000"),
    ),
    "queue history": (
        ("", "localqueue queue history webhooks -n 20"),
        ("", "localqueue queue history webhooks --status dead --since 1d | jq -r .id"),
    ),
    "queue log": (("", "localqueue queue log webhooks 812-00a1b2c3d4e5"),),
    "queue dead": (
        ("", "localqueue queue dead emails -n 10"),
        ("", "localqueue queue dead emails --watch | jq -c .last_error"),
    ),
    "queue requeue-dead": (
        ("", "localqueue queue requeue-dead emails 42-00a1b2c3d4e5"),
        ("", "localqueue queue requeue-dead emails --all --delay 60"),
    ),
    "queue pop": (
        (
            "Lease, work, settle by hand:",
            "msg=$(localqueue queue pop emails --block --timeout 30) || exit 0\n"
            'id=$(echo "$msg" | jq -r .id)\n'
            'localqueue queue ack emails "$id"',
        ),
    ),
    "queue ack": (("", 'localqueue queue ack emails "$id" --lease-token "$token"'),),
    "queue release": (("", 'localqueue queue release emails "$id" --delay 30'),),
    "queue process": (
        ("", "localqueue queue process emails examples.email_worker:send_email --max-tries 5"),
        ("", "localqueue queue process emails app.jobs:send --forever --block"),
    ),
    "queue exec": (
        (
            "Drain what is ready (cron mode):",
            "localqueue queue exec webhooks -- ./process_webhook.sh",
        ),
        (
            "Keep running, retry with exponential backoff, kill a job after 5 minutes:",
            "localqueue queue exec webhooks --forever --block --backoff exponential \\\n"
            "    --release-delay 5 --timeout 300 -- ./process_webhook.sh",
        ),
    ),
    "queue peek": (
        ("", "localqueue queue peek emails --state delayed -n 20"),
        ("", "localqueue queue peek emails | jq -r 'select(.attempts > 1) | .id'"),
    ),
    "queue delete": (("", "localqueue queue delete emails 42-00a1b2c3d4e5 43-00a1b2c3d4e5"),),
    "queue purge": (("", "localqueue queue purge emails --dead-only --yes"),),
    "queue wait": (("", "localqueue queue wait emails --timeout 600 && echo drained"),),
    "queue pause": (
        ("Stop every worker, on every host, leasing from it:", "localqueue queue pause webhooks"),
        ("", "localqueue queue stats webhooks | jq .paused"),
    ),
    "queue resume": (("", "localqueue queue resume webhooks"),),
    "queue limit": (
        (
            "A partner's 10 requests a second, at most 2 at once, across every worker:",
            "localqueue queue limit webhooks --rate 10/s --max-inflight 2",
        ),
        (
            "One job at a time per customer (queue add --group-field customer):",
            "localqueue queue limit invoices --per-group 1",
        ),
        ("", "localqueue queue limit webhooks --clear"),
    ),
    "store check": (("", "localqueue store check -s /var/lib/app/queue.sqlite3"),),
    "store backup": (("", "localqueue store backup /backup/queue-$(date +%F).sqlite3"),),
    "store vacuum": (("", "localqueue store vacuum"),),
    "config init": (("", "localqueue config init --store-path /var/lib/app/queue.sqlite3"),),
    "config show": (("", "localqueue config show | jq -r .store_path"),),
    "config set": (
        ("", "localqueue config set durability normal"),
        ("", "localqueue config set lease_timeout 120"),
    ),
}


def epilog(path: str) -> str | None:
    """The examples of the command at ``path`` as the end of its ``--help`` (shell lines,
    captions as comments), or None when it has none."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    blocks = []
    for caption, lines in examples:
        comment = f"# {caption.rstrip(':')}\n" if caption else ""
        blocks.append(comment + lines)
    separator = "\n\n" if any(caption for caption, _ in examples) else "\n"
    return separator.join(blocks)
