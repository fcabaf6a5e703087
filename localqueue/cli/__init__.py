"""The ``localqueue`` command line (``localqueue.cli.app:main``).

``app`` wires the groups and maps errors to exit codes (``exit_codes``); each command lives
in its own module (``queue/add.py``, ``config/set.py``...) with a Typer-free ``run`` and a
``register`` that declares its Typer command. ``fastpath`` runs the hottest commands
without importing Typer. Nothing here is imported by ``import localqueue``.
"""
