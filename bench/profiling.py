"""Sampling profiles of the running system with py-spy, and what dominates them.

``bench.intake --profile DIR`` and ``bench.pipeline --profile DIR`` record the API, the
worker (its pool processes too) and the relay while the load runs, as folded stacks
(``DIR/<name>.folded``, one ``frame;frame;… count`` line per stack: the input of any
flame-graph tool or of https://www.speedscope.app). ``python -m bench.profiling FILE…``
prints where the samples fall: by library (leaf first, so time waiting for PostgreSQL
counts as PostgreSQL), and the heaviest frames of the project's own code.

py-spy ships as a wheel (``pip install py-spy``) and needs ptrace permission over the
processes (the same user, and ``kernel.yama.ptrace_scope`` 0 or 1 with root).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orderflow.embedded.child import spawn

#: (label, substrings of a frame's file) in the order they are tried, leaf first.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PostgreSQL round trips (psycopg wait/IO)", ("psycopg/", "psycopg_binary", "psycopg_pool")),
    ("Redis/broker IO (redis-py, kombu)", ("redis/", "kombu/")),
    ("argon2 password hashing", ("argon2",)),
    ("JWT", ("jwt/",)),
    ("invoice PDF (reportlab)", ("reportlab/",)),
    ("e-mail MIME build", ("email/",)),
    ("logging (structlog, logging)", ("structlog/", "logging/")),
    ("JSON", ("json/",)),
    ("SQLAlchemy (ORM, SQL compile, results)", ("sqlalchemy/",)),
    ("pydantic (validation, serialisation)", ("pydantic/", "pydantic_core")),
    ("FastAPI/Starlette/uvicorn/anyio", ("fastapi/", "starlette/", "uvicorn/", "anyio/")),
    ("Celery/billiard", ("celery/", "billiard/", "vine/")),
    ("orderflow code", ("orderflow/", "api/", "tasks/", "workers/")),
)
OWN_CODE = ("orderflow/", "api/", "tasks/", "workers/")


@dataclass
class PySpy:
    """``py-spy record`` attached to a process until ``stop``."""

    pid: int
    output: Path
    subprocesses: bool = False
    idle: bool = False
    rate: int = 100
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        binary = Path(sys.executable).with_name("py-spy")
        command = [str(binary) if binary.exists() else (shutil.which("py-spy") or "py-spy")]
        command += ["record", "--pid", str(self.pid), "--format", "raw", "--nonblocking"]
        command += ["--output", str(self.output), "--rate", str(self.rate), "--function"]
        command += ["--subprocesses"] * self.subprocesses
        # Waiting is sampled with --idle; otherwise only what holds the interpreter lock, the
        # best measure of CPU spent in Python (py-spy's idle detection misses native waits).
        command += ["--idle"] if self.idle else ["--gil"]
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.process = spawn(command, self.output.with_suffix(".log"))

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def profiling(spies: Sequence[PySpy]) -> Iterator[None]:
    for spy in spies:
        spy.start()
    try:
        yield
    finally:
        for spy in spies:
            spy.stop()


def read_folded(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _category(stack: tuple[str, ...]) -> str:
    for frame in reversed(stack):
        for label, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return label
    return "other (stdlib, interpreter)"


def summary(path: Path, top: int = 15) -> str:
    stacks = read_folded(path)
    total = sum(stacks.values())
    if not total:
        return f"{path}: no samples"
    categories: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for stack, count in stacks.items():
        categories[_category(stack)] += count
        leaves[stack[-1]] += count
        for frame in set(stack):
            if any(needle in frame for needle in OWN_CODE):
                inclusive[frame] += count
    lines = [f"{path.name}: {total} samples", "  by library (leaf first):"]
    lines += [f"    {100 * n / total:5.1f} %  {label}" for label, n in categories.most_common()]
    lines.append("  leaf frames (self time):")
    lines += [f"    {100 * n / total:5.1f} %  {frame}" for frame, n in leaves.most_common(top)]
    lines.append("  project frames, inclusive:")
    lines += [f"    {100 * n / total:5.1f} %  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="folded stacks from py-spy (raw)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    for path in args.files:
        print(summary(path, args.top))
        print()


if __name__ == "__main__":
    main()
