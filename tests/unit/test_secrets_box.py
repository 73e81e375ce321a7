"""The box that seals webhook secrets at rest (hazard H18): round trip, rotation, and every key-file fault named."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.security.secrets_box import PREFIX, SecretBox, SecretsKeyError
from app.settings import Settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def key_file(path: Path, *keys: bytes) -> Path:
    path.write_text("".join(k.decode() + "\n" for k in keys))
    return path


def test_a_sealed_secret_is_not_in_its_stored_form_and_opens_to_itself(tmp_path: Path) -> None:
    box = SecretBox.from_file(key_file(tmp_path / "k", Fernet.generate_key()))
    stored = box.seal(SECRET)
    assert stored.startswith(PREFIX) and "whsec_" not in stored and SECRET[6:] not in stored
    assert box.seal(SECRET) != stored  # a fresh IV each time: equal secrets are not equal rows
    assert box.unseal(stored) == SECRET


def test_rotation_seals_with_the_first_key_and_opens_with_any(tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before = SecretBox.from_file(key_file(tmp_path / "old", old)).seal(SECRET)
    rotated = SecretBox.from_file(key_file(tmp_path / "both", new, old))  # newest first
    assert rotated.unseal(before) == SECRET  # the old key still opens what it sealed
    again = rotated.reseal(before)
    fresh = rotated.seal(SECRET)
    only_new = SecretBox.from_file(key_file(tmp_path / "new", new))
    assert only_new.unseal(again) == SECRET and only_new.unseal(fresh) == SECRET
    with pytest.raises(SecretsKeyError):
        only_new.unseal(before)


def test_a_wrong_key_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    stored = SecretBox.from_file(key_file(tmp_path / "a", Fernet.generate_key())).seal(SECRET)
    other = tmp_path / "b.key"
    with pytest.raises(SecretsKeyError, match=f"does not open with any key in {other}"):
        SecretBox.from_file(key_file(other, Fernet.generate_key())).unseal(stored)
    with pytest.raises(SecretsKeyError, match="not in the sealed form"):
        SecretBox.from_file(other).unseal(SECRET)


@pytest.mark.parametrize(("text", "why"), [
    ("", "holds no key"),
    ("# only a comment\n\n", "holds no key"),
    (Fernet.generate_key().decode() + "\nnot-a-key\n", "line 2 is not a Fernet key"),
    ("c2hvcnQ=\n", "line 1 is not a Fernet key"),  # base64, but 5 bytes
])
def test_a_malformed_key_file_is_an_error_naming_the_file_and_line(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "secrets.key"
    path.write_text(text)
    with pytest.raises(SecretsKeyError, match=why) as caught:
        SecretBox.from_file(path)
    assert str(path) in str(caught.value) and "not-a-key" not in str(caught.value)  # the file named, never a line


def test_a_named_key_file_that_is_missing_or_unreadable_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(SecretsKeyError, match=f"{missing}: cannot be read"):
        SecretBox.from_settings(Settings.explicit(data_dir=tmp_path, secrets_key_file=missing))
    assert not missing.exists() and not (tmp_path / "secrets.key").exists()  # no silent fallback
    directory = tmp_path / "a-directory.key"  # unreadable as a file even for root (a mode-0 file is not)
    directory.mkdir()
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe" + Fernet.generate_key())
    for unreadable in (directory, binary):
        with pytest.raises(SecretsKeyError, match=f"{unreadable}: cannot be read"):
            SecretBox.from_settings(Settings.explicit(data_dir=tmp_path, secrets_key_file=unreadable))
        with pytest.raises(SecretsKeyError, match=f"{unreadable}: cannot be read"):
            SecretBox.from_file(unreadable, create=True)  # not even the default path is silently replaced


def test_the_default_key_file_is_created_private_once_and_kept(tmp_path: Path) -> None:
    old = os.umask(0)  # the file is private whatever the umask
    try:
        data = tmp_path / "new" / "data"
        settings = Settings.explicit(data_dir=data)
        first = SecretBox.from_settings(settings)
        path = data / "secrets.key"
        assert first.source == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(data.stat().st_mode) == 0o700
        assert len(path.read_text().split()) == 1
        stored = first.seal(SECRET)
        assert SecretBox.from_settings(settings).unseal(stored) == SECRET  # the next start reads the same key
        assert len(path.read_text().split()) == 1
    finally:
        os.umask(old)


def test_a_default_key_file_that_is_malformed_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    path.write_text("garbage\n")
    with pytest.raises(SecretsKeyError, match=f"{path}: line 1"):
        SecretBox.from_settings(Settings.explicit(data_dir=tmp_path))
    assert path.read_text() == "garbage\n"
