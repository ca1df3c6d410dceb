"""Authentication: real PyJWT tokens, forged ones, and a JWKS document served over local HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from booktutor.server.auth import Authenticator, AuthError, Reader, anonymous_allowed
from booktutor.server.settings import Settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256!"
AUDIENCE = "booktutor"
ISSUER = "https://id.example.test/"

AUTH_DEFAULTS = {
    "environment": "development",
    "jwt_secret": None,
    "jwks_url": None,
    "jwt_algorithm": "RS256",
    "jwt_audience": None,
    "jwt_issuer": None,
    "allow_anonymous": None,
    "admin_subjects": [],
    "visitor_secret": "a-visitor-secret-that-is-long-enough-to-sign",
}


def make_settings(**fields) -> Settings:
    """Settings with every auth field explicit, so the test machine's environment cannot leak in."""
    return Settings(**{**AUTH_DEFAULTS, **fields})


def hs256(claims: dict, key: str | bytes = SECRET, headers: dict | None = None) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers=headers)


def claims(**extra) -> dict:
    now = int(time.time())
    return {"sub": "ada", "iat": now, "exp": now + 600, **extra}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def refused(authenticator: Authenticator, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await authenticator.authenticate(f"Bearer {token}", None)
    error = caught.value
    assert error.status == 401
    assert token not in error.message
    return error


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- HS256 ------------------------------------------------------------------------------------------


async def test_valid_hs256_token_gives_signed_in_reader():
    reader = await Authenticator(make_settings(jwt_secret=SECRET)).authenticate(f"Bearer {hs256(claims())}", None)
    assert reader == Reader(id="user:ada", anonymous=False, admin=False)
    assert reader.visitor_id is None


async def test_scheme_is_case_insensitive():
    reader = await Authenticator(make_settings(jwt_secret=SECRET)).authenticate(f"bearer {hs256(claims())}", None)
    assert reader.id == "user:ada"


async def test_tampered_signature_is_refused():
    token = hs256(claims())
    head, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), f"{head}.{payload}.{flipped}")
    assert error.code == "invalid_token"


async def test_tampered_payload_is_refused():
    head, _, signature = hs256(claims()).split(".")
    forged = b64url(json.dumps(claims(sub="root", role="admin")).encode())
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), f"{head}.{forged}.{signature}")
    assert error.code == "invalid_token"


async def test_alg_none_is_refused():
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims(role="admin")).encode())
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), f"{header}.{payload}.")
    assert error.code == "invalid_token"


async def test_rs256_token_refused_when_hs256_is_pinned(rsa_key):
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), token)
    assert error.code == "invalid_token"
    assert "HS256" in error.message


async def test_hs512_token_refused_when_hs256_is_pinned():
    # A key long enough for HS512 so PyJWT does not warn; the algorithm check refuses it first anyway.
    token = jwt.encode(claims(), SECRET * 2, algorithm="HS512")
    assert (await refused(Authenticator(make_settings(jwt_secret=SECRET)), token)).code == "invalid_token"


async def test_wrong_secret_is_refused():
    token = hs256(claims(), key="another-secret-that-is-long-enough-too!!")
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), token)
    assert error.code == "invalid_token"
    assert "signature" in error.message


async def test_expired_token_is_refused():
    now = int(time.time())
    token = hs256({"sub": "ada", "iat": now - 7200, "exp": now - 3600})
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), token)
    assert error.code == "token_expired"
    assert "expired" in error.message


async def test_not_yet_valid_token_is_refused():
    token = hs256(claims(nbf=int(time.time()) + 3600))
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), token)
    assert error.code == "invalid_token"
    assert "not valid yet" in error.message


async def test_audience_is_checked_when_configured():
    authenticator = Authenticator(make_settings(jwt_secret=SECRET, jwt_audience=AUDIENCE))
    reader = await authenticator.authenticate(f"Bearer {hs256(claims(aud=AUDIENCE))}", None)
    assert reader.id == "user:ada"
    assert (await refused(authenticator, hs256(claims(aud="another-app")))).code == "invalid_token"
    missing = await refused(authenticator, hs256(claims()))
    assert missing.code == "invalid_token" and "'aud'" in missing.message


async def test_audience_is_ignored_when_not_configured():
    reader = await Authenticator(make_settings(jwt_secret=SECRET)).authenticate(
        f"Bearer {hs256(claims(aud='whatever'))}", None
    )
    assert reader.id == "user:ada"


async def test_issuer_is_checked_when_configured():
    authenticator = Authenticator(make_settings(jwt_secret=SECRET, jwt_issuer=ISSUER))
    assert (await authenticator.authenticate(f"Bearer {hs256(claims(iss=ISSUER))}", None)).id == "user:ada"
    error = await refused(authenticator, hs256(claims(iss="https://evil.example.test/")))
    assert error.code == "invalid_token"
    assert "issuer" in error.message


async def test_missing_sub_is_refused():
    token = hs256({"exp": int(time.time()) + 600})
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), token)
    assert error.code == "invalid_token"
    assert "'sub'" in error.message


