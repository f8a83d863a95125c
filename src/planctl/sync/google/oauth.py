"""OAuth for a command-line tool: the installed-app flow, the token file, refresh and revoke.

The flow is Google's "installed app" one with a loopback redirect
(RFC 8252): a one-shot HTTP server on 127.0.0.1 receives the redirect, the
code is exchanged with PKCE (S256). It is written here over the standard
library rather than through google-auth-oauthlib's ``InstalledAppFlow``
because that one goes through requests-oauthlib, which refuses a plain-http
token endpoint (the emulator's) unless a process-wide environment variable
disables the check; the token saved is google-auth's own authorized-user JSON
(``Credentials.to_json()``), so other Google tools read it. Access tokens are
refreshed by google-auth. No secret ever reaches output, logs or argv.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from planctl.errors import ConfigError, SyncError
from planctl.failures import oauth_error

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

SCOPE = "https://www.googleapis.com/auth/calendar"
WAIT_SECONDS = 300.0
REAUTHORISE = "run planctl sync auth again"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ClientSecrets:
    """The OAuth client file downloaded from Google Cloud (``installed`` or ``web``)."""

    client_id: str
    client_secret: str = ""
    auth_uri: str = "https://accounts.google.com/o/oauth2/auth"
    token_uri: str = "https://oauth2.googleapis.com/token"

    def __repr__(self) -> str:  # never print the secret
        return f"ClientSecrets(client_id={self.client_id!r}, token_uri={self.token_uri!r})"

    @property
    def revoke_uri(self) -> str:
        return revoke_uri(self.token_uri)


def revoke_uri(token_uri: str) -> str:
    """Google's revoke endpoint sits beside its token endpoint (…/token → …/revoke)."""
    return token_uri.rsplit("/", 1)[0] + "/revoke"


