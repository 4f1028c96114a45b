"""Reading Prometheus text and JSON log lines in tests."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (summed over the
    rest); None when there is none."""
    total, found = 0.0, False
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total, found = total + item.value, True
    return total if found else None


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (a worker log also holds Celery's banner)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def read_logs(directory: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in sorted(directory.glob("*.log")))


class _Capture(logging.Handler):
    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured_logs(level: int = logging.INFO) -> Iterator[list[str]]:
    """Every line this process logs, rendered exactly as the configured handler renders it
    (the API serving the tests runs in this process)."""
    root = logging.getLogger()
    formatter = root.handlers[0].formatter if root.handlers else None
    capture = _Capture(formatter)
    previous = root.level
    root.addHandler(capture)
    root.setLevel(min(previous, level))
    try:
        yield capture.lines
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)
