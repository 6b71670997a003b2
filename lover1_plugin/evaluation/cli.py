"""``lover1 eval``: run lmms-eval with the love_r1_* tasks included, and fail loudly.

lmms-eval exits 0 when an evaluation fails (it prints the traceback and an ``ERROR``
line, then carries on). :func:`run_lmms_eval` runs ``python -m lmms_eval ...`` with the
package's task directory added to ``--include_path``, streams its output unchanged, and
returns non-zero when lmms-eval's exit code is non-zero, when its output reports an error
(an ``ERROR``/``CRITICAL`` log line or a traceback), or when ``--output_path`` was given
and no new results file appeared.

A traceback that follows a ``love_r1: a document failed`` log line is not a failure: that
document was scored as wrong, its error is in its logged trace, and the run went on.

lmms-eval's ``--include_path`` takes one directory; when the user gives their own (or a
``--config`` file), both directories go into a generated ``--config`` file, whose
``include_path`` may be a list.

>>> command, _ = build_command(["--model", "love_r1", "--tasks", "love_r1_needle"], "/pkg/tasks", python="python")
>>> " ".join(command)
'python -m lmms_eval --model love_r1 --tasks love_r1_needle --include_path /pkg/tasks'
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from . import DOCUMENT_FAILED

logger = logging.getLogger(__name__)

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# loguru's format in lmms-eval: "2026-01-01 12:00:00 | ERROR    | module:function:line - message"
LOG_ERROR = re.compile(r"\|\s*(ERROR|CRITICAL)\s*\|")
TRACEBACK = "Traceback (most recent call last):"
LIST_TASKS = ("list", "list_groups", "list_tags", "list_subtasks")
CONFIG_NAME = "lover1_lmms_eval_config.yaml"


# --------------------------------------------------------------------------- command line


def take_option(argv: Sequence[str], name: str) -> tuple[list[str], list[str]]:
    """Remove every ``name VALUE`` / ``name=VALUE`` from ``argv``; return ``(rest, values)``.

    >>> take_option(["--tasks", "a", "--include_path=/x", "--include_path", "/y"], "--include_path")
    (['--tasks', 'a'], ['/x', '/y'])
    """
    rest, values = [], []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item == name and index + 1 < len(items):
            values.append(items[index + 1])
            index += 2
            continue
        if item.startswith(name + "="):
            values.append(item[len(name) + 1 :])
        else:
            rest.append(item)
        index += 1
    return rest, values


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_command(
    argv: Sequence[str], include_path: str | os.PathLike, *, python: str = sys.executable, workdir: str | None = None
) -> tuple[list[str], list[dict] | None]:
    """The lmms-eval command line, and the config entries written for it (``None`` when none).

    Without a user ``--include_path`` / ``--config``, ``--include_path TASKS`` is appended.
    Otherwise the include paths are merged into a config file in ``workdir``.
    """
    argv = list(argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if argv[:1] == ["eval"]:  # `lmms-eval eval --model ...` form
        argv = argv[1:]
    rest, user_paths = take_option(argv, "--include_path")
    rest, configs = take_option(rest, "--config")
    paths = _unique([*user_paths, str(include_path)])
    base = [python, "-m", "lmms_eval", *rest]
    if not configs and len(paths) == 1:
        return [*base, "--include_path", paths[0]], None
    if len(configs) > 1:
        raise ValueError("give --config once")
    entries: list[dict] = [{}]
    if configs:
        loaded = yaml.safe_load(Path(configs[0]).read_text(encoding="utf-8"))
        entries = [dict(e) for e in (loaded if isinstance(loaded, list) else [loaded or {}])]
    for entry in entries:
        entry["include_path"] = _unique([*_as_list(entry.get("include_path")), *paths])
    path = Path(workdir or tempfile.mkdtemp(prefix="lover1-eval-")) / CONFIG_NAME
    path.write_text(yaml.safe_dump(entries if len(entries) > 1 else entries[0], sort_keys=False), encoding="utf-8")
    return [*base, "--config", str(path)], entries


def expected_output_path(argv: Sequence[str], entries: list[dict] | None) -> str | None:
    """Where lmms-eval must write a results file, or ``None`` when no file is expected."""
    _, outputs = take_option(argv, "--output_path")
    _, tasks = take_option(argv, "--tasks")
    if entries:
        outputs = outputs or [str(e["output_path"]) for e in entries if e.get("output_path")]
        tasks = tasks or [str(e["tasks"]) for e in entries if e.get("tasks")]
    if not outputs or not tasks or tasks[-1] in LIST_TASKS:
        return None
    if any(flag in argv for flag in ("-h", "--help", "--power-analysis")):
        return None
    return outputs[-1]


def new_results_files(output_path: str | os.PathLike, since: float) -> list[Path]:
    """``*_results.json`` files under ``output_path`` written after ``since`` (a ``time.time()``)."""
    root = Path(output_path)
    if root.is_file():
        root = root.parent
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*_results.json") if p.stat().st_mtime >= since - 1)


# --------------------------------------------------------------------------- output scanning


class OutputScanner:
    """Collects lines of lmms-eval's output that report an error.

    >>> scanner = OutputScanner()
    >>> scanner.feed("2026-01-01 | INFO     | x:y:1 - fine\\n")
    >>> scanner.feed("2026-01-01 | ERROR    | __main__:cli_evaluate:614 - Error during evaluation: boom\\n")
    >>> scanner.errors
    ['2026-01-01 | ERROR    | __main__:cli_evaluate:614 - Error during evaluation: boom']
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._after_document_failure = False

    def feed(self, data: bytes | str) -> None:
        text = self._decoder.decode(data) if isinstance(data, bytes) else data
        lines = re.split(r"[\r\n]", self._partial + text)
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def _line(self, line: str) -> None:
        line = ANSI_ESCAPE.sub("", line).rstrip()
        if DOCUMENT_FAILED in line:
            self._after_document_failure = True  # the traceback that follows belongs to that document
            return
        if line.startswith(TRACEBACK):
            if self._after_document_failure:
                self._after_document_failure = False
                return
            self.errors.append(line)
            return
        if LOG_ERROR.search(line):
            self.errors.append(line)


