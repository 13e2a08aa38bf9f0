"""Protecting a /metrics port the way Prometheus' own exporters do: a web config file.

The format is the exporter-toolkit's (`--web.config.file` of node_exporter and friends), so
one file serves llmkpi and the rest of a fleet:

    tls_server_config:
      cert_file: /etc/llmkpi/tls.crt
      key_file: /etc/llmkpi/tls.key
      client_ca_file: /etc/llmkpi/ca.crt     # optional: then clients must show a cert
    basic_auth_users:
      prometheus: $2b$12$...                 # bcrypt, e.g. `htpasswd -nBC 12 prometheus`

`serve_metrics` serves a registry with it on a daemon thread: TLS when `tls_server_config`
is given, HTTP basic auth checked against the bcrypt hashes when users are given. A
password that passed once is remembered (as a salted digest) so scrapes do not pay bcrypt
every time; a wrong one costs a bcrypt compare, also for an unknown user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from specs.configfile import ConfigFile

BCRYPT_RE = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
# compared against when the user is unknown, so timing does not tell users apart
_DUMMY_HASH = b"$2b$10$" + b"." * 53

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class WebConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash

    @property
    def tls(self) -> bool:
        return self.cert_file is not None


def load_web_config(path: Path) -> WebConfig:
    """Read and check a web config file; ValueError `file:line: key: problem`."""
    read = ConfigFile(path, "the web config file", None,
                      "tls_server_config and/or basic_auth_users")
    read.refuse_unknown(("tls_server_config", "basic_auth_users"))
    cert = key = ca = None
    if "tls_server_config" in read.top:
        node = read.top["tls_server_config"]
        tls = read.fields(node, "tls_server_config", ("cert_file", "key_file",
                                                      "client_ca_file"))
        for needed in ("cert_file", "key_file"):
            if needed not in tls:
                raise read.fail(node, f"tls_server_config.{needed}", "missing")
        cert, key = (_existing(read, tls[k], f"tls_server_config.{k}", path)
                     for k in ("cert_file", "key_file"))
        if "client_ca_file" in tls:
            ca = _existing(read, tls["client_ca_file"], "tls_server_config.client_ca_file",
                           path)
    users: dict[str, bytes] = {}
    if "basic_auth_users" in read.top:
        for name, node in read.mapping(read.top["basic_auth_users"],
                                       "basic_auth_users").items():
            where = f"basic_auth_users.{name}"
            if not isinstance(name, str) or not name or ":" in name:
                raise read.fail(node, where, "a user name is non-empty text without ':'")
            if not isinstance(node.value, str) or not BCRYPT_RE.match(node.value):
                # not echoed: a plain password may have been pasted there
                raise read.fail(node, where, "not a bcrypt hash (not shown); make one with"
                                " `htpasswd -nBC 12 USER` or Python's bcrypt.hashpw")
            users[name] = node.value.encode()
    if cert is None and not users:
        raise read.fail(read.root, "(top level)", "protects nothing: give"
                        " tls_server_config, basic_auth_users or both")
    try:
        _tls_context(WebConfig(cert, key, ca))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"{path}: tls_server_config: the certificate and key do not load:"
                         f" {exc}") from None
    return WebConfig(cert, key, ca, users)


def _existing(read: ConfigFile, node: Any, where: str, config: Path) -> Path:
    text = read.text(node, where)
    found = Path(text) if os.path.isabs(text) else config.parent / text
    if not found.is_file():
        raise read.fail(node, where, f"no file {found}")
    return found


def _tls_context(web: WebConfig) -> ssl.SSLContext | None:
    if web.cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(web.cert_file), str(web.key_file))
    if web.client_ca_file is not None:
        context.load_verify_locations(str(web.client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class BasicAuth:
    """WSGI middleware: 401 unless the Authorization header names a user whose bcrypt
    hash the password matches."""

    def __init__(self, app: WsgiApp, users: Mapping[str, bytes]) -> None:
        import bcrypt  # only where users are configured

        self.app, self.users, self._bcrypt = app, dict(users), bcrypt
        self._salt = os.urandom(16)
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()

    def allowed(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).decode(
                "utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self.users.get(user)
        digest = hmac.new(self._salt, f"{user}\0{password}".encode()
                          + (hashed or b""), hashlib.sha256).digest()
        with self._lock:
            if hashed is not None and digest in self._passed:
                return True
        ok = self._bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) and \
            hashed is not None
        if ok:
            with self._lock:
                if len(self._passed) > 1000:
                    self._passed.clear()
                self._passed.add(digest)
        return ok

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if self.allowed(environ.get("HTTP_AUTHORIZATION", "")):
            return self.app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("WWW-Authenticate", 'Basic realm="llmkpi"')])
        return [b"Unauthorized\n"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(WSGIRequestHandler):
    timeout = 30  # seconds a scraper may take to send its request

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1",
                  web: WebConfig | None = None) -> WSGIServer:
    """Serve the registry (OpenMetrics with exemplars when the scraper asks) on a daemon
    thread, with TLS and basic auth when `web` says so."""
    app: WsgiApp = make_wsgi_app(registry)
    if web is not None and web.users:
        app = BasicAuth(app, web.users)
    server_class: type[_Server] = _Server
    if ":" in addr:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    httpd = make_server(addr, port, app, server_class, handler_class=_Quiet)
    context = _tls_context(web) if web is not None else None
    if context is not None:
        # the handshake then happens on the request's own thread, not in accept(): a client
        # that connects and says nothing holds up no one else's scrape
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True,
                                           do_handshake_on_connect=False)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
    return httpd
