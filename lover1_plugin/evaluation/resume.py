"""A per-document log that lets a killed lmms-eval run restart without redoing finished documents.

lmms-eval 0.7.3 stores cached responses (``--use_cache``) only after the model has answered
every request of a run, so a run killed after hours keeps nothing. With
``--model_args ...,resume_log=run.jsonl`` the love_r1 model appends each finished,
error-free document's response to that file (flushed and fsynced) and, on restart, answers
those documents from it. Documents that failed are not logged, so a fixed video is retried.
Under data parallelism each rank keeps its own file (``run.jsonl.rank1`` ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def document_key(*parts: Any) -> str:
    """A stable key of a request: everything that decides its answer (task, doc, prompt, model, settings)."""
    payload = json.dumps([str(part) for part in parts], ensure_ascii=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResumeLog:
    """Append-only JSONL of ``{"key", "response"}`` lines, read back on start."""

    def __init__(self, path: str | os.PathLike, *, rank: int = 0) -> None:
        path = Path(path)
        self.path = path if rank == 0 else path.with_name(f"{path.name}.rank{rank}")
        self.responses: dict[str, str] = {}
        if self.path.exists():
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    record = json.loads(line)
                    self.responses[record["key"]] = record["response"]
                except (ValueError, KeyError, TypeError):  # a line cut short by the kill
                    logger.warning("resume log %s: ignoring unreadable line %d", self.path, number)
            logger.info("resume log %s: %d finished documents", self.path, len(self.responses))
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> str | None:
        return self.responses.get(key)

    def add(self, key: str, response: str) -> None:
        self.responses[key] = response
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": key, "response": response}, ensure_ascii=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


__all__ = ["ResumeLog", "document_key"]
