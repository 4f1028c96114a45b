"""The local email sender: every message becomes an RFC 5322 ``.eml`` file in a folder.

The file name is derived from the message key, so sending the same message again
overwrites the file instead of adding a second one; the write goes to a temporary file
in the same folder and is renamed into place, so a reader (or a crash) never sees half a
message. Open the files with any mail client, or read them back with :meth:`read`.
"""

from __future__ import annotations

import contextlib
import email.policy
import os
import re
import tempfile
from email.message import EmailMessage as MimeMessage
from email.parser import BytesParser
from email.utils import formatdate
from pathlib import Path

from orderflow.email.sender import EmailMessage, message_digest, message_id_header

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_READABLE_PART_MAX = 80
MESSAGE_KEY_HEADER = "X-Orderflow-Message-Key"


def eml_file_name(message_key: str) -> str:
    """``<readable part of the key>-<digest>.eml``.

    The readable part keeps the folder browsable (``ord_x_confirmation-…``); the digest
    keeps two keys that sanitise alike (``a:b`` and ``a/b``) in separate files.
    """
    readable = _UNSAFE.sub("_", message_key).strip("._")[:_READABLE_PART_MAX] or "message"
    return f"{readable}-{message_digest(message_key)[:16]}.eml"


def build_mime(message: EmailMessage, from_address: str) -> MimeMessage:
    """The message as a stdlib MIME object: text, plus an HTML alternative if given."""
    mime = MimeMessage(policy=email.policy.SMTP)
    mime["From"] = from_address
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    mime["Message-ID"] = message_id_header(message.message_key, from_address)
    mime[MESSAGE_KEY_HEADER] = message.message_key
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


class LocalEmailSender:
    """An :class:`~orderflow.email.sender.EmailSender` that writes ``.eml`` files."""

    def __init__(self, directory: Path, from_address: str) -> None:
        self._dir = directory
        self._from = from_address

    @property
    def directory(self) -> Path:
        return self._dir

    def path_for(self, message_key: str) -> Path:
        return self._dir / eml_file_name(message_key)

    def send(self, message: EmailMessage) -> str:
        self._dir.mkdir(parents=True, exist_ok=True)
        data = build_mime(message, self._from).as_bytes()
        _atomic_write(self.path_for(message.message_key), data)
        return f"local_{message_digest(message.message_key)}"

    def read(self, message_key: str) -> MimeMessage | None:
        """The stored message for a key, parsed back, or None if never sent."""
        try:
            raw = self.path_for(message_key).read_bytes()
        except FileNotFoundError:
            return None
        parser = BytesParser(_class=MimeMessage, policy=email.policy.default)
        # Files hold CRLF line ends (RFC 5322); the parser keeps them in text parts.
        return parser.parsebytes(raw.replace(b"\r\n", b"\n"))

    def sent_files(self) -> list[Path]:
        return sorted(self._dir.glob("*.eml")) if self._dir.exists() else []


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml.part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
