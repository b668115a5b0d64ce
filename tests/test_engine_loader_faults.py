"""Faults on the first start, with the real embedded GGUF: a full disk, a read-only folder, two servers at once.

Each test makes its own folders (and mounts, as root) and removes them; nothing an earlier run left is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import loader
from engine.loader import ModelLoadError, cache_problem, load_pretrained
from engine.registry import DEFAULT_KEY, get_spec

ROOT = Path(__file__).resolve().parent.parent


def _gguf():
    gguf = loader.find_embedded_gguf(get_spec(DEFAULT_KEY))
    if gguf is None:
        pytest.fail("the embedded model package is not installed (make setup installs it)")
    return gguf


def _cache_dir(root: Path) -> Path:
    return root / f"{DEFAULT_KEY}-{_gguf().stat().st_size}"


@pytest.fixture
def mounted(tmp_path):
    """Mount a folder (tmpfs or a read-only bind), unmounted afterwards; skipped where mounting is refused."""
    points = []

    def mount(*args: str) -> Path:
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        result = subprocess.run(["mount", *args, str(point)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"this machine refuses mounts: {result.stderr.strip()}")
        points.append(point)
        return point

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_full_disk_while_writing_the_cache_is_a_clear_message_and_nothing_half_written(mounted, monkeypatch):
    small = mounted("-t", "tmpfs", "-o", "size=64m", "tmpfs")  # the cache needs about 540 MB
    monkeypatch.setenv(loader.CACHE_ENV, str(small))
    with pytest.raises(ModelLoadError) as info:
        load_pretrained()
    assert "could not be written" in info.value.reason and "No space left" in info.value.reason
    assert "disk space" in info.value.fix and "Try again" in info.value.fix
    assert [p.name for p in small.iterdir() if not p.name.startswith(".")] == [], "a half-written cache was kept"


def test_a_read_only_cache_folder_fails_before_dequantizing(mounted, monkeypatch, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    read_only = mounted("--bind", "-o", "ro", str(source))
    if os.access(read_only, os.W_OK) and subprocess.run(["touch", str(read_only / "x")]).returncode == 0:
        pytest.skip("the bind mount is not read-only here")
    monkeypatch.setenv(loader.CACHE_ENV, str(read_only / "cache"))
    with pytest.raises(ModelLoadError) as info:
        load_pretrained()
    assert "cannot be written" in info.value.reason and "Read-only file system" in info.value.reason
    assert "LLMX_CACHE_DIR" in info.value.fix


_LOAD_IN_A_SERVER = """
import json, sys
from engine.loader import load_pretrained
lm = load_pretrained()
print(json.dumps({"source": lm.info.source, "top": lm.decode([int(lm.next_token_probs(lm.encode("The capital of France is")).argmax())])}))
"""


def test_two_servers_converting_into_one_cache_folder_take_turns_and_both_get_a_good_model(tmp_path):
    env = {**os.environ, loader.CACHE_ENV: str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop(loader.IGNORE_EMBEDDED_ENV, None)
    procs = [
        subprocess.Popen([sys.executable, "-c", _LOAD_IN_A_SERVER], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["top"] == " Paris"
    logs = "".join(err for _out, err in outputs)
    assert logs.count("llmx: converting") == 1, "both servers converted"
    assert cache_problem(_cache_dir(tmp_path)) is None
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
