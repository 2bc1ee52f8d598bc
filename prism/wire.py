"""
The Prism wire protocol (C{docs/protocol.md}): pure functions and codecs, with
no Twisted import, shared by the server and the clients.

A frame is C{sid [cb] sep payload}: a one-character service id, an optional
decimal callback id, C{"|"} (message or result) or C{"!"} (error), then the
payload encoded by the service's codec. Text frames are L{str}, binary frames
L{bytes}; the header is ASCII in both.
"""

import json
import sys

import msgpack

from prism.errors import ProtocolError

__all__ = [
    "ALPHABET",
    "MAX_SERVICES",
    "MAX_CALLBACK_ID",
    "parse",
    "header",
    "CODECS",
    "codec",
    "encodeError",
    "decodeError",
]

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_SERVICES = len(ALPHABET)
MAX_CALLBACK_ID = 999999999

_SID = {c: i for i, c in enumerate(ALPHABET)}
_SID_BYTE = [-1] * 256
for _i, _c in enumerate(ALPHABET):
    _SID_BYTE[ord(_c)] = _i
del _i, _c

_MAX_HEADER = 11  # sid + up to 9 digits + sep


def _malformed(why):
    return ProtocolError("malformed", why)


def parse(frame):
    """
    Split a frame into its parts.

    @param frame: a text (L{str}) or binary (L{bytes}) frame.
    @return: C{(serviceId, callbackId, isError, payload)}; C{callbackId} is
        L{None} when absent; C{payload} has the frame's type.
    @raise ProtocolError: with kind C{"malformed"} if the frame breaks the
        grammar.
    """
    if not frame:
        raise _malformed("empty frame")
    if frame.__class__ is str:
        sid = _SID.get(frame[0], -1)
        bar, bang, zero = "|", "!", "0"
    else:
        sid = _SID_BYTE[frame[0]]
        bar, bang, zero = b"|", b"!", b"0"
    if sid < 0:
        raise _malformed("frame does not start with a service id")
    # The common frames first: a message (sid "|") or a request (sid cb "|").
    # Digits never contain a separator, so the first "|" ends a valid header.
    sep = frame.find(bar, 1, _MAX_HEADER)
    if sep == 1:
        return sid, None, False, frame[2:]
    if sep > 1:
        digits = frame[1:sep]
        # isdigit() alone admits non-ASCII digits in str: isascii() too.
        if digits.isdigit() and digits.isascii() and digits[:1] != zero:
            return sid, int(digits), False, frame[sep + 1 :]
    sep = frame.find(bang, 1, _MAX_HEADER)
    if sep == 1:
        return sid, None, True, frame[2:]
    if sep < 0:
        raise _malformed("no separator after the callback id")
    digits = frame[1:sep]
    if digits.isdigit() and digits.isascii() and digits[:1] != zero:
        return sid, int(digits), True, frame[sep + 1 :]
    raise _malformed("bad callback id")


def header(serviceId, callbackId=None, error=False):
    """
    @return: the text header of a frame (append a text payload to it, or
        encode it to ASCII and append a binary payload).
    """
    sep = "!" if error else "|"
    if callbackId is None:
        return ALPHABET[serviceId] + sep
    return ALPHABET[serviceId] + str(callbackId) + sep


class RawCodec:
    """Payloads passed as is: L{str} in text frames, L{bytes} in binary."""

    name = "raw"

    @staticmethod
    def decode(payload):
        return payload

    @staticmethod
    def encode(value):
        """@return: C{(payload, isBinary)}."""
        if isinstance(value, str):
            return value, False
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value), True
        raise TypeError("the raw codec sends str or bytes, not {}".format(type(value).__name__))


_jsonEncode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decoder = json.JSONDecoder()
_jsonDecode = _decoder.decode
_jsonScan = _decoder.scan_once


def _fastJSONDecode(text):
    # JSONDecoder.decode wraps the (C) scanner in Python-level whitespace
    # handling that costs several times the scan itself; frames from Prism's
    # clients are compact, so scan directly and fall back to the full decoder
    # (and its precise error messages) for anything else.
    try:
        value, end = _jsonScan(text, 0)
    except StopIteration:
        return _jsonDecode(text)
    if end != len(text):
        return _jsonDecode(text)
    return value


if sys.implementation.name == "pypy":  # pragma: no cover
    # PyPy's json.loads has a fast path of its own (_pypyjson); its
    # scan_once is the pure-Python scanner.
    _fastJSONDecode = json.loads  # noqa: F811


class JSONCodec:
    """One compact JSON value in a text frame."""

    name = "json"

    @staticmethod
    def decode(payload):
        if payload.__class__ is not str:
            payload = payload.decode("utf-8")
        return _fastJSONDecode(payload)

    @staticmethod
    def encode(value):
        return _jsonEncode(value), False


def _refuseExtension(code, data):
    raise ValueError("msgpack extension type {} is not allowed".format(code))


class MsgpackCodec:
    """One msgpack value in a binary frame (no extension types)."""

    name = "msgpack"

    @staticmethod
    def decode(payload):
        if isinstance(payload, str):
            raise ValueError("msgpack payloads travel in binary frames")
        # Every string, container and extension is bounded by the frame's own
        # size, so a tiny frame cannot announce a huge allocation. (unpackb
        # takes no max_buffer_size: the C extension refuses the keyword and
        # the pure-Python fallback, used on PyPy, passes its own.)
        limit = len(payload)
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=False,
            ext_hook=_refuseExtension,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=limit,
        )

    @staticmethod
    def encode(value):
        return msgpack.packb(value, use_bin_type=True), True


CODECS = {c.name: c for c in (RawCodec, JSONCodec, MsgpackCodec)}


def codec(name):
    """
    @return: the codec called C{name}.
    @raise ValueError: if there is none.
    """
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(
            "unknown codec {!r}; codecs: {}".format(name, ", ".join(sorted(CODECS)))
        ) from None


def frame(serviceId, callbackId, value, codecObj, error=False):
    """
    Encode a complete frame.

    @return: C{(frame, isBinary)}.
    """
    head = header(serviceId, callbackId, error)
    payload, isBinary = codecObj.encode(value)
    if isBinary:
        return head.encode("ascii") + payload, True
    return head + payload, False


def encodeError(serviceId, callbackId, kind, message, traceback=None, service=None):
    """
    @return: an error frame (always text; see C{docs/protocol.md}).
    """
    body = {"error": kind, "message": message}
    if service is not None:
        body["service"] = service
    if traceback is not None:
        body["traceback"] = traceback
    return header(serviceId, callbackId, True) + _jsonEncode(body)


def decodeError(payload):
    """
    @return: C{(kind, message, traceback)} from an error payload; tolerant of
        malformed ones.
    """
    try:
        if isinstance(payload, (bytes, bytearray)):
            payload = payload.decode("utf-8")
        body = _jsonDecode(payload)
        return str(body.get("error", "error")), str(body.get("message", "")), body.get("traceback")
    except Exception:
        return "error", repr(payload), None