async def test_empty_sub_is_refused():
    assert (await refused(Authenticator(make_settings(jwt_secret=SECRET)), hs256(claims(sub="")))).code == "invalid_token"


async def test_exp_is_optional_in_development_but_required_in_production():
    token = hs256({"sub": "ada"})
    reader = await Authenticator(make_settings(jwt_secret=SECRET)).authenticate(f"Bearer {token}", None)
    assert reader.id == "user:ada"
    production = Authenticator(make_settings(environment="production", jwt_secret=SECRET))
    error = await refused(production, token)
    assert error.code == "invalid_token" and "'exp'" in error.message
    assert (await production.authenticate(f"Bearer {hs256(claims())}", None)).id == "user:ada"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "token", ""])
async def test_malformed_authorization_header_is_refused(header):
    with pytest.raises(AuthError) as caught:
        await Authenticator(make_settings(jwt_secret=SECRET)).authenticate(header, None)
    assert caught.value.code == "invalid_token"


async def test_garbage_token_is_refused():
    error = await refused(Authenticator(make_settings(jwt_secret=SECRET)), "not-a-jwt")
    assert error.code == "invalid_token"


async def test_token_without_any_jwt_configuration_is_refused():
    error = await refused(Authenticator(make_settings(allow_anonymous=True)), hs256(claims()))
    assert error.code == "auth_not_configured"


# -- admins -----------------------------------------------------------------------------------------


async def test_admin_by_role_claim():
    reader = await Authenticator(make_settings(jwt_secret=SECRET)).authenticate(
        f"Bearer {hs256(claims(role='admin'))}", None
    )
    assert reader.admin and reader.id == "user:ada"


async def test_admin_by_subject_list():
    authenticator = Authenticator(make_settings(jwt_secret=SECRET, admin_subjects=["grace"]))
    assert (await authenticator.authenticate(f"Bearer {hs256(claims(sub='grace'))}", None)).admin
    assert not (await authenticator.authenticate(f"Bearer {hs256(claims(sub='ada'))}", None)).admin
    assert not (await authenticator.authenticate(f"Bearer {hs256(claims(role='reader'))}", None)).admin


async def test_admin_subjects_from_comma_separated_string():
    settings = make_settings(jwt_secret=SECRET, admin_subjects="grace, ada")
    assert (await Authenticator(settings).authenticate(f"Bearer {hs256(claims())}", None)).admin


# -- anonymous visitors -----------------------------------------------------------------------------


def test_anonymous_allowed_rule():
    assert anonymous_allowed(make_settings())
    assert not anonymous_allowed(make_settings(jwt_secret=SECRET))
    assert not anonymous_allowed(make_settings(jwks_url="http://127.0.0.1:1/jwks.json"))
    assert anonymous_allowed(make_settings(jwt_secret=SECRET, allow_anonymous=True))
    assert not anonymous_allowed(make_settings(allow_anonymous=False))
    assert not anonymous_allowed(make_settings(environment="production", jwt_secret=SECRET))
    assert anonymous_allowed(make_settings(environment="production", allow_anonymous=True))


async def test_anonymous_reader_without_visitor_id_gets_a_signed_one():
    authenticator = Authenticator(make_settings())
    first = await authenticator.authenticate(None, None)
    second = await authenticator.authenticate(None, "")
    assert first.anonymous and first.id.startswith("anon:")
    nonce, signature = first.visitor_id.split(".")
    assert first.id == f"anon:{nonce}" and len(nonce) == 32 and signature
    assert first.visitor_id != second.visitor_id
    # The issued id is accepted when the browser sends it back, and names the same reader.
    again = await authenticator.authenticate(None, first.visitor_id)
    assert again == first


async def test_visitor_ids_are_signed_with_the_server_secret():
    issued = (await Authenticator(make_settings()).authenticate(None, None)).visitor_id
    other_server = Authenticator(make_settings(visitor_secret="another-secret-that-is-long-enough-too"))
    with pytest.raises(AuthError) as caught:
        await other_server.authenticate(None, issued)
    assert caught.value.code == "invalid_visitor_id"


async def test_development_secret_is_made_once_and_kept_in_home(tmp_path):
    settings = make_settings(visitor_secret=None, home=tmp_path)
    issued = (await Authenticator(settings).authenticate(None, None)).visitor_id
    assert (tmp_path / "visitor-secret").stat().st_mode & 0o777 == 0o600
    # A restarted server (same home) still knows its visitors.
    assert (await Authenticator(settings).authenticate(None, issued)).visitor_id == issued


@pytest.mark.parametrize(
    "visitor_id",
    ["reader-demo-123", "visitor_1234-abcd", "short", "x" * 65, "has space1", "ünïcode-id", "abcdefgh\n", "a.b"],
)
async def test_invented_visitor_id_is_refused(visitor_id):
    with pytest.raises(AuthError) as caught:
        await Authenticator(make_settings()).authenticate(None, visitor_id)
    assert caught.value.code == "invalid_visitor_id"
    assert caught.value.status == 401


