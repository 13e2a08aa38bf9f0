"""The nginx data plane: nginx relays the bytes in C, engine_shim/nginx/llmkpi.lua measures.

`NginxPlane` renders a config into a private folder (the journal's `nginx/`), starts nginx in
the foreground as a child (no root: its own prefix, pid file and temp paths), restarts it if
it dies, rotates the journal (a new segment, then USR1 so nginx reopens its access log) and
stops it with the telemetry process. A telemetry process killed without stopping it leaves
nginx serving; the next one finds it by its pid file and adopts it instead of starting a
second one, so traffic never stops while telemetry restarts.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from engine_shim import journal

log = logging.getLogger(__name__)

LUA_DIR = Path(__file__).resolve().parent / "nginx"
MODULES = Path("/usr/lib/nginx/modules")
LUA_MODULE = MODULES / "ngx_http_lua_module.so"
NDK_MODULE = MODULES / "ndk_http_module.so"
MEASURED = ("/v1/completions", "/v1/chat/completions")


class NginxUnavailableError(RuntimeError):
    """nginx or its Lua module is not installed here."""


def missing() -> str | None:
    """What is missing for the nginx data plane, in one line; None when it can run."""
    if shutil.which("nginx") is None:
        return "nginx is not installed (Debian: nginx libnginx-mod-http-lua lua-cjson)"
    for module in (NDK_MODULE, LUA_MODULE):
        if not module.exists():
            return f"{module} is missing (Debian: libnginx-mod-http-lua)"
    if not any(Path(p).exists() for p in ("/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so",
                                          "/usr/lib/aarch64-linux-gnu/lua/5.1/cjson.so",
                                          "/usr/local/lib/lua/5.1/cjson.so")):
        return "lua-cjson is not installed (Debian: lua-cjson)"
    return None


@dataclass(frozen=True)
class NginxConfig:
    upstream: str
    host: str
    port: int
    journal: Path
    salt: str
    aliases: Mapping[str, str] = field(default_factory=dict)  # key hash -> tenant
    tenant_header: str = "X-Tenant"
    trusted_networks: tuple[str, ...] = ()  # CIDR blocks whose tenant header is honoured
    tenant_secret: str = ""  # or a request carrying it in X-Llmkpi-Tenant-Secret
    feature_header: str = "X-Feature"
    pod: str = ""
    role: str = ""  # prefill, decode, "" for both (RequestRecord.role)
    sample_ratio: float = 1.0
    capture_content: bool = False  # prompt and completion text on spans: opt-in only
    content_limit: int = 65_536
    workers: int = 1
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_body_mib: int = 32  # client_max_body_size: a larger body is answered 413, recorded

    def __post_init__(self) -> None:
        # nginx reads -c relative to its -p prefix and writes logs relative to its own
        # working directory: a relative journal (`--journal .demo/journal`) must be made
        # absolute once, here, for every path rendered from it
        object.__setattr__(self, "journal", self.journal.absolute())

    @property
    def prefix(self) -> Path:
        return self.journal / "nginx"


def _upstream(url: str) -> tuple[str, str, str]:
    """(scheme, host:port, base path without a trailing slash) of the engine's base URL: an
    engine served under a path (http://host:port/prefill) is reached under it, as the
    Python data plane reaches it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--upstream {url!r} must be http://HOST:PORT or https://HOST:PORT")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.scheme, f"{host}:{port}", parts.path.rstrip("/")


def _user_line() -> str:
    """Started as root, nginx hands its workers to `nobody`, who can reach neither a private
    journal folder nor the body-temp folder under it (large prompts): the workers stay the
    user who started the sidecar. To drop privileges run the sidecar as a non-root user."""
    if os.geteuid() != 0:
        return ""
    return (f"user {pwd.getpwuid(os.geteuid()).pw_name}"
            f" {grp.getgrgid(os.getegid()).gr_name};\n")


def _proxy(config: NginxConfig, scheme: str, uri: str) -> str:
    return f"""
            proxy_pass {scheme}://llmkpi_engine{uri};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Llmkpi-Tenant-Secret "";
            proxy_buffering off;
            proxy_request_buffering on;
            proxy_connect_timeout {config.connect_timeout:g}s;
            proxy_read_timeout {config.read_timeout:g}s;
            proxy_send_timeout {config.read_timeout:g}s;"""


def _measured(config: NginxConfig, path: str, proxy: str) -> str:
    return f"""
        location = {path} {{
            set $llmkpi_record "";
            set $llmkpi_id "";
            access_by_lua_block {{ llmkpi.start() }}
            header_filter_by_lua_block {{ llmkpi.headers() }}
            body_filter_by_lua_block {{ llmkpi.body() }}
            log_by_lua_block {{ llmkpi.finish() }}
            access_log {config.journal / journal.LINK} llmkpi if=$llmkpi_record;
            error_page 502 504 = @llmkpi_down;
            error_page 413 = @llmkpi_too_large;{proxy}
        }}"""


def render(config: NginxConfig) -> str:
    """The nginx.conf text (deterministic: the same config renders the same bytes)."""
    scheme, target, base = _upstream(config.upstream)
    prefix = config.prefix
    lua_settings = prefix / "llmkpi.json"
    trusted = "".join(f"        {network} 1;\n" for network in config.trusted_networks)
    # without a base path the client's URI goes as it came; under one, nginx puts the
    # matched location's part of it below the base (a URI on proxy_pass)
    measured = "".join(_measured(config, path, _proxy(config, scheme, base + path if base
                                                       else "")) for path in MEASURED)
    proxy = _proxy(config, scheme, base + "/" if base else "")
    return f"""# generated by llmkpi — do not edit (engine_shim/nginx_plane.py)
daemon off;
master_process on;
{_user_line()}worker_processes {config.workers};
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
load_module {NDK_MODULE};
load_module {LUA_MODULE};

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    client_body_temp_path {prefix / "tmp" / "body"};
    proxy_temp_path {prefix / "tmp" / "proxy"};
    fastcgi_temp_path {prefix / "tmp" / "fastcgi"};
    uwsgi_temp_path {prefix / "tmp" / "uwsgi"};
    scgi_temp_path {prefix / "tmp" / "scgi"};
    client_max_body_size {config.max_body_mib}m;
    client_body_buffer_size 1m;
    server_tokens off;
    log_format llmkpi escape=none '$llmkpi_record';
    geo $llmkpi_trusted_peer {{  # client networks whose tenant header is honoured
        default 0;
{trusted}    }}
    lua_package_path "{LUA_DIR}/?.lua;;";
    init_by_lua_block {{
        llmkpi = require "llmkpi"
        llmkpi.init("{lua_settings}")
    }}

    upstream llmkpi_engine {{
        server {target};
        keepalive 256;
    }}

    server {{
        listen {config.host}:{config.port} backlog=1024;
{measured}

        location @llmkpi_down {{
            set $llmkpi_record "";
            content_by_lua_block {{ llmkpi.upstream_down() }}
            log_by_lua_block {{ llmkpi.finish() }}
            access_log {config.journal / journal.LINK} llmkpi if=$llmkpi_record;
        }}

        location @llmkpi_too_large {{
            set $llmkpi_record "";
            content_by_lua_block {{ llmkpi.too_large({config.max_body_mib}) }}
            log_by_lua_block {{ llmkpi.finish() }}
            access_log {config.journal / journal.LINK} llmkpi if=$llmkpi_record;
        }}

        location / {{{proxy}
        }}
    }}
}}
"""


def lua_settings(config: NginxConfig) -> str:
    return json.dumps({"salt": config.salt, "aliases": dict(config.aliases),
                       "tenant_header": config.tenant_header.lower(),
                       "secret_digest": hashlib.sha256(config.tenant_secret.encode()).hexdigest()
                       if config.tenant_secret else "",
                       "feature_header": config.feature_header.lower(), "pod": config.pod,
                       "role": config.role,
                       "sample_ratio": config.sample_ratio, "upstream": config.upstream,
                       "capture_content": config.capture_content,
                       "content_limit": config.content_limit},
                      sort_keys=True)


class NginxPlane:
    """nginx as a supervised child; see the module docstring."""

    def __init__(self, config: NginxConfig, *, max_bytes: int = journal.DEFAULT_MAX_BYTES,
                 check_every: float = 1.0) -> None:
        problem = missing()
        if problem:
            raise NginxUnavailableError(problem)
        self.config = config
        self.max_bytes = max_bytes
        self.check_every = check_every
        self.process: subprocess.Popen[bytes] | None = None
        self.adopted: int | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="nginx-supervisor",
                                        daemon=True)

    @property
    def pid_file(self) -> Path:
        return self.config.prefix / "nginx.pid"

    def _write_config(self) -> tuple[Path, bool]:
        """The config files; True when they changed (a running nginx must reload)."""
        prefix = self.config.prefix
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        changed = False
        # the salt is in llmkpi.json: readable by this user only, never logged
        for name, text in (("llmkpi.json", lua_settings(self.config)),
                           ("nginx.conf", render(self.config))):
            path = prefix / name
            if path.exists() and path.read_text() == text:
                continue
            path.touch(mode=0o600)
            path.write_text(text)
            changed = True
        return prefix / "nginx.conf", changed

    def _running_pid(self) -> int | None:
        """The pid of an nginx this journal's earlier telemetry process left serving."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"nginx" in cmdline and str(self.config.prefix).encode() in cmdline \
            else None

    def start(self) -> None:
        journal.ensure(self.config.journal)
        conf, changed = self._write_config()
        checked = subprocess.run(["nginx", "-t", "-q", "-p", str(self.config.prefix), "-c",
                                  str(conf)], check=False, capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx refused its config {conf}: {checked.stderr.strip()}")
        pid = self._running_pid()
        if pid is not None:
            self.adopted = pid
            if changed:  # a reload closes idle keep-alive connections: only when needed
                os.kill(pid, signal.SIGHUP)
            log.info("nginx data plane already serving (pid %d): adopted%s", pid,
                     ", config reloaded" if changed else "")
        else:
            self._spawn(conf)
        self._wait_listening()
        self._thread.start()

    def _spawn(self, conf: Path) -> None:
        log_path = self.config.prefix / "nginx.out"
        with log_path.open("ab") as out:
            # its own session: a signal to the telemetry process's group does not reach it,
            # so nginx outlives a killed telemetry process and is adopted by the next
            self.process = subprocess.Popen(
                ["nginx", "-p", str(self.config.prefix), "-c", str(conf)], stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        log.info("nginx data plane on %s:%d (pid %d)", self.config.host, self.config.port,
                 self.process.pid)

    def _wait_listening(self, timeout: float = 10.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    (self.config.host, self.config.port), timeout=0.5):
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}; see"
                                   f" {self.config.prefix / 'error.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen on {self.config.port} in"
                                   f" {timeout:g} s; see {self.config.prefix / 'error.log'}")
            time.sleep(0.05)

    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        return self._running_pid()

    def rotate_if_needed(self) -> bool:
        """A new segment once the current one is past max_bytes; nginx reopens (USR1)."""
        seq = journal.current(self.config.journal)
        if seq is None:
            return False
        try:
            size = (self.config.journal / journal.segment_name(seq)).stat().st_size
        except OSError:
            return False
        if size < self.max_bytes:
            return False
        journal.rotate(self.config.journal)
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGUSR1)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.check_every):
            try:
                self.rotate_if_needed()
            except OSError:
                log.exception("journal rotation failed; trying again")
            if self.process is not None and self.process.poll() is not None \
                    and not self._stop.is_set():
                self.restarts += 1
                log.error("nginx exited with %s; starting it again", self.process.returncode)
                self._spawn(self.config.prefix / "nginx.conf")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop nginx gracefully (QUIT: finish the requests in flight), then for good."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return
            if self.process is None and self._running_pid() is None:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self.process is not None:
            self.process.wait(timeout)
