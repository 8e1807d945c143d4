"""Run the exporter, Prometheus and Alertmanager as real processes on loopback.

`Stack` starts each process with its own temporary folder and a free port on
127.0.0.1, waits until it reports ready, and stops every process it started when
it closes. `WebhookReceiver` and `SmtpSink` record what Alertmanager sends.
Nothing here listens on or contacts an address other than 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def find_binary(*names: str) -> str | None:
    """Return the path of the first of `names` found on PATH, or None."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


PROMETHEUS = find_binary("prometheus")
# Debian names the Alertmanager server prometheus-alertmanager.
ALERTMANAGER = find_binary("prometheus-alertmanager", "alertmanager")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET `url` and return the status code and body; HTTP errors are returned too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_get_json(url: str, timeout: float = 2.0) -> Any:
    status, body = http_get(url, timeout)
    if status != 200:
        raise RuntimeError(f"GET {url} returned HTTP {status}: {body[:200]!r}")
    return json.loads(body)


def wait_until(
    condition: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = ""
) -> Any:
    """Call `condition` until it returns a truthy value and return that value.

    Exceptions raised by `condition` count as "not yet". Raises TimeoutError after
    `timeout` seconds, naming `what` and the last exception.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last_error = error
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what or condition}"
                + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(interval)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    """Processes started for one test, stopped together by `close`.

    Use it as a context manager. `directory` is a temporary folder removed on
    close; each process gets a subfolder of it.
    """

    startup_timeout: float = 20.0
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp("-stack")))
    processes: list[_Process] = field(default_factory=list)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write_file(self, name: str, content: str | Mapping | Sequence) -> Path:
        """Write text, or a mapping or list as YAML, to `name` in `directory`."""
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not isinstance(content, str):
            content = yaml.safe_dump(content, sort_keys=False)
        path.write_text(content)
        return path

    def start_exporter(self, args: Sequence[str]) -> str:
        """Start `dify-license-exporter serve ARGS` and return its base URL.

        The listen address is added here; `args` holds the source flags and any
        other serve flag.
        """
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "dify_license_exporter",
            "serve",
            *args,
            "--web.listen-address",
            f"{LOOPBACK}:{port}",
        ]
        url = f"http://{LOOPBACK}:{port}"
        self._start("exporter", command, f"{url}/readyz")
        return url

    def start_prometheus(
        self,
        scrape_targets: Mapping[str, Sequence[str]],
        rule_files: Sequence[str | Path] = (),
        alertmanager_url: str | None = None,
        eval_interval: float = 1.0,
    ) -> str:
        """Start Prometheus and return its base URL.

        `scrape_targets` maps a job name to its `host:port` targets; every job is
        scraped at `eval_interval` seconds, which is also the rule evaluation
        interval. Alerts go to `alertmanager_url` when given.
        """
        if PROMETHEUS is None:
            raise RuntimeError("prometheus is not installed")
        workdir = self._workdir("prometheus")
        interval = f"{int(eval_interval * 1000)}ms"
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(Path(path).resolve()) for path in rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "honor_labels": True,
                    "static_configs": [{"targets": list(targets)}],
                }
                for job, targets in scrape_targets.items()
            ],
        }
        if alertmanager_url:
            host = alertmanager_url.split("://", 1)[1].rstrip("/")
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [host]}]}]
            }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))

        port = free_port()
        command = [
            PROMETHEUS,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            # Resend firing alerts every evaluation interval instead of every minute.
            f"--rules.alert.resend-delay={interval}",
        ]
        url = f"http://{LOOPBACK}:{port}"
        self._start("prometheus", command, f"{url}/-/ready")
        return url

    def start_alertmanager(self, config: str | Mapping) -> str:
        """Start Alertmanager with `config` (YAML text or a mapping); return its URL.

        Clustering is turned off, so Alertmanager listens on its web port only.
        """
        if ALERTMANAGER is None:
            raise RuntimeError("alertmanager is not installed")
        workdir = self._workdir("alertmanager")
        if not isinstance(config, str):
            config = yaml.safe_dump(config, sort_keys=False)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(config)

        port = free_port()
        url = f"http://{LOOPBACK}:{port}"
        command = [
            ALERTMANAGER,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--web.external-url={url}",
            "--cluster.listen-address=",
        ]
        self._start("alertmanager", command, f"{url}/-/ready")
        return url

    def close(self) -> None:
        """Stop every started process, then remove `directory`."""
        for process in reversed(self.processes):
            _stop(process.popen)
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def logs(self) -> str:
        """Return the last log lines of every process, for failure messages."""
        return "\n".join(
            f"--- {process.name} ---\n{process.log_tail()}"
            for process in self.processes
        )

    def _workdir(self, name: str) -> Path:
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _start(self, name: str, command: list[str], ready_url: str) -> None:
        log_path = self._workdir(name) / "output.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self._workdir(name),
            )
        process = _Process(name, popen, log_path)
        self.processes.append(process)

        def ready() -> bool:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited with code {popen.returncode}")
            return http_get(ready_url, timeout=1.0)[0] == 200

        try:
            wait_until(ready, self.startup_timeout, what=f"{name} at {ready_url}")
        except (TimeoutError, RuntimeError) as error:
            raise RuntimeError(f"{error}\n{process.log_tail()}") from error


def _stop(popen: subprocess.Popen, timeout: float = 5.0) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout)


@dataclass
class WebhookRequest:
    path: str
    payload: dict


class WebhookReceiver:
    """HTTP server on 127.0.0.1 that records every JSON POST, for Alertmanager."""

    def __init__(self) -> None:
        self.requests: list[WebhookRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.requests.append(WebhookRequest(self.path, payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}{path}"

    def received(self, path: str | None = None) -> list[WebhookRequest]:
        """Return the requests received so far, only those to `path` if given."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message


class SmtpSink:
    """Minimal SMTP server on 127.0.0.1 that records every delivered mail.

    It speaks plain SMTP only (no STARTTLS, no AUTH), so the client must not
    require TLS.
    """

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                sender, recipients = "", []
                self.reply("220 sink ESMTP")
                while line := self.rfile.readline():
                    command = line.decode(errors="replace").strip()
                    verb = command.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        sender = _address(command)
                        recipients = []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(_address(command))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = self._read_data()
                        with sink._lock:
                            sink.mails.append(
                                Mail(sender, recipients, message_from_bytes(data))
                            )
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

            def _read_data(self) -> bytes:
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    # Undo dot-stuffing: a leading ".." stands for ".".
                    lines.append(line[1:] if line.startswith(b"..") else line)
                return b"".join(lines)

        self._server = socketserver.ThreadingTCPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)


def _address(command: str) -> str:
    """Return the address inside <...> of a MAIL FROM or RCPT TO command."""
    start, end = command.find("<"), command.rfind(">")
    return command[start + 1 : end]
