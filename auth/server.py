"""The OAuth 2.0 authorization server: Authlib's classes, a thin Starlette adapter, routes.

What is Authlib's: the server (`AuthorizationServer`), the grant (`ClientCredentialsGrant`),
client authentication (`client_secret_basic`, `client_secret_post` built in;
`private_key_jwt` through `JWTBearerClientAssertion`, RFC 7523), the RFC 9068 token
generator, the introspection (RFC 7662) and revocation (RFC 7009) endpoints, and every
RFC 6749 error response. What is ours: where clients, keys and revoked tokens live, the
scope policy (a subset of the client's registered scopes), and the adapter below.

The adapter. Authlib's server is synchronous; our database is async. An OAuth request is
read by Starlette (body, headers), turned into an Authlib `OAuth2Request`, and handed to
Authlib in a worker thread (`anyio.to_thread.run_sync`). Authlib's callbacks
(`query_client`, `validate_jti`, `query_token`, `revoke_token`) reach the database on the
event loop with `anyio.from_thread.run`. Authlib's `(status, body, headers)` becomes a
Starlette response in `handle_response`. Argon2 secret checks run in that thread too, off
the event loop.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import anyio
import anyio.from_thread
import anyio.to_thread
import sqlalchemy as sa
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth import tokens
from auth.clients import verify_secret
from auth.keys import KeyStore, jws_registry
from auth.ratelimit import EndpointLimiter
from auth.resource import InvalidToken, TokenVerifier
from auth.scopes import SCOPES
from gateway.db import Database
from gateway.limits_storage import SharedCounters
from gateway.models import OAuthClient, Partner
from gateway.settings import Settings

TOKEN_PATH = "/oauth/token"
INTROSPECTION_PATH = "/oauth/introspect"
REVOCATION_PATH = "/oauth/revoke"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
#: Algorithms a client may sign its private_key_jwt assertion with (never none or HS*).
ASSERTION_ALGS = ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA", "Ed25519"]
#: Contract: an assertion's exp is at most five minutes ahead.
ASSERTION_MAX_LIFETIME = 300
MAX_BODY_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


# ---------------------------------------------------------------- clients as Authlib sees them


@dataclass(frozen=True)
class Client(ClientMixin):
    """A registered client, read once per request (a plain snapshot, safe in any thread)."""

    client_id: str
    partner_id: int
    partner_code: str
    partner_kind: str
    auth_method: str
    scopes: tuple[str, ...]
    secret_hash: str | None
    jwks: str | None
    enabled: bool
    #: Written into the token (claim `token_epoch`): a later rotation or disable revokes it.
    token_epoch: int = 0

    @property
    def is_admin(self) -> bool:
        return self.partner_kind == "ADMIN" and "admin" in self.scopes

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Called after ClientCredentials.validate_requested_scope refused anything extra.
        if not scope or not scope.strip():
            return " ".join(self.scopes)
        return " ".join(sorted(set(scope_to_list(scope)) & set(self.scopes)))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A client authenticates with the one method it registered, at every endpoint.
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == ClientCredentialsGrant.GRANT_TYPE


async def load_client(db: Database, client_id: str) -> Client | None:
    async with db.session() as session:
        row = (
            await session.execute(
                sa.select(OAuthClient, Partner)
                .join(Partner, Partner.id == OAuthClient.partner_id)
                .where(OAuthClient.client_id == client_id)
            )
        ).first()
    if row is None:
        return None
    client, partner = row
    return Client(
        client_id=client.client_id,
        partner_id=partner.id,
        partner_code=partner.code,
        partner_kind=partner.kind.value,
        auth_method=client.auth_method.value,
        scopes=tuple(client.scopes),
        secret_hash=client.secret_hash,
        jwks=client.jwks,
        enabled=client.enabled,
        token_epoch=client.token_epoch,
    )


@dataclass(frozen=True)
class IssuedToken(TokenMixin):
    """An access token of ours, signature checked, as Authlib's endpoints see it."""

    claims: dict

    @property
    def client_id(self) -> str:
        return self.claims["client_id"]

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id or client.is_admin

    def get_scope(self) -> str:
        return self.claims.get("scope", "")

    def get_expires_in(self) -> int:
        return int(self.claims["exp"]) - int(self.claims["iat"])

    def is_expired(self) -> bool:
        return int(self.claims["exp"]) <= time.time()

    def is_revoked(self) -> bool:
        # Only tokens that passed TokenVerifier (not revoked, client enabled) reach introspection.
        return False

    def get_user(self) -> None:
        return None

    def get_client(self) -> None:
        return None


