"""The local SMS sender: every text becomes a small ``.txt`` file in a folder, like the
local e-mail sender's ``.eml`` files.

The file name is derived from the message key, so sending the same text again overwrites
the file instead of adding a second one; the write is atomic (``files.write_atomically``).
The file holds a few header lines (``To``, ``From``, ``Message-Key``, ``Date``), a blank
line and the body, readable with any text editor or with :meth:`LocalSmsSender.read`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from orderflow.files import write_atomically
from orderflow.sms.sender import SmsMessage, message_digest

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_READABLE_PART_MAX = 80


def sms_file_name(message_key: str) -> str:
    """``<readable part of the key>-<digest>.txt`` (see ``email.local.eml_file_name``)."""
    readable = _UNSAFE.sub("_", message_key).strip("._")[:_READABLE_PART_MAX] or "sms"
    return f"{readable}-{message_digest(message_key)[:16]}.txt"


@dataclass(frozen=True)
class StoredSms:
    """A text read back from its file."""

    to: str
    from_: str
    message_key: str
    body: str


class LocalSmsSender:
    """An :class:`~orderflow.sms.sender.SmsSender` that writes ``.txt`` files."""

    def __init__(self, directory: Path, from_number: str) -> None:
        self._dir = directory
        self._from = from_number

    @property
    def directory(self) -> Path:
        return self._dir

    def path_for(self, message_key: str) -> Path:
        return self._dir / sms_file_name(message_key)

    def send(self, message: SmsMessage) -> str:
        self._dir.mkdir(parents=True, exist_ok=True)
        text = (
            f"To: {message.to}\nFrom: {self._from}\nMessage-Key: {message.message_key}\n"
            f"Date: {formatdate(usegmt=True)}\n\n{message.body}\n"
        )
        write_atomically(self.path_for(message.message_key), text.encode("utf-8"))
        return self._local_id(message.message_key)

    def find_sent(self, message: SmsMessage) -> str | None:
        stored = self.read(message.message_key)
        return None if stored is None else self._local_id(message.message_key)

    def read(self, message_key: str) -> StoredSms | None:
        """The stored text for a key, or None if never sent."""
        try:
            raw = self.path_for(message_key).read_text("utf-8")
        except FileNotFoundError:
            return None
        head, _, body = raw.partition("\n\n")
        fields = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
        return StoredSms(
            to=fields.get("To", ""),
            from_=fields.get("From", ""),
            message_key=fields.get("Message-Key", ""),
            body=body.removesuffix("\n"),
        )

    def sent_files(self) -> list[Path]:
        return sorted(self._dir.glob("*.txt")) if self._dir.exists() else []

    @staticmethod
    def _local_id(message_key: str) -> str:
        return f"local_{message_digest(message_key)}"