def _pump(pipe: IO[bytes], sink: IO[str], scanner: OutputScanner) -> None:
    """Copy ``pipe`` to ``sink`` as it arrives (progress bars included) while scanning it."""
    target = getattr(sink, "buffer", None)
    while True:
        chunk = os.read(pipe.fileno(), 65536)
        if not chunk:
            break
        scanner.feed(chunk)
        if target is not None:
            target.write(chunk)
            target.flush()
        else:
            sink.write(chunk.decode("utf-8", errors="replace"))
            sink.flush()
    scanner.close()


# --------------------------------------------------------------------------- runner


def run_lmms_eval(
    argv: Sequence[str],
    include_path: str | os.PathLike,
    *,
    env: dict[str, str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run ``python -m lmms_eval ARGV --include_path INCLUDE_PATH``; 0 only when it really succeeded.

    Args:
        argv: lmms-eval's arguments (``--model love_r1 --tasks ...``).
        include_path: the love_r1_* task directory (``lover1 tasks-path``).
        env: the child's environment (default: this process's).
        stdout, stderr: where the child's output is streamed (default: ``sys.stdout`` / ``sys.stderr``).

    Returns:
        lmms-eval's exit code when non-zero; else 1 when its output reported an error or
        an expected results file is missing; else 0.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    with tempfile.TemporaryDirectory(prefix="lover1-eval-") as workdir:
        command, entries = build_command(argv, include_path, workdir=workdir)
        output_path = expected_output_path(argv, entries)
        logger.info("running %s", " ".join(command))
        started = time.time()
        scanners = (OutputScanner(), OutputScanner())
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        threads = [
            threading.Thread(target=_pump, args=(process.stdout, stdout, scanners[0]), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, stderr, scanners[1]), daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            process.wait()
            raise
        for thread in threads:
            thread.join()
    if code != 0:
        print(f"lover1 eval: lmms-eval exited with code {code}", file=stderr)
        return code
    errors = scanners[0].errors + scanners[1].errors
    if errors:
        print(f"lover1 eval: lmms-eval exited 0 but reported an error: {errors[0]}", file=stderr)
        return 1
    if output_path is not None and not new_results_files(output_path, started):
        print(f"lover1 eval: lmms-eval exited 0 but wrote no results file under {output_path!r}", file=stderr)
        return 1
    return 0


__all__ = [
    "OutputScanner",
    "build_command",
    "expected_output_path",
    "new_results_files",
    "run_lmms_eval",
    "take_option",
]
