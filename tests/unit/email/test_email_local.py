"""The local email sender's pure logic: message validation, file naming, the .eml format
and overwrite-on-repeat."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.email import EmailMessage, EmailSender, LocalEmailSender
from orderflow.email.local import MESSAGE_KEY_HEADER, eml_file_name
from orderflow.email.sender import message_digest, message_id_header

FROM = "orders@shop.example"


def message(key: str = "ord_1:confirmation", *, html: str | None = None) -> EmailMessage:
    return EmailMessage(
        to="jane@example.com", subject="Hi", text="Body", html=html, message_key=key
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to", "jane@example.com\r\nBcc: all@example.com"),
        ("subject", "Hi\nBcc: all@example.com"),
        ("message_key", "a\nb"),
        ("message_key", ""),
        ("message_key", "k" * 256),
        ("to", "not-an-address"),
        ("to", "@"),
    ],
)
def test_message_refuses_bad_fields(field: str, value: str) -> None:
    fields = {"to": "jane@example.com", "subject": "Hi", "text": "Body", "message_key": "k"}
    fields[field] = value
    with pytest.raises(ValueError, match=field):
        EmailMessage(**fields)


def test_message_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        EmailMessage("jane@example.com", "Hi", "Body", None, "k")  # type: ignore[call-arg]


def test_file_name_is_readable_and_safe() -> None:
    name = eml_file_name("ord_01j:confirmation")

    assert name.startswith("ord_01j_confirmation-")
    assert name.endswith(".eml")
    assert "/" not in eml_file_name("../../etc/passwd")
    assert not eml_file_name("../../etc/passwd").startswith(".")


def test_file_names_of_keys_that_sanitise_alike_differ() -> None:
    assert eml_file_name("a:b") != eml_file_name("a/b")
    assert eml_file_name("a:b") == eml_file_name("a:b")


def test_file_name_of_a_long_key_is_bounded() -> None:
    assert len(eml_file_name("x" * 255)) < 120
    assert eml_file_name("..").startswith("message-")


def test_message_id_is_deterministic_on_the_sender_domain() -> None:
    header = message_id_header("ord_1:confirmation", FROM)

    assert header == message_id_header("ord_1:confirmation", FROM)
    assert header == f"<{message_digest('ord_1:confirmation')}@shop.example>"
    assert header != message_id_header("ord_1:shipped", FROM)


def test_local_sender_is_an_email_sender(tmp_path: Path) -> None:
    assert isinstance(LocalEmailSender(tmp_path, FROM), EmailSender)


def test_send_writes_an_rfc5322_file(tmp_path: Path) -> None:
    sender = LocalEmailSender(tmp_path / "emails", FROM)

    provider_id = sender.send(message(html="<p>Body</p>"))

    assert provider_id == f"local_{message_digest('ord_1:confirmation')}"
    (path,) = sender.sent_files()
    raw = path.read_bytes()
    assert b"\r\n" in raw  # RFC 5322 line ends
    parsed = sender.read("ord_1:confirmation")
    assert parsed is not None
    assert parsed["From"] == FROM
    assert parsed["To"] == "jane@example.com"
    assert parsed["Subject"] == "Hi"
    assert parsed["Date"] is not None
    assert parsed["Message-ID"] == message_id_header("ord_1:confirmation", FROM)
    assert parsed[MESSAGE_KEY_HEADER] == "ord_1:confirmation"
    assert parsed.get_content_type() == "multipart/alternative"


def test_repeat_overwrites_instead_of_duplicating(tmp_path: Path) -> None:
    sender = LocalEmailSender(tmp_path, FROM)

    first = sender.send(message())
    second = sender.send(
        EmailMessage(
            to="jane@example.com", subject="Hi again", text="Body", message_key="ord_1:confirmation"
        )
    )

    assert first == second
    (path,) = sender.sent_files()
    assert sender.read("ord_1:confirmation")["Subject"] == "Hi again"  # type: ignore[index]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_read_of_an_unsent_key_is_none(tmp_path: Path) -> None:
    assert LocalEmailSender(tmp_path / "missing", FROM).read("k") is None
    assert LocalEmailSender(tmp_path / "missing", FROM).sent_files() == []


def test_non_ascii_content_survives(tmp_path: Path) -> None:
    sender = LocalEmailSender(tmp_path, FROM)
    sender.send(
        EmailMessage(
            to="jane@example.com", subject="Bestellung bestätigt ✓", text="Grüße\n", message_key="k"
        )
    )

    parsed = sender.read("k")
    assert parsed is not None
    assert parsed["Subject"] == "Bestellung bestätigt ✓"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "Grüße\n"
