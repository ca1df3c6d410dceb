"""Who is asking: signed-in readers carry a JWT, anonymous visitors a visitor id this server issued and signed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel

from booktutor.server.errors import HttpError

if TYPE_CHECKING:
    import jwt

HS256 = "HS256"
MAX_SUBJECT_CHARS = 255
# Identity providers and this server rarely agree on the time to the second.
CLOCK_SKEW_SECONDS = 30
JWKS_CACHE_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 10


class Reader(BaseModel):
    """The person behind a request, as far as the server can tell."""

    id: str
    anonymous: bool
    admin: bool = False
    visitor_id: Optional[str] = None
    """The signed visitor id to hand back to the browser (anonymous readers only)."""


class AuthError(HttpError):
    """The request could not be tied to a reader (401; 503 when the sign-in service is unreachable)."""

    code = "auth_failed"


def anonymous_allowed(settings: Any) -> bool:
    """Whether requests without a token are served.

    An explicit `allow_anonymous` wins; left unset, anonymous visitors are allowed only in
    development and only when no JWT verification is configured.
    """
    if settings.allow_anonymous is not None:
        return bool(settings.allow_anonymous)
    return not _production(settings) and not settings.jwt_secret and not settings.jwks_url


def _production(settings: Any) -> bool:
    return str(settings.environment).strip().lower() == "production"


VISITOR_SECRET_FILE = "visitor-secret"


class VisitorIds:
    """Anonymous visitor ids that only this server can issue: `<random nonce>.<HMAC-SHA256 of it>`.

    A client that invents an id, or copies one out of the docs, holds no valid signature and so
    cannot read anyone's threads. The nonce alone names the reader (`anon:<nonce>`).
    """

    NONCE_BYTES = 16
    SIGNATURE_BYTES = 16

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the visitor id secret must be at least 32 bytes")
        self._secret = secret

    def issue(self) -> str:
        return self._sign(secrets.token_hex(self.NONCE_BYTES))

    def verify(self, visitor_id: str) -> str | None:
        """The nonce of a visitor id this server signed, or None."""
        nonce, dot, _ = visitor_id.partition(".")
        if not dot or len(visitor_id) > 128:
            return None
        return nonce if hmac.compare_digest(self._sign(nonce), visitor_id) else None

    def _sign(self, nonce: str) -> str:
        digest = hmac.new(self._secret, nonce.encode(), hashlib.sha256).digest()[: self.SIGNATURE_BYTES]
        return f"{nonce}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def visitor_secret(settings: Any) -> bytes:
    """`BOOKTUTOR_VISITOR_SECRET`, or (in development) a secret made once and kept in BOOKTUTOR_HOME."""
    if settings.visitor_secret:
        return settings.visitor_secret.encode()
    path = Path(settings.home) / VISITOR_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{VISITOR_SECRET_FILE}.{secrets.token_hex(4)}")
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_hex(32))
        try:
            # A hard link appears whole or not at all: processes starting together all read one secret.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes().strip()


class Authenticator:
    """Turns the `Authorization` and `X-Visitor-Id` headers into a `Reader`.

    With `jwt_secret` tokens must be HS256; with `jwks_url` they must use `jwt_algorithm` and a key
    from the JWKS document (fetched in a worker thread and cached). When both are configured, a token
    whose header names `jwt_algorithm` is checked against the JWKS keys and any other against the
    secret — each path pins its own algorithm and key, so a token cannot pick a weaker pairing.
    """

    def __init__(self, settings: Any) -> None:
        self._secret: str | None = settings.jwt_secret or None
        self._algorithm: str = settings.jwt_algorithm
        if self._algorithm.lower() == "none":
            raise ValueError("jwt_algorithm must name a signing algorithm, not 'none'")
        self._audience: str | None = settings.jwt_audience or None
        self._issuer: str | None = settings.jwt_issuer or None
        self._admins = frozenset(settings.admin_subjects or ())
        self._require = ["sub", "exp"] if _production(settings) else ["sub"]
        self._anonymous = anonymous_allowed(settings)
        self.visitors = VisitorIds(visitor_secret(settings)) if self._anonymous else None
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwks_url:
            import jwt

            self._jwks = jwt.PyJWKClient(
                settings.jwks_url,
                cache_keys=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
            )

    async def authenticate(self, authorization: str | None, visitor_id: str | None) -> Reader:
        """The reader for these header values, or `AuthError`.

        `authorization` is the raw `Authorization` header, `visitor_id` the raw `X-Visitor-Id`
        header (an empty value counts as absent). An anonymous reader without a visitor id gets a
        fresh one; the caller should return `reader.visitor_id` in a response header.
        """
        if authorization is None:
            return self._anonymous_reader(visitor_id)
        token = _bearer_token(authorization)
        claims = await self._verify(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_CHARS:
            raise AuthError("The sign-in token's subject ('sub') is empty or too long.", code="invalid_token")
        admin = subject in self._admins or claims.get("role") == "admin"
        return Reader(id=f"user:{subject}", anonymous=False, admin=admin)

    def _anonymous_reader(self, visitor_id: str | None) -> Reader:
        if not self._anonymous:
            raise AuthError("Sign in to use the tutor: send 'Authorization: Bearer <token>'.", code="auth_required")
        assert self.visitors is not None
        if not visitor_id:
            visitor_id = self.visitors.issue()
        nonce = self.visitors.verify(visitor_id)
        if nonce is None:
            raise AuthError(
                "This X-Visitor-Id was not issued by this server. Send the request without it to get a new one.",
                code="invalid_visitor_id",
            )
        return Reader(id=f"anon:{nonce}", anonymous=True, visitor_id=visitor_id)

    async def _verify(self, token: str) -> dict[str, Any]:
        if self._secret is None and self._jwks is None:
            raise AuthError(
                "This server is not configured to accept sign-in tokens; send the request without one.",
                code="auth_not_configured",
            )
        # PyJWT loads `cryptography` (about 8 MB); a server that only sees anonymous readers never needs it.
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("The sign-in token is malformed.", code="invalid_token") from None
        offered = header.get("alg")

        key: Any
        if self._jwks is not None and (self._secret is None or offered == self._algorithm):
            algorithm = self._algorithm
            _check_algorithm(offered, algorithm)
            key = await self._jwks_key(token)
        else:
            algorithm = HS256
            _check_algorithm(offered, algorithm)
            key = self._secret

        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": self._require, "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise _token_error(exc) from None

    async def _jwks_key(self, token: str) -> Any:
        import jwt

        assert self._jwks is not None
        try:
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError:
            raise AuthError(
                "The sign-in service's keys could not be fetched; try again shortly.",
                code="auth_unavailable",
            ) from None
        except jwt.PyJWTError:
            raise AuthError("The sign-in token was not signed by a key this server trusts.", code="invalid_token") from None
        # The raw key, not the PyJWK: verification then uses the pinned algorithm, never one the JWKS names.
        return signing_key.key


def _bearer_token(authorization: str) -> str:
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthError("The Authorization header must be 'Bearer <token>'.", code="invalid_token")
    return parts[1]


def _check_algorithm(offered: Any, expected: str) -> None:
    # Checked before any key lookup so 'alg: none' and algorithm-confusion tokens never reach a key.
    if offered != expected:
        raise AuthError(f"The sign-in token must be signed with {expected}.", code="invalid_token")


# PyJWT's error classes by name (PyJWT is imported only to check a token). Most specific first: they
# subclass one another.
_TOKEN_ERRORS: tuple[tuple[str, str, str], ...] = (
    ("ExpiredSignatureError", "token_expired", "The sign-in token has expired; sign in again."),
    ("ImmatureSignatureError", "invalid_token", "The sign-in token is not valid yet."),
    ("InvalidAudienceError", "invalid_token", "The sign-in token was issued for another audience."),
    ("InvalidIssuerError", "invalid_token", "The sign-in token was issued by another issuer."),
    ("InvalidSignatureError", "invalid_token", "The sign-in token's signature does not verify."),
    ("InvalidAlgorithmError", "invalid_token", "The sign-in token is signed with an algorithm this server does not accept."),
    ("DecodeError", "invalid_token", "The sign-in token is malformed."),
)


def _token_error(exc: jwt.PyJWTError) -> AuthError:
    import jwt

    if isinstance(exc, jwt.MissingRequiredClaimError):
        return AuthError(f"The sign-in token has no '{exc.claim}' claim.", code="invalid_token")
    for kind, code, message in _TOKEN_ERRORS:
        if isinstance(exc, getattr(jwt, kind)):
            return AuthError(message, code=code)
    return AuthError("The sign-in token is not valid.", code="invalid_token")
