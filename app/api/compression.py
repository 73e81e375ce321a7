"""Request bodies sent with ``Content-Encoding``: decoded completely or refused (issue 21, finding 3).

A gzip body (RFC 1952) may hold several members, each decoded to its end of stream with its CRC-32 and length
checked; a truncated member, bytes after the last member that are not another member, or a bad checksum is a 422
saying which member and why; an inflated body larger than the request limit is a 413 (no decompression bomb). Any
other coding is a 415 naming the header: a body read as something it is not would store something else."""

from __future__ import annotations

import zlib

from starlette.requests import Request

from app.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

_GZIP_MAGIC = b"\x1f\x8b"


def gunzip(raw: bytes, limit: int) -> bytes:
    """Every member of a gzip body, inflated to at most ``limit`` bytes in all."""
    if not raw:
        raise InvalidRequestError(["body"], "the body is empty but declares Content-Encoding: gzip", "gzip")
    out = bytearray()
    rest, member = raw, 0
    while rest:
        member += 1
        if not rest.startswith(_GZIP_MAGIC):
            where = "the body is not gzip" if member == 1 else f"{len(rest)} bytes after gzip member {member - 1} " \
                                                               "are not another gzip member"
            raise InvalidRequestError(["body"], f"{where} (trailing data refused)", "gzip_trailing_data")
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise InvalidRequestError(["body"], f"gzip member {member} is corrupt: {exc}", "gzip") from None
        if len(out) > limit:
            raise PayloadTooLargeError(f"the inflated body is larger than {limit} bytes")
        if not inflater.eof:
            raise InvalidRequestError(["body"], f"gzip member {member} is truncated: it ends before its end of "
                                                "stream, CRC-32 and length", "gzip_truncated")
        rest = inflater.unused_data
    return bytes(out)


def decoded_body(request: Request, raw: bytes, limit: int) -> bytes:
    """``raw`` decoded per the request's ``Content-Encoding`` (none, ``identity`` or ``gzip``)."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        return raw
    if coding in ("gzip", "x-gzip"):
        return gunzip(raw, limit)
    raise UnsupportedMediaTypeError(f"Content-Encoding {coding[:40]!r} is not supported (gzip or none)")
