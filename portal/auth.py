"""Who is asking: browser sessions, API tokens, sign-in with lock-out, form tokens, roles.

- A browser signs in with its login and password and gets a session cookie (HttpOnly, SameSite=Lax,
  Secure when `portal.secure_cookies` is set). The cookie holds a random token; the database holds
  only its SHA-256 digest, so a copy of the database signs nobody in.
- An API client sends `Authorization: Bearer <token>`; tokens are made by a signed-in user and
  stored as digests too.
- Requests that change something and are authenticated by the cookie must carry the session's form
  token (a hidden `csrf_token` field, or the `X-CSRF-Token` header): another site can make a browser
  send the cookie, but cannot read the token. Bearer requests need none: browsers never add them.
- Failed sign-ins are counted per login and per source address; too many within
  FAILURE_WINDOW lock that login (or address) out for LOCK_DURATION, the right password included.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import falcon
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from boomerang import security
from boomerang.store.models import Account, AccountStatus, ApiToken, LoginThrottle, PortalSession, Role
from boomerang.store.types import utcnow
from portal import pagination, representations
from portal.database import Database
from portal.validation import Body

SESSION_COOKIE = "boomerang_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_PREFIX = "bmr_"
IDLE_TIMEOUT = timedelta(hours=2)  # a session unused this long ends
ABSOLUTE_TIMEOUT = timedelta(hours=24)  # and none lasts longer
# Sessions and tokens record their use at most this often, so reads do not become writes.
TOUCH_INTERVAL = timedelta(minutes=1)
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_DURATION = timedelta(minutes=15)
LOGIN_FAILURES_BEFORE_LOCK = 5
ADDRESS_FAILURES_BEFORE_LOCK = 30
MAX_TOKENS_PER_ACCOUNT = 20
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    account_id: int
    login: str
    role: Role
    via: str  # "session" (cookie) or "token" (bearer)
    credential_id: int  # the row id of the session or token
    csrf_token: str = ""  # sessions only

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class SignInRefused(Exception):
    def __init__(self, status: str, title: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.retry_after = status, title, detail, retry_after

    def as_http_error(self) -> falcon.HTTPError:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        if self.status == falcon.HTTP_401:
            headers["WWW-Authenticate"] = "Bearer"
        return falcon.HTTPError(self.status, title=self.title, description=self.detail, headers=headers)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@functools.cache
def _decoy_hash() -> str:
    # Checked when the login does not exist, so that a wrong login takes as long as a wrong password.
    return security.hash_password(secrets.token_hex(16))


_SESSION = (
    select(
        PortalSession.id,
        PortalSession.created_at,
        PortalSession.last_seen_at,
        PortalSession.expires_at,
        Account.id.label("account_id"),
        Account.login,
        Account.role,
        Account.status,
    )
    .join(Account, Account.id == PortalSession.account_id)
    .where(PortalSession.token_digest == bindparam("token_digest"))
)
_TOKEN = (
    select(
        ApiToken.id,
        ApiToken.last_used_at,
        ApiToken.expires_at,
        Account.id.label("account_id"),
        Account.login,
        Account.role,
        Account.status,
    )
    .join(Account, Account.id == ApiToken.account_id)
    .where(ApiToken.token_digest == bindparam("token_digest"))
)
_TOUCH_SESSION = (
    update(PortalSession)
    .where(PortalSession.id == bindparam("session_id"))
    .values(last_seen_at=bindparam("now"), expires_at=bindparam("expires_at"))
)
_TOUCH_TOKEN = update(ApiToken).where(ApiToken.id == bindparam("token_id")).values(last_used_at=bindparam("now"))


class Authenticator:
    """Signing in and out, and the principal behind each request's credentials."""

    def __init__(
        self, db: Database, secret: bytes, secure_cookies: bool, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.secret = secret
        self.secure_cookies = secure_cookies
        self.clock = clock

    # --- credentials of a request -----------------------------------------------------------------

    def csrf_token(self, token_digest: str) -> str:
        return hmac.new(self.secret, b"csrf:" + token_digest.encode(), hashlib.sha256).hexdigest()

    def principal_for(self, req: falcon.Request) -> Principal | None:
        authorization = req.get_header("Authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise falcon.HTTPUnauthorized(
                    title="Invalid credentials", description="use Authorization: Bearer <token>", challenges=["Bearer"]
                )
            principal = self._token_principal(credentials.strip())
            if principal is None:
                raise falcon.HTTPUnauthorized(
                    title="Invalid credentials",
                    description="the API token is unknown, expired or revoked, or its account is not active",
                    challenges=["Bearer"],
                )
            return principal
        cookies = req.get_cookie_values(SESSION_COOKIE)
        if cookies:
            return self._session_principal(cookies[0])
        return None

    def _session_principal(self, token: str) -> Principal | None:
        now = self.clock()
        token_digest = digest(token)
        with self.db.read() as session:
            row = session.execute(_SESSION, {"token_digest": token_digest}).first()
        if row is None or row.expires_at <= now or row.status is not AccountStatus.ACTIVE:
            return None
        if now - row.last_seen_at >= TOUCH_INTERVAL:
            expires_at = min(now + IDLE_TIMEOUT, row.created_at + ABSOLUTE_TIMEOUT)
            with self.db.write() as session:
                session.execute(_TOUCH_SESSION, {"session_id": row.id, "now": now, "expires_at": expires_at})
        return Principal(row.account_id, row.login, row.role, "session", row.id, self.csrf_token(token_digest))

    def _token_principal(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        now = self.clock()
        with self.db.read() as session:
            row = session.execute(_TOKEN, {"token_digest": digest(token)}).first()
        if row is None or row.status is not AccountStatus.ACTIVE:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
            with self.db.write() as session:
                session.execute(_TOUCH_TOKEN, {"token_id": row.id, "now": now})
        return Principal(row.account_id, row.login, row.role, "token", row.id)

    # --- signing in and out -----------------------------------------------------------------------

    def sign_in(self, login: str, password: str, remote_addr: str) -> tuple[str, Principal]:
        """A new session's cookie token and principal, or SignInRefused."""
        now = self.clock()
        with self.db.read() as session:
            self._refuse_if_locked(session, login, remote_addr, now)
            account = session.execute(
                select(Account.id, Account.login, Account.role, Account.status, Account.password_hash).where(
                    Account.login == login
                )
            ).first()
        # The slow hash is checked outside any transaction: it must not hold SQLite's write lock.
        valid = security.verify_password(account.password_hash if account else _decoy_hash(), password)
        if not valid or account is None:
            self._fail(login, remote_addr, now)
            raise SignInRefused(falcon.HTTP_401, "Sign-in failed", "the login or password is wrong")
        if account.status is not AccountStatus.ACTIVE:
            raise SignInRefused(falcon.HTTP_403, "Account not active", f"this account is {account.status}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.write() as session:
            session.execute(delete(LoginThrottle).where(LoginThrottle.scope == "login", LoginThrottle.subject == login))
            session.execute(
                delete(PortalSession).where(PortalSession.account_id == account.id, PortalSession.expires_at <= now)
            )
            record = PortalSession(
                token_digest=digest(token),
                account_id=account.id,
                remote_addr=remote_addr[:45],
                created_at=now,
                last_seen_at=now,
                expires_at=now + IDLE_TIMEOUT,
            )
            session.add(record)
            session.flush()
            principal = Principal(
                account.id, account.login, account.role, "session", record.id, self.csrf_token(digest(token))
            )
        return token, principal

    def sign_out(self, principal: Principal) -> None:
        if principal.via != "session":
            raise falcon.HTTPBadRequest(
                title="Not a session", description="an API token is revoked with DELETE /api/tokens/{id}"
            )
        with self.db.write() as session:
            session.execute(delete(PortalSession).where(PortalSession.id == principal.credential_id))

    def change_password(self, principal: Principal, current: str, new: str, remote_addr: str) -> None:
        """Needs the current password (counted like a sign-in); other sessions of the account end."""
        now = self.clock()
        with self.db.read() as session:
            self._refuse_if_locked(session, principal.login, remote_addr, now)
            password_hash = session.execute(
                select(Account.password_hash).where(Account.id == principal.account_id)
            ).scalar_one()
        if not security.verify_password(password_hash, current):
            self._fail(principal.login, remote_addr, now)
            raise SignInRefused(falcon.HTTP_403, "Wrong password", "the current password is wrong")
        try:
            new_hash = security.hash_password(new)
        except security.CredentialError as exc:
            raise SignInRefused(falcon.HTTP_400, "Invalid password", str(exc)) from None
        with self.db.write() as session:
            session.execute(update(Account).where(Account.id == principal.account_id).values(password_hash=new_hash))
            others = delete(PortalSession).where(PortalSession.account_id == principal.account_id)
            if principal.via == "session":
                others = others.where(PortalSession.id != principal.credential_id)
            session.execute(others)

    def verify_password(self, principal: Principal, password: str, remote_addr: str) -> None:
        """For sensitive changes (the PIN): the password again, counted like a sign-in."""
        now = self.clock()
        with self.db.read() as session:
            self._refuse_if_locked(session, principal.login, remote_addr, now)
            password_hash = session.execute(
                select(Account.password_hash).where(Account.id == principal.account_id)
            ).scalar_one()
        if not security.verify_password(password_hash, password):
            self._fail(principal.login, remote_addr, now)
            raise SignInRefused(falcon.HTTP_403, "Wrong password", "the password is wrong")

    def set_cookie(self, resp: falcon.Response, token: str) -> None:
        resp.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
            path="/",
            secure=self.secure_cookies,
            http_only=True,
            same_site="Lax",
        )

    def clear_cookie(self, resp: falcon.Response) -> None:
        resp.unset_cookie(SESSION_COOKIE, path="/", same_site="Lax")

    # --- lock-out ---------------------------------------------------------------------------------

    def _refuse_if_locked(self, session: Session, login: str, remote_addr: str, now: datetime) -> None:
        rows = session.execute(
            select(LoginThrottle.scope, LoginThrottle.locked_until).where(
                ((LoginThrottle.scope == "login") & (LoginThrottle.subject == login[:128]))
                | ((LoginThrottle.scope == "address") & (LoginThrottle.subject == remote_addr[:128]))
            )
        ).all()
        until = max((row.locked_until for row in rows if row.locked_until and row.locked_until > now), default=None)
        if until is not None:
            seconds = math.ceil((until - now).total_seconds())
            raise SignInRefused(
                falcon.HTTP_429,
                "Too many failed sign-ins",
                f"sign-in is locked after repeated failures; try again in {math.ceil(seconds / 60)} minutes",
                retry_after=seconds,
            )

    def _fail(self, login: str, remote_addr: str, now: datetime) -> None:
        with self.db.write() as session:
            _count_failure(session, "login", login[:128], LOGIN_FAILURES_BEFORE_LOCK, now)
            _count_failure(session, "address", remote_addr[:128], ADDRESS_FAILURES_BEFORE_LOCK, now)


def _count_failure(session: Session, scope: str, subject: str, limit: int, now: datetime) -> None:
    query = select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.subject == subject)
    throttle = session.execute(query.with_for_update()).scalar_one_or_none()
    if throttle is None:
        try:
            with session.begin_nested():
                throttle = LoginThrottle(scope=scope, subject=subject, failures=0, window_started_at=now)
                session.add(throttle)
        except IntegrityError:  # a concurrent failure created it first
            throttle = session.execute(query.with_for_update()).scalar_one()
    if now - throttle.window_started_at > FAILURE_WINDOW:
        throttle.failures, throttle.window_started_at = 0, now
    throttle.failures += 1
    if throttle.failures >= limit:
        throttle.locked_until = now + LOCK_DURATION
        throttle.failures, throttle.window_started_at = 0, now


# --- middleware and hooks -------------------------------------------------------------------------


class Authentication:
    """Middleware: resolves the request's principal, and checks the form token of cookie requests."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        req.context.csrf_token = ""
        principal = self.authenticator.principal_for(req)
        req.context.principal = principal
        if principal is not None:
            req.context.csrf_token = principal.csrf_token

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        principal: Principal | None = req.context.principal
        if req.method in _SAFE_METHODS or resource is None or principal is None or principal.via != "session":
            return
        if req.method in getattr(resource, "csrf_exempt", ()):
            return
        sent = req.get_header(CSRF_HEADER)
        if sent is None and (req.content_type or "").startswith(falcon.MEDIA_URLENCODED):
            form = req.get_media(default_when_empty={})
            sent = form.get(CSRF_FIELD) if isinstance(form, dict) else None
        if not isinstance(sent, str) or not hmac.compare_digest(sent, principal.csrf_token):
            raise falcon.HTTPForbidden(
                title="Form token missing or wrong",
                description="reload the page and try again (API clients: send the X-CSRF-Token header "
                "from the sign-in response, or use a bearer token)",
            )


def signed_in(req: falcon.Request, resp: falcon.Response, resource, params) -> None:
    if req.context.principal is None:
        raise falcon.HTTPUnauthorized(
            title="Sign-in required",
            description="sign in (POST /api/session) or send Authorization: Bearer <token>",
            challenges=["Bearer"],
        )


def admin_only(req: falcon.Request, resp: falcon.Response, resource, params) -> None:
    signed_in(req, resp, resource, params)
    if not req.context.principal.is_admin:
        raise falcon.HTTPForbidden(title="Administrators only", description="this needs an administrator's account")


# --- resources ------------------------------------------------------------------------------------


def _principal_view(principal: Principal) -> dict:
    return {
        "login": principal.login,
        "role": str(principal.role),
        "via": principal.via,
        "csrf_token": principal.csrf_token,
    }


class SessionResource:
    """/api/session: sign in (POST), who am I (GET), sign out (DELETE)."""

    csrf_exempt = ("POST",)  # signing in replaces whatever session the browser had

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    @falcon.before(signed_in)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _principal_view(req.context.principal)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        login = body.text("login", max_length=128)
        password = body.text("password", max_length=1024)
        body.done()
        try:
            token, principal = self.authenticator.sign_in(login, password, req.remote_addr or "")
        except SignInRefused as refused:
            raise refused.as_http_error() from None
        self.authenticator.set_cookie(resp, token)
        resp.status = falcon.HTTP_201
        resp.media = _principal_view(principal)

    @falcon.before(signed_in)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.authenticator.sign_out(req.context.principal)
        self.authenticator.clear_cookie(resp)
        resp.status = falcon.HTTP_204


class PasswordResource:
    """/api/me/password: change one's own password."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    @falcon.before(signed_in)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        current = body.text("current_password", max_length=1024)
        new = body.text("new_password", max_length=1024)
        body.done()
        try:
            self.authenticator.change_password(req.context.principal, current, new, req.remote_addr or "")
        except SignInRefused as refused:
            raise refused.as_http_error() from None
        resp.status = falcon.HTTP_204


@falcon.before(signed_in)
class TokensResource:
    """/api/tokens: one's own API tokens; a new token is shown once, when it is made."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = select(ApiToken).where(ApiToken.account_id == req.context.principal.account_id)
        with self.db.read() as session:
            resp.media = pagination.listed(req, session, query.order_by(ApiToken.id), representations.api_token)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        name = body.text("name", max_length=64).strip()
        days = body.integer("expires_in_days", 1, 3650)
        body.done()
        if not name:
            raise falcon.HTTPBadRequest(title="Invalid field", description="name must not be empty")
        account_id = req.context.principal.account_id
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.write() as session:
            count = len(session.execute(select(ApiToken.id).where(ApiToken.account_id == account_id)).all())
            if count >= MAX_TOKENS_PER_ACCOUNT:
                raise falcon.HTTPConflict(
                    title="Too many tokens", description=f"an account has at most {MAX_TOKENS_PER_ACCOUNT} tokens"
                )
            record = ApiToken(
                account_id=account_id,
                name=name,
                token_digest=digest(token),
                hint=token[:10],
                created_at=now,
                expires_at=now + timedelta(days=days) if days else None,
            )
            session.add(record)
            session.flush()
            resp.media = representations.api_token(record) | {"token": token}
        resp.status = falcon.HTTP_201


@falcon.before(signed_in)
class TokenResource:
    """/api/tokens/{token_id}: revoke one of one's own tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_delete(self, req: falcon.Request, resp: falcon.Response, token_id: int) -> None:
        with self.db.write() as session:
            deleted = session.execute(
                delete(ApiToken).where(ApiToken.id == token_id, ApiToken.account_id == req.context.principal.account_id)
            ).rowcount
        if not deleted:
            raise falcon.HTTPNotFound(title="Not found", description=f"you have no API token {token_id}")
        resp.status = falcon.HTTP_204
