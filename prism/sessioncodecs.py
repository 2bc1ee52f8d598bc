"""
Session codecs: how a session looks outside Prism, so that Prism and a web
application share one session.

A codec decides two things:

  - the B{cookie}: its default name, how a cookie value is verified and the
    session id taken out of it (L{ISessionCodec.parseCookie}), and the value
    Prism sets when it issues a session (L{ISessionCodec.cookieValue});
  - the B{storage}: the default key prefix in a shared store and how session
    data is serialized there (L{ISessionCodec.encode},
    L{ISessionCodec.decode}). L{prism.stores.redis.RedisSessionStore} uses
    both; the in-memory store has nobody to share with and ignores them.

Built in (see C{docs/sessions.md}):

  - C{prism} (the default): cookie C{prism.sid}, value
    C{<id>.<base64url HMAC-SHA256>}; keys C{prism:sess:<id>}, JSON.
  - C{express}: C{express-session} with C{connect-redis}: cookie
    C{connect.sid}, value C{s:<id>.<base64 HMAC-SHA256>} (the
    C{cookie-signature} package's format, URL-encoded); keys C{sess:<id>},
    JSON whose C{cookie} member belongs to express-session.
  - C{flask}: C{Flask-Session} (0.8) with its Redis backend: cookie
    C{session}, value the bare id, or C{<id>.<sig>} signed the way
    C{itsdangerous} does with C{SESSION_USE_SIGNER}; keys C{session:<id>},
    msgpack. Nothing is ever unpickled.

Nothing here imports a web framework.
"""

import base64
import hashlib
import hmac
import json
from urllib.parse import quote, unquote

from zope.interface import Attribute, Interface, implementer

from prism.errors import PrismConfigError
from prism.sessions import sign, verify

__all__ = ["ISessionCodec", "PrismCodec", "ExpressCodec", "FlaskCodec", "sessionCodec", "CODECS"]

MAX_COOKIE = 4096


class ISessionCodec(Interface):
    """The cookie and storage format of one kind of web application's sessions."""

    name = Attribute("L{str}: the codec's name (C{[session] codec}).")
    cookieName = Attribute("L{str}: the cookie's default name.")
    keyPrefix = Attribute("L{str}: the default key prefix in a shared store.")

    def parseCookie(secret, value):
        """
        @param value: the cookie's value as the C{Cookie} header carries it.
        @return: the session id if the value is well formed and (when the
            format signs) its signature is valid for C{secret}, else L{None}.
        """

    def cookieValue(secret, sessionId):
        """@return: the value of the cookie Prism sets for C{sessionId}, ready for C{Set-Cookie}."""

    def encode(data):
        """
        @param data: a L{dict} of JSON-compatible values.
        @return: the stored form (L{bytes}).
        @raise TypeError: for data that is not JSON-compatible.
        """

    def decode(raw):
        """
        @param raw: the stored form (L{bytes}).
        @return: the data, a new L{dict}.
        @raise ValueError: if C{raw} is not this codec's format.
        """


_jsonEncode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode


def _json(data):
    try:
        return _jsonEncode(dict(data)).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError("session data must be JSON-compatible: {}".format(e)) from None


def _jsonObject(raw):
    data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    if not isinstance(data, dict):
        raise ValueError("stored session is not a JSON object")
    return data


def _bytes(secret):
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _ascii(value):
    return isinstance(value, str) and len(value) <= MAX_COOKIE and value.isascii() and value.isprintable()


def _verified(mac, secret, signed):
    """
    @param mac: C{mac(secret, sessionId)} computing the expected signature.
    @param signed: C{"<id>.<signature>"}.
    @return: the session id if the signature matches, else L{None}.
    """
    sessionId, dot, signature = signed.rpartition(".")
    if not dot or not sessionId:
        return None
    expected = mac(secret, sessionId)
    if hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        return sessionId
    return None


@implementer(ISessionCodec)
class PrismCodec:
    """Prism's own format: the token of L{prism.sessions.sign}, JSON in the store."""

    name = "prism"
    cookieName = "prism.sid"
    keyPrefix = "prism:sess:"
    signed = True

    def parseCookie(self, secret, value):
        return verify(secret, value)

    def cookieValue(self, secret, sessionId):
        return sign(secret, sessionId)

    def encode(self, data):
        return _json(data)

    def decode(self, raw):
        return _jsonObject(raw)


