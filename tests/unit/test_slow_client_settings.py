"""H22's three settings (``WARDTWIN_HTTP_HEADER_TIMEOUT_S``, ``_BODY_TIMEOUT_S``, ``_WRITE_TIMEOUT_S``): bounded, and
the header and write timeouts reach the protocol ``wardtwin serve`` runs (``tests/integration/test_slow_clients.py``
runs it)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.http_protocol import HeadGuard
from app.api.serving import MAX_HEAD_BYTES, uvicorn_options
from app.settings import Settings


def test_defaults_and_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    defaults = Settings.explicit(data_dir=tmp_path)
    assert (defaults.http_header_timeout_s, defaults.http_body_timeout_s, defaults.http_write_timeout_s) == (10, 30, 30)
    monkeypatch.setenv("WARDTWIN_HTTP_HEADER_TIMEOUT_S", "2.5")
    monkeypatch.setenv("WARDTWIN_HTTP_BODY_TIMEOUT_S", "7")
    monkeypatch.setenv("WARDTWIN_HTTP_WRITE_TIMEOUT_S", "9")
    from_env = Settings(data_dir=tmp_path, _env_file=None)
    assert (from_env.http_header_timeout_s, from_env.http_body_timeout_s, from_env.http_write_timeout_s) == (2.5, 7, 9)


@pytest.mark.parametrize("field, value", [
    ("http_header_timeout_s", 0), ("http_header_timeout_s", -1), ("http_header_timeout_s", 301),
    ("http_body_timeout_s", 0), ("http_body_timeout_s", -1), ("http_body_timeout_s", 601),
    ("http_write_timeout_s", 0), ("http_write_timeout_s", -1), ("http_write_timeout_s", 601),
])
def test_out_of_range_timeouts_are_refused(tmp_path, field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.explicit(data_dir=tmp_path, **{field: value})


def test_the_served_protocol_carries_the_header_timeout_and_the_head_bound(tmp_path) -> None:
    settings = Settings.explicit(data_dir=tmp_path, http_header_timeout_s=3, http_write_timeout_s=4)
    protocol = uvicorn_options(settings)["http"]
    assert issubclass(protocol, HeadGuard) and issubclass(protocol, HttpToolsProtocol)
    assert (protocol.header_timeout_s, protocol.max_head_bytes, protocol.write_timeout_s) == (3.0, MAX_HEAD_BYTES, 4.0)
