"""The balancer configuration `make serve-replicas` writes: valid for HAProxy, sticky by cookie, not by address."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from scripts.serve_replicas import COOKIE, haproxy_config


def test_every_replica_gets_its_own_cookie_and_a_health_check_and_nothing_keys_on_the_client_address():
    cfg = haproxy_config(8500, {"r1": 9001, "r2": 9002, "r3": 9003})
    assert f"cookie {COOKIE} insert indirect nocache" in cfg
    for name, port in (("r1", 9001), ("r2", 9002), ("r3", 9003)):
        assert f"server {name} 127.0.0.1:{port} cookie {name} check" in cfg
    assert "option redispatch" in cfg and "option httpchk GET /_stcore/health" in cfg
    assert "balance roundrobin" in cfg and "source" not in cfg  # one school NAT must not mean one replica
    assert "bind 127.0.0.1:8500" in cfg and "0.0.0.0" not in cfg  # loopback only


def test_haproxy_accepts_the_configuration(tmp_path):
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if shutil.os.path.exists("/usr/sbin/haproxy") else None)
    if haproxy is None:
        pytest.skip("HAProxy is not installed (make test installs it)")
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(8500, {"r1": 9001, "r2": 9002}, stats_port=8404))
    check = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
