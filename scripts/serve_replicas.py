"""Run N app replicas on this machine behind HAProxy with cookie-based sticky sessions (``make serve-replicas``).

Why HAProxy with a cookie: Streamlit keeps a browser session's state in the replica that runs it and talks to it over
one websocket, so every request of a session must reach the same replica. A cookie that the balancer inserts on the
first response names that replica; the websocket upgrade request carries it, so it lands on the same one. An
``ip_hash`` (nginx's usual answer) would send every student behind a school's one NAT address to a single replica.
When a replica dies, HAProxy's health check marks it down and ``option redispatch`` sends its sessions' reconnects
to a live one: the browser reconnects, the page runs again from its URL, and only that session's in-memory state
(e.g. a fine-tuned adapter) is lost.

Usage: ``python scripts/serve_replicas.py --replicas 2 --port 8500`` (Ctrl-C stops everything). Only loopback
addresses are used. The balancer is Debian's ``haproxy`` package (``make serve-replicas`` installs it when missing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "LLMXREPLICA"
#: Environment variable a replica reads to name itself in the sidebar (so a class, and the tests, can see which).
REPLICA_ENV = "LLMX_REPLICA"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_config(front_port: int, replicas: dict[str, int], stats_port: int | None = None) -> str:
    """The HAProxy configuration: round-robin for new sessions, a cookie to keep each session on its replica.

    Args:
        front_port: The port students open.
        replicas: Replica name → its port on 127.0.0.1.
        stats_port: Optional port for HAProxy's own statistics page.
    """
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{port} cookie {name} check inter 2s fall 3 rise 2"
        for name, port in replicas.items()
    )
    stats = (
        f"\nlisten stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /\n" if stats_port else ""
    )
    return f"""global
    maxconn 4096

defaults
    mode http
    option redispatch
    retries 2
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    # A replica busy with a class's generations can answer its health check late: late is not dead.
    timeout check 10s

frontend students
    bind 127.0.0.1:{front_port}
    log stdout format raw local0
    option httplog
    default_backend llmx

backend llmx
    balance roundrobin
    cookie {COOKIE} insert indirect nocache httponly
    option httpchk GET /_stcore/health
    http-response set-header X-LLMX-Replica %s
{servers}
{stats}"""


@dataclass
class Replicas:
    """N ``streamlit run`` replicas and one HAProxy in front, started by :meth:`start` and ended by :meth:`stop`."""

    count: int = 2
    front_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    balancer: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    def start(self, timeout: float = 300) -> Replicas:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise RuntimeError("HAProxy is not installed: apt-get install -y haproxy (make serve-replicas does it)")
        self.front_port = self.front_port or free_port()
        self.log_dir = Path(self.log_dir or tempfile.mkdtemp(prefix="llmx-replicas-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for i in range(1, self.count + 1):
            self.start_replica(f"r{i}")
        self.wait_healthy(timeout)
        cfg = self.log_dir / "haproxy.cfg"
        cfg.write_text(haproxy_config(self.front_port, self.ports))
        check = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"invalid HAProxy configuration: {check.stdout} {check.stderr}")
        log = open(self.log_dir / "haproxy.log", "w")  # noqa: SIM115 - closed with the process
        self.balancer = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        self._wait_url(self.url + "/_stcore/health", timeout=30)
        return self

    def start_replica(self, name: str) -> None:
        """Start (or restart) one replica on its port (a new one the first time)."""
        port = self.ports.get(name) or free_port()
        self.ports[name] = port
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", REPLICA_ENV: name, **self.env}
        log = open(self.log_dir / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            # scripts/serve.py, as `make run`: each replica loads its model from the start, not on its first visitor
            [sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 300) -> None:
        for name, port in self.ports.items():
            self._wait_url(f"http://127.0.0.1:{port}/_stcore/health", timeout, self.procs[name])

    def kill(self, name: str) -> None:
        """Kill one replica at once (SIGKILL: no goodbye to its sessions), as a crash would."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in [self.balancer, *self.procs.values()]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in [self.balancer, *self.procs.values()]:
            if proc is not None:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def __enter__(self) -> Replicas:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @staticmethod
    def _wait_url(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"a replica exited early ({url})")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2, help="how many app processes (one per 2 cores)")
    parser.add_argument("--port", type=int, default=8500, help="the port students open")
    args = parser.parse_args()
    with Replicas(count=args.replicas, front_port=args.port, log_dir=ROOT / "test-artifacts" / "replicas") as reps:
        print(f"{args.replicas} replicas behind HAProxy: open {reps.url} (logs in {reps.log_dir}); Ctrl-C stops.")
        try:
            while all(p.poll() is None for p in reps.procs.values()):
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