# ---------------------------------------------------------------- Authlib's pieces, configured


class ClientCredentials(ClientCredentialsGrant):
    """RFC 6749 §4.4 with our three client authentication methods and scope policy."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        super().validate_requested_scope()  # every scope is one the server knows
        requested = scope_to_list(self.request.payload.scope) or []
        extra = sorted(set(requested) - set(self.request.client.scopes))
        if extra:
            raise InvalidScopeError(description=f"The client is not registered for: {' '.join(extra)}")


class PrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 client authentication: a JWT signed with a key from the client's JWKS.

    `aud` may be the issuer or the token endpoint URL; `exp` at most five minutes ahead;
    `jti` single-use within the assertion's lifetime (table `used_assertions`).
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: GatewayAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server

    def get_audiences(self) -> list[str]:
        issuer = self.server.settings.issuer
        return [issuer, issuer + TOKEN_PATH]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if client.auth_method != self.CLIENT_AUTH_METHOD or not client.jwks:
            raise InvalidClientError(description="The client is not registered for private_key_jwt")
        return KeySet.import_key_set(json.loads(client.jwks))

    def process_assertion_claims(self, assertion: str, resolve_key) -> dict:
        # Authlib's own, with an explicit algorithm allow-list.
        try:
            token = jwt.decode(assertion, resolve_key, registry=jws_registry(ASSERTION_ALGS))
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(
                description=tokens.safe_description(
                    f"The client assertion is not accepted: {getattr(exc, 'description', exc)}"
                )
            ) from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: dict) -> None:
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and exp > time.time() + ASSERTION_MAX_LIFETIME + self.leeway:
            raise InvalidClientError(description="The client assertion's exp is more than 5 minutes ahead")
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 255):
            raise InvalidClientError(description="The client assertion's jti must be a string of 1 to 255 characters")
        super().verify_claims(claims)  # iss = sub, aud, exp, then validate_jti last

    def validate_jti(self, claims: dict, jti: str) -> bool:
        return self.server.run(
            tokens.use_assertion,
            self.server.db,
            client_id=claims["sub"],
            jti=jti,
            expires_at=tokens.expiry_of(claims),
        )


class Introspection(IntrospectionEndpoint):
    """RFC 7662. A client may introspect its own tokens; an ADMIN client any token."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return self.server.run(self.server.find_active_token, token_string)

    def check_permission(self, token: IssuedToken, client: Client, request) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: IssuedToken) -> dict:
        c = token.claims
        return {
            "active": True,
            "token_type": "Bearer",
            "scope": c.get("scope", ""),
            "client_id": c["client_id"],
            "sub": c["sub"],
            "aud": c["aud"],
            "iss": c["iss"],
            "exp": c["exp"],
            "iat": c["iat"],
            "jti": c["jti"],
            "partner": c.get("partner"),
            "partner_kind": c.get("partner_kind"),
        }


