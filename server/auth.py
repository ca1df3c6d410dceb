"""Who is asking: signed-in readers carry a JWT, anonymous visitors a browser-kept visitor id."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import jwt
from pydantic import BaseModel

from booktutor.server.errors import HttpError

HS256 = "HS256"
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
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

    @property
    def visitor_id(self) -> str | None:
        """The visitor id to hand back to the browser (anonymous readers only)."""
        return self.id.removeprefix("anon:") if self.anonymous else None


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
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwks_url:
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
        if not visitor_id:
            visitor_id = uuid.uuid4().hex
        elif not VISITOR_ID.fullmatch(visitor_id):
            raise AuthError(
                "The X-Visitor-Id header must be 8 to 64 letters, digits, '-' or '_'.", code="invalid_visitor_id"
            )
        return Reader(id=f"anon:{visitor_id}", anonymous=True)

    async def _verify(self, token: str) -> dict[str, Any]:
        if self._secret is None and self._jwks is None:
            raise AuthError(
                "This server is not configured to accept sign-in tokens; send the request without one.",
                code="auth_not_configured",
            )
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


# Most specific first: PyJWT's errors subclass one another.
_TOKEN_ERRORS: tuple[tuple[type[jwt.PyJWTError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "The sign-in token has expired; sign in again."),
    (jwt.ImmatureSignatureError, "invalid_token", "The sign-in token is not valid yet."),
    (jwt.InvalidAudienceError, "invalid_token", "The sign-in token was issued for another audience."),
    (jwt.InvalidIssuerError, "invalid_token", "The sign-in token was issued by another issuer."),
    (jwt.InvalidSignatureError, "invalid_token", "The sign-in token's signature does not verify."),
    (jwt.InvalidAlgorithmError, "invalid_token", "The sign-in token is signed with an algorithm this server does not accept."),
    (jwt.DecodeError, "invalid_token", "The sign-in token is malformed."),
)


def _token_error(exc: jwt.PyJWTError) -> AuthError:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return AuthError(f"The sign-in token has no '{exc.claim}' claim.", code="invalid_token")
    for kind, code, message in _TOKEN_ERRORS:
        if isinstance(exc, kind):
            return AuthError(message, code=code)
    return AuthError("The sign-in token is not valid.", code="invalid_token")