async def test_anonymous_refused_when_not_allowed():
    with pytest.raises(AuthError) as caught:
        await Authenticator(make_settings(jwt_secret=SECRET)).authenticate(None, "visitor_1234")
    assert caught.value.code == "auth_required"
    assert caught.value.status == 401


async def test_signed_in_and_anonymous_both_work_when_allowed():
    authenticator = Authenticator(make_settings(jwt_secret=SECRET, allow_anonymous=True))
    visitor = (await authenticator.authenticate(None, None)).visitor_id
    assert (await authenticator.authenticate(None, visitor)).anonymous
    assert (await authenticator.authenticate(f"Bearer {hs256(claims())}", visitor)).id == "user:ada"
    # A bad token is an error even though anonymous use is allowed: no silent downgrade.
    with pytest.raises(AuthError):
        await authenticator.authenticate("Bearer nonsense", "visitor_1234")


# -- JWKS -------------------------------------------------------------------------------------------


class JWKSServer:
    """A JWKS document served by a real HTTP server on 127.0.0.1, counting fetches."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> JWKSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
def jwks(rsa_key) -> Iterator[JWKSServer]:
    with JWKSServer({"keys": [public_jwk(rsa_key, "key-1")]}) as server:
        yield server


def confused_token(key: rsa.RSAPrivateKey, payload: dict) -> str:
    """HS256 'signed' with the public key's PEM bytes: the classic algorithm-confusion forgery.

    Built by hand because PyJWT itself refuses to use a PEM public key as an HMAC secret.
    """
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    body = b64url(json.dumps(payload).encode())
    signature = b64url(hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


def rs256(key, payload: dict, kid: str = "key-1") -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_jwks_rs256_token_is_verified(rsa_key, jwks):
    authenticator = Authenticator(make_settings(jwks_url=jwks.url, jwt_audience=AUDIENCE, jwt_issuer=ISSUER))
    token = rs256(rsa_key, claims(aud=AUDIENCE, iss=ISSUER, role="admin"))
    reader = await authenticator.authenticate(f"Bearer {token}", None)
    assert reader == Reader(id="user:ada", anonymous=False, admin=True)
    # Keys are cached: a second token does not fetch the document again.
    await authenticator.authenticate(f"Bearer {rs256(rsa_key, claims(aud=AUDIENCE, iss=ISSUER, sub='bob'))}", None)
    assert jwks.fetches == 1


async def test_jwks_refuses_algorithm_confusion(rsa_key, jwks):
    """An HS256 token 'signed' with the public key's bytes must not verify against that public key."""
    forged = confused_token(rsa_key, claims(role="admin"))
    error = await refused(Authenticator(make_settings(jwks_url=jwks.url)), forged)
    assert error.code == "invalid_token"


async def test_jwks_refuses_alg_none(jwks):
    header = b64url(json.dumps({"alg": "none", "kid": "key-1"}).encode())
    payload = b64url(json.dumps(claims()).encode())
    error = await refused(Authenticator(make_settings(jwks_url=jwks.url)), f"{header}.{payload}.")
    assert error.code == "invalid_token"


async def test_jwks_refuses_token_from_unknown_key(jwks):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    authenticator = Authenticator(make_settings(jwks_url=jwks.url))
    assert (await refused(authenticator, rs256(stranger, claims()))).code == "invalid_token"
    assert (await refused(authenticator, rs256(stranger, claims(), kid="key-9"))).code == "invalid_token"


async def test_jwks_expired_token(rsa_key, jwks):
    now = int(time.time())
    token = rs256(rsa_key, {"sub": "ada", "exp": now - 3600})
    assert (await refused(Authenticator(make_settings(jwks_url=jwks.url)), token)).code == "token_expired"


async def test_jwks_with_secret_keeps_each_path_pinned(rsa_key, jwks):
    authenticator = Authenticator(make_settings(jwks_url=jwks.url, jwt_secret=SECRET))
    assert (await authenticator.authenticate(f"Bearer {rs256(rsa_key, claims())}", None)).id == "user:ada"
    assert (await authenticator.authenticate(f"Bearer {hs256(claims(sub='bob'))}", None)).id == "user:bob"
    assert (await refused(authenticator, confused_token(rsa_key, claims()))).code == "invalid_token"


async def test_unreachable_jwks_is_a_service_error(rsa_key):
    with JWKSServer({"keys": []}) as server:
        url = server.url
    # The server is shut down: the port now refuses connections.
    with pytest.raises(AuthError) as caught:
        await Authenticator(make_settings(jwks_url=url)).authenticate(f"Bearer {rs256(rsa_key, claims())}", None)
    assert caught.value.code == "auth_unavailable"
    assert caught.value.status == 503


def test_alg_none_cannot_be_configured():
    with pytest.raises(ValueError):
        Authenticator(make_settings(jwks_url="http://127.0.0.1:1/jwks.json", jwt_algorithm="none"))