class Revocation(RevocationEndpoint):
    """RFC 7009. A client revokes its own tokens (an ADMIN client any); /graphql then
    refuses the jti. An unknown, malformed or expired token is answered 200 and ignored."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return self.server.run(self.server.find_signed_token, token_string)

    def revoke_token(self, token: IssuedToken, request) -> None:
        self.server.run(
            tokens.revoke, self.server.db, jti=token.claims["jti"], expires_at=tokens.expiry_of(token.claims)
        )


class GatewayAuthorizationServer(AuthorizationServer):
    """Authlib's server wired to our database and key store (sync; see the module doc)."""

    def __init__(self, *, db: Database, settings: Settings, keystore: KeyStore, verifier: TokenVerifier) -> None:
        super().__init__(scopes_supported=sorted(SCOPES))
        self.db = db
        self.settings = settings
        self.keystore = keystore
        self.verifier = verifier
        self.register_grant(ClientCredentials)
        self.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT(self))
        self.register_token_generator("default", tokens.AccessTokenGenerator(keystore=keystore, settings=settings))
        self.register_endpoint(Introspection(self))
        self.register_endpoint(Revocation(self))

    # -- bridge to the event loop (these run in Authlib's worker thread)

    @staticmethod
    def run(fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return anyio.from_thread.run(partial(fn, *args, **kwargs))

    def query_client(self, client_id: Any) -> Client | None:
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 64:
            return None
        return self.run(load_client, self.db, client_id)

    def save_token(self, token: dict, request: OAuth2Request) -> None:
        """Access tokens are self-contained JWTs: nothing to store (revocation stores jtis)."""

    async def find_active_token(self, token_string: str) -> IssuedToken | None:
        try:
            verified = await self.verifier.inspect(token_string)
        except InvalidToken:
            return None
        return IssuedToken(claims=verified.claims)

    async def find_signed_token(self, token_string: str) -> IssuedToken | None:
        try:
            claims = await tokens.verify_access_token(token_string, keystore=self.keystore, settings=self.settings)
        except InvalidTokenError:
            return None
        return IssuedToken(claims=dict(claims))

    # -- Authlib's framework hooks

    def authenticate_client(self, request: OAuth2Request, methods: list[str], endpoint: str = "token") -> Client:
        client = super().authenticate_client(request, methods, endpoint)
        if not client.enabled:
            raise InvalidClientError(status_code=401, description="The client is disabled")
        return client

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request  # built by the adapter before the worker thread started

    def create_json_request(self, request):  # pragma: no cover - no JSON endpoints
        raise NotImplementedError

    def handle_response(self, status_code: int, payload: Any, headers: list[tuple[str, str]]) -> Response:
        content = json.dumps(payload) if isinstance(payload, (dict, list)) else (payload or "")
        return Response(content, status_code=status_code, headers=dict(headers))

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> Response:
        if error.error == "invalid_client":
            # Contract: invalid_client is always 401, whichever method failed.
            error.status_code = 401
        if request is not None:
            request.oauth_error = error.error
        return super().handle_error_response(request, error)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def metadata(self) -> dict:
        """RFC 8414 authorization server metadata."""
        issuer = self.settings.issuer
        return {
            "issuer": issuer,
            "token_endpoint": issuer + TOKEN_PATH,
            "jwks_uri": issuer + JWKS_PATH,
            "introspection_endpoint": issuer + INTROSPECTION_PATH,
            "revocation_endpoint": issuer + REVOCATION_PATH,
            "grant_types_supported": [ClientCredentialsGrant.GRANT_TYPE],
            # No authorization endpoint: client_credentials is the only grant.
            "response_types_supported": [],
            "scopes_supported": sorted(SCOPES),
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        }


# ---------------------------------------------------------------- the Starlette adapter


class StarletteOAuth2Payload(OAuth2Payload):
    def __init__(self, form: ImmutableMultiDict) -> None:
        self._form = form

    @property
    def data(self) -> ImmutableMultiDict:
        return self._form

    @property
    def datalist(self) -> dict[str, list]:
        return {key: self._form.getlist(key) for key in self._form.keys()}


class StarletteOAuth2Request(OAuth2Request):
    """An Authlib request made from a Starlette request whose body was already read."""

    def __init__(
        self, *, method: str, uri: str, headers, form: ImmutableMultiDict, query, client_host: str | None
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = StarletteOAuth2Payload(form)
        self._form = form
        self._query = query
        self.client_host = client_host
        #: Set by `handle_error_response`: the RFC 6749 error code answered, if any.
        self.oauth_error: str | None = None

    @property
    def args(self):
        return self._query

    @property
    def form(self) -> ImmutableMultiDict:
        return self._form


async def read_form(request: Request) -> ImmutableMultiDict:
    """The urlencoded body (RFC 6749 §3.2), at most MAX_BODY_BYTES, no parameter twice."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise InvalidRequestError(description=f"The body must be {FORM_TYPE}")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise InvalidRequestError(description="The request body is too large")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise InvalidRequestError(description="The request body is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequestError(description="The request body is not UTF-8") from None
    form = ImmutableMultiDict(pairs)
    for key in form.keys():
        if len(form.getlist(key)) > 1:
            raise InvalidRequestError(description=f"Parameter {key} is repeated")
    return form


def oauth2_request(request: Request, form: ImmutableMultiDict, settings: Settings) -> StarletteOAuth2Request:
    # Authlib judges the transport (OAuth needs TLS) on the URI it is given. We give it the
    # endpoint's public URL, GATEWAY_ISSUER + path: TLS usually ends at a proxy in front of
    # us, so the hop we see may be plain HTTP while partners use HTTPS. An http:// issuer
    # passes on loopback only, or anywhere in development (a LAN demo).
    uri = settings.issuer + request.url.path
    try:
        InsecureTransportError.check(uri)
    except InsecureTransportError:
        if not settings.development:
            raise
        uri = urlunsplit(urlsplit(uri)._replace(scheme="https"))
    try:
        extract_basic_authorization(request.headers)
    except Exception:  # noqa: BLE001 - undecodable Basic credentials
        raise InvalidClientError(status_code=401, description="The Basic credentials cannot be decoded") from None
    return StarletteOAuth2Request(
        method=request.method,
        uri=uri,
        headers=request.headers,
        form=form,
        query=request.query_params,
        client_host=request.client.host if request.client else None,
    )


def claimed_client_id(request: Request, form: ImmutableMultiDict) -> str | None:
    """Which client a request says it is (unverified): for rate limits only."""
    try:
        client_id, _ = extract_basic_authorization(request.headers)
    except Exception:  # noqa: BLE001
        client_id = None
    client_id = client_id or form.get("client_id")
    if not client_id and form.get("client_assertion"):
        try:
            payload = form["client_assertion"].split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            client_id = claims.get("sub") or claims.get("iss")
        except Exception:  # noqa: BLE001 - a malformed assertion names nobody
            client_id = None
    return client_id[:128] if isinstance(client_id, str) and client_id else None


class OAuthEndpoints:
    """Starlette handlers around one `GatewayAuthorizationServer`."""

    def __init__(self, state: Any) -> None:
        self.settings: Settings = state.settings
        self.keystore: KeyStore = state.keystore
        self.server = GatewayAuthorizationServer(
            db=state.db, settings=state.settings, keystore=state.keystore, verifier=state.verifier
        )
        self.limiter = EndpointLimiter(state.settings, SharedCounters.for_state(state))
        # Argon2 checks cost ~64 MiB and tens of ms each: bound how many run at once.
        self.threads = anyio.CapacityLimiter(8)

    async def token(self, request: Request) -> Response:
        return await self._dispatch(request, self.server.create_token_response, refresh_keys=True)

    async def introspect(self, request: Request) -> Response:
        return await self._dispatch(request, partial(self.server.create_endpoint_response, "introspection"))

    async def revoke(self, request: Request) -> Response:
        return await self._dispatch(request, partial(self.server.create_endpoint_response, "revocation"))

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(self.server.metadata(), headers={"Cache-Control": "public, max-age=300"})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(await self.keystore.jwks(), headers={"Cache-Control": "public, max-age=60"})

    async def _dispatch(
        self, request: Request, authlib_call: Callable[[OAuth2Request], Response], *, refresh_keys: bool = False
    ) -> Response:
        try:
            form = await read_form(request)
        except OAuth2Error as error:
            return self.server.handle_response(*error())
        client_hint = claimed_client_id(request, form)
        # The peer uvicorn reports: the proxy's X-Forwarded-For only from a trusted proxy.
        address = request.client.host if request.client else None
        retry_after = await self.limiter.admit(address=address, client_id=client_hint)
        if retry_after is not None:
            return JSONResponse(
                {"error": "slow_down", "error_description": "Too many requests; retry after the given seconds"},
                status_code=429,
                headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
            )
        try:
            oauth_request = oauth2_request(request, form, self.settings)
        except OAuth2Error as error:
            if error.error == "invalid_client":
                await self.limiter.failed_authentication(address=address, client_id=client_hint)
            return self.server.handle_response(*error())
        if refresh_keys:
            await self.keystore.sync_current()  # sign with the key current now, even if rotated elsewhere
        response = await anyio.to_thread.run_sync(authlib_call, oauth_request, limiter=self.threads)
        if oauth_request.oauth_error == "invalid_client":
            await self.limiter.failed_authentication(address=address, client_id=client_hint)
        elif response.status_code < 400:  # only what the client itself did counts as its own
            await self.limiter.authenticated(client_id=client_hint)
        return response


def oauth_routes(state: Any) -> list[Route]:
    """POST /oauth/token, /oauth/introspect, /oauth/revoke; GET the RFC 8414 metadata and JWKS."""
    endpoints = OAuthEndpoints(state)
    state.extra["oauth"] = endpoints
    return [
        Route(TOKEN_PATH, endpoints.token, methods=["POST"]),
        Route(INTROSPECTION_PATH, endpoints.introspect, methods=["POST"]),
        Route(REVOCATION_PATH, endpoints.revoke, methods=["POST"]),
        Route(METADATA_PATH, endpoints.metadata, methods=["GET"]),
        Route(JWKS_PATH, endpoints.jwks, methods=["GET"]),
    ]
