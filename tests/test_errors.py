"""localqueue.Empty and localqueue.Full are the standard library's, without loading
``queue`` (and threading) on the CLI's start-up path until Full is asked for."""

from __future__ import annotations

import queue
import subprocess
import sys

import localqueue
from localqueue import errors


def test_empty_and_full_are_the_standard_librarys():
    assert localqueue.Empty is queue.Empty is errors.Empty
    assert localqueue.Full is queue.Full is errors.Full
    from localqueue.errors import Full

    assert Full is queue.Full


def test_the_error_module_loads_neither_queue_nor_threading():
    code = (
        "import sys\n"
        "import localqueue.errors as errors\n"
        "print('queue' in sys.modules, 'threading' in sys.modules)\n"
        "errors.Full\n"
        "print('queue' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False", "True"], result.stderr
