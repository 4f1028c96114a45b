"""The local SMS sender: message validation, one file per message key, overwrite on repeat,
and ``find_sent`` answering from the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.sms import LocalSmsSender, SmsMessage, SmsSender
from orderflow.sms.local import sms_file_name

FROM = "+15005550006"


def text(key: str = "ord_1:sms:shipped", body: str = "Your order shipped") -> SmsMessage:
    return SmsMessage(to="+14155550123", body=body, message_key=key)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to", "4155550123"),
        ("to", "+1 415 555 0123"),
        ("body", ""),
        ("body", "x" * 1601),
        ("message_key", ""),
        ("message_key", "k" * 256),
    ],
)
def test_message_refuses_bad_fields(field: str, value: str) -> None:
    fields = {"to": "+14155550123", "body": "Hi", "message_key": "k"}
    fields[field] = value
    with pytest.raises(ValueError, match=field):
        SmsMessage(**fields)


def test_a_text_becomes_one_readable_file(tmp_path: Path) -> None:
    sender = LocalSmsSender(tmp_path / "sms", FROM)
    assert isinstance(sender, SmsSender)
    assert sender.find_sent(text()) is None
    local_id = sender.send(text())
    assert local_id.startswith("local_")
    (path,) = sender.sent_files()
    assert path.name == sms_file_name("ord_1:sms:shipped")
    assert path.name.startswith("ord_1_sms_shipped-")
    stored = sender.read("ord_1:sms:shipped")
    assert stored is not None
    assert (stored.to, stored.from_, stored.body) == ("+14155550123", FROM, "Your order shipped")
    assert "To: +14155550123" in path.read_text()
    assert sender.find_sent(text()) == local_id


def test_sending_the_same_key_again_overwrites_and_other_keys_add(tmp_path: Path) -> None:
    sender = LocalSmsSender(tmp_path / "sms", FROM)
    first = sender.send(text())
    assert sender.send(text(body="Your order shipped (again)")) == first
    assert len(sender.sent_files()) == 1
    sender.send(text("ord_1:sms:delivered", "Delivered"))
    assert len(sender.sent_files()) == 2
    # Keys that sanitise alike still get files of their own.
    assert sms_file_name("a:b") != sms_file_name("a/b")
    assert not list((tmp_path / "sms").glob(".tmp-*"))  # no temporary file left behind
