"""The local email sender: every message becomes an RFC 5322 ``.eml`` file in a folder.

The file name is derived from the message key, so sending the same message again
overwrites the file instead of adding a second one; the write goes to a temporary file
in the same folder and is renamed into place, so a reader (or a crash) never sees half a
message. Open the files with any mail client, or read them back with :meth:`read`.
"""

from __future__ import annotations

import email.policy
import re
from email.header import Header
from email.message import EmailMessage as MimeMessage
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import formatdate
from pathlib import Path

from orderflow.email.sender import EmailMessage, message_digest, message_id_header
from orderflow.files import write_atomically

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


def build_mime(message: EmailMessage, from_address: str) -> Message:
    """The message as a stdlib MIME object: text, plus an HTML alternative if given.

    Built with the classic ``email.mime`` classes rather than ``email.message.EmailMessage``,
    whose policy parses every header it is given: a third of the cost (0.2 ms, not 0.65),
    for the same bytes on disk."""
    text = MIMEText(message.text, "plain", _charset_of(message.text))
    mime: Message = text
    if message.html is not None:
        mime = MIMEMultipart("alternative")
        mime.attach(text)
        mime.attach(MIMEText(message.html, "html", _charset_of(message.html)))
    for name, value in (
        ("From", from_address),
        ("To", message.to),
        ("Subject", message.subject),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id_header(message.message_key, from_address)),
        (MESSAGE_KEY_HEADER, message.message_key),
    ):
        mime[name] = value if value.isascii() else Header(value, "utf-8").encode()
    return mime


def _charset_of(text: str) -> str:
    """Plain 7-bit when it can be (the file stays readable), else UTF-8."""
    return "us-ascii" if text.isascii() else "utf-8"


#: How the file is written: the classic policy of the objects above, with CRLF line ends.
SMTP_COMPAT32 = email.policy.compat32.clone(linesep="\r\n")


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
        data = build_mime(message, self._from).as_bytes(policy=SMTP_COMPAT32)
        write_atomically(self.path_for(message.message_key), data)
        return f"local_{message_digest(message.message_key)}"

    def find_sent(self, message: EmailMessage) -> str | None:
        """Sending again writes the same file; this only saves the write."""
        if self.path_for(message.message_key).exists():
            return f"local_{message_digest(message.message_key)}"
        return None

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