def read_client_secrets(path: Path | None) -> ClientSecrets:
    if path is None:
        raise ConfigError(
            "PLANCTL_GOOGLE_CLIENT_SECRETS is not set",
            "download an OAuth client (Desktop app) JSON from Google Cloud and name it there",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        section = data.get("installed") or data.get("web")
        client = ClientSecrets(
            client_id=str(section["client_id"]),
            client_secret=str(section.get("client_secret", "")),
            auth_uri=str(section.get("auth_uri") or ClientSecrets.auth_uri),
            token_uri=str(section.get("token_uri") or ClientSecrets.token_uri),
        )
    except OSError as error:
        raise ConfigError(
            f"cannot read the OAuth client file {path}: {error.strerror or error}",
            "check PLANCTL_GOOGLE_CLIENT_SECRETS",
        ) from error
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(
            f"{path} is not an OAuth client file (no installed.client_id)",
            "download the client of type 'Desktop app' from Google Cloud",
        ) from error
    return client


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _Redirect(BaseHTTPRequestHandler):
    """Receives the browser's redirect to http://127.0.0.1:<port>/?code=…&state=…."""

    answer: dict[str, str] | None = None

    def do_GET(self) -> None:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if "code" not in query and "error" not in query:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        type(self).answer = query
        text = (
            "planctl is authorised; you may close this window."
            if "code" in query
            else "planctl was not authorised."
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the query holds the code: never logged


def authorize(
    client: ClientSecrets,
    token_path: Path,
    *,
    show_url: Callable[[str], None],
    open_browser: bool = True,
    wait: float = WAIT_SECONDS,
) -> Credentials:
    """Run the installed-app flow; save and return the credentials.

    *show_url* is given the full URL to open (``--no-browser`` prints it).
    """
    handler: type[_Redirect] = type("Redirect", (_Redirect,), {"answer": None})
    server = HTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 0.5
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(64)
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": state,
        "code_challenge": _s256(verifier),
        "code_challenge_method": "S256",
        "access_type": "offline",
        "prompt": "consent",
    }
    url = client.auth_uri + ("&" if "?" in client.auth_uri else "?") + urlencode(query)
    try:
        show_url(url)
        if open_browser:
            import webbrowser

            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        import time

        deadline = time.monotonic() + wait
        while handler.answer is None:
            if time.monotonic() > deadline:
                raise SyncError(
                    f"no answer from the browser within {wait:.0f} s",
                    "run planctl sync auth again (--no-browser prints the URL to open)",
                )
            server.handle_request()
    finally:
        server.server_close()
    answer = handler.answer
    if answer.get("state") != state:
        raise SyncError("the authorisation answer does not carry this request's state", REAUTHORISE)
    if "error" in answer:
        raise SyncError(f"Google did not authorise planctl: {answer['error']}", REAUTHORISE)
    tokens = _post_form(
        client.token_uri,
        {
            "grant_type": "authorization_code",
            "code": answer["code"],
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    if "refresh_token" not in tokens:
        raise SyncError("the token endpoint returned no refresh token", REAUTHORISE)
    import datetime as dt

    from google.oauth2.credentials import Credentials

    expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(
        seconds=int(tokens.get("expires_in", 3600))
    )
    credentials = Credentials(
        token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        token_uri=client.token_uri,
        client_id=client.client_id,
        client_secret=client.client_secret,
        scopes=[SCOPE],
        expiry=expiry,
    )
    save_token(token_path, credentials)
    return credentials


def _post_form(url: str, form: dict[str, str]) -> dict[str, Any]:
    data = urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        detail = _oauth_error(error.read())
        raise SyncError(f"the token endpoint refused the code: {detail}", REAUTHORISE) from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise SyncError(
            f"cannot reach the token endpoint {url}: {error}", "check the network"
        ) from error


def _oauth_error(body: bytes) -> str:
    try:
        data = json.loads(body)
        return str(data.get("error") or "error") + (
            f" ({data['error_description']})" if data.get("error_description") else ""
        )
    except (ValueError, AttributeError):
        return body[:100].decode("utf-8", "replace")


def save_token(path: Path, credentials: Credentials) -> None:
    """The authorized-user JSON, written durably, 0600 (its directory made 0700)."""
    from planctl.fsutil import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_write(path, name=str(path)) as out:
        out.write(credentials.to_json().encode("utf-8"))
    os.chmod(path, 0o600)


def load_token(path: Path) -> Credentials:
    """The saved credentials; ConfigError when there are none (run ``planctl sync auth``)."""
    from google.oauth2.credentials import Credentials

    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        credentials = Credentials.from_authorized_user_info(info)
        # google-auth always refreshes at Google's endpoint (a token file must not send the
        # refresh token elsewhere); the one exception planctl makes is a loopback emulator's.
        token_uri = str(info.get("token_uri") or "")
        if urlsplit(token_uri).hostname in LOOPBACK and urlsplit(token_uri).scheme == "http":
            expiry = credentials.expiry
            credentials = credentials.with_token_uri(token_uri)
            credentials.expiry = expiry  # the copy forgets it
        return credentials
    except FileNotFoundError as error:
        raise ConfigError(
            f"no Google authorisation at {path}", "run planctl sync auth (PLANCTL_GOOGLE_TOKEN)"
        ) from error
    except OSError as error:
        raise ConfigError(
            f"cannot read the Google token {path}: {error.strerror or error}",
            "check PLANCTL_GOOGLE_TOKEN",
        ) from error
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"{path} is not a Google authorized-user token", REAUTHORISE) from error


class TokenSource:
    """The ``Authorization`` header of a saved token, refreshed (and saved) when it expires."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.credentials = load_token(path)
        self.refreshes = 0

    def __call__(self, refresh: bool) -> str:
        if refresh or not self.credentials.valid:
            self.refresh()
        return f"Bearer {self.credentials.token}"

    def refresh(self) -> None:
        import urllib3
        from google.auth.exceptions import RefreshError, TransportError
        from google.auth.transport.urllib3 import Request

        try:
            self.credentials.refresh(Request(urllib3.PoolManager()))
        except RefreshError as error:
            if oauth_error(error) == "invalid_grant":
                raise SyncError(
                    f"the Google authorisation in {self.path} was revoked or has expired "
                    "(invalid_grant)",
                    REAUTHORISE,
                ) from error
            raise SyncError(
                f"cannot refresh the Google access token: {error}", REAUTHORISE
            ) from error
        except TransportError as error:
            raise SyncError(
                f"cannot reach Google's token endpoint: {error}", "check the network"
            ) from error
        self.refreshes += 1
        with contextlib.suppress(OSError):
            save_token(self.path, self.credentials)


def revoke(token_path: Path) -> bool:
    """Revoke the saved grant at its server and delete the token; False when the server
    no longer knew it (already revoked). The file is deleted either way."""
    credentials = load_token(token_path)
    token = credentials.refresh_token or credentials.token
    known = True
    try:
        _post_form(
            revoke_uri(credentials.token_uri or ClientSecrets.token_uri), {"token": token or ""}
        )
    except SyncError as error:
        if "invalid_token" not in error.message:
            raise
        known = False
    token_path.unlink(missing_ok=True)
    return known