EXPRESS_COOKIE = {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"}


@implementer(ISessionCodec)
class ExpressCodec:
    """
    C{express-session} + C{connect-redis}. Give Prism the app's C{secret}
    (the first one, if the app rotates several).

    The stored JSON's C{cookie} member is express-session's own (expiry,
    path, flags): services see it in C{request.session} and must leave it
    alone; Prism writes it back unchanged, and adds a session cookie's
    defaults to a session it creates itself.
    """

    name = "express"
    cookieName = "connect.sid"
    keyPrefix = "sess:"
    signed = True

    @staticmethod
    def _mac(secret, value):
        digest = hmac.new(_bytes(secret), value.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).rstrip(b"=").decode("ascii")  # cookie-signature: standard base64

    def parseCookie(self, secret, value):
        if not _ascii(value):
            return None
        value = unquote(value)  # express writes it with encodeURIComponent
        if not value.startswith("s:"):
            return None  # express-session ignores unsigned ids; so do we
        return _verified(self._mac, secret, value[2:])

    def cookieValue(self, secret, sessionId):
        return quote("s:" + sessionId + "." + self._mac(secret, sessionId), safe="")

    def encode(self, data):
        data = dict(data)
        if not isinstance(data.get("cookie"), dict):
            data["cookie"] = dict(EXPRESS_COOKIE)  # express-session cannot load a session without it
        return _json(data)

    def decode(self, raw):
        return _jsonObject(raw)


@implementer(ISessionCodec)
class FlaskCodec:
    """
    C{Flask-Session} 0.8 with the Redis backend (C{SESSION_TYPE = "redis"}).

    The store holds msgpack (C{SESSION_SERIALIZATION_FORMAT = "msgpack"},
    the default; JSON is read too). Flask-Session's last resort for data it
    cannot decode is C{pickle.loads}; Prism never unpickles: such data is
    refused.

    @param signed: the app sets C{SESSION_USE_SIGNER = True} (then the
        cookie is C{<id>.<signature>}, as C{itsdangerous.Signer(secret_key,
        salt="flask-session", key_derivation="hmac")} makes it, and unsigned
        or tampered cookies are refused); with C{False} the cookie is the
        bare id, as Flask-Session's default.
    """

    name = "flask"
    cookieName = "session"
    keyPrefix = "session:"
    salt = b"flask-session"

    def __init__(self, signed=True):
        self.signed = signed

    def _mac(self, secret, value):
        key = hmac.new(_bytes(secret), self.salt, hashlib.sha1).digest()  # key_derivation="hmac"
        digest = hmac.new(key, value.encode("utf-8"), hashlib.sha1).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def parseCookie(self, secret, value):
        if not _ascii(value) or not value:
            return None
        if not self.signed:
            return value if all(c.isalnum() or c in "-_" for c in value) else None
        return _verified(self._mac, secret, value)

    def cookieValue(self, secret, sessionId):
        if not self.signed:
            return sessionId
        return sessionId + "." + self._mac(secret, sessionId)

    def encode(self, data):
        import msgpack

        # JSON-compatible, as every store requires, and stored as JSON would
        # give it back (tuples as lists, keys as strings).
        return msgpack.packb(json.loads(_json(data)), use_bin_type=True)

    def decode(self, raw):
        import msgpack

        if raw[:1] in (b"{", b" "):
            return _jsonObject(raw)  # SESSION_SERIALIZATION_FORMAT = "json"
        try:
            data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as e:  # msgpack raises several unrelated types for garbage
            raise ValueError("stored session is not msgpack: {}".format(e)) from None
        if not isinstance(data, dict):
            raise ValueError("stored session is not a msgpack map")
        return data


CODECS = {"prism": PrismCodec, "express": ExpressCodec, "flask": FlaskCodec}


def sessionCodec(codec=None, **options):
    """
    @param codec: a codec name (C{"prism"}, C{"express"}, C{"flask"}), an
        L{ISessionCodec} provider, or L{None} for Prism's.
    @param options: passed to the codec class (C{signed} for C{flask}).
    @return: an L{ISessionCodec} provider.
    @raise PrismConfigError: for an unknown name.
    """
    if codec is None:
        codec = "prism"
    if not isinstance(codec, str):
        return codec
    try:
        factory = CODECS[codec]
    except KeyError:
        raise PrismConfigError(
            "unknown session codec {!r}; available: {}".format(codec, ", ".join(sorted(CODECS)))
        ) from None
    return factory(**options)
