"""The loader's cold paths without a real conversion: cache checks, the hub switch, one shared load, retries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine import loader
from engine.loader import (
    IGNORE_EMBEDDED_ENV,
    ModelLoadError,
    ModelLoads,
    cache_problem,
    resolve_source,
    safetensors_problem,
)
from engine.registry import DEFAULT_KEY, get_spec


def _write_cache(folder: Path) -> Path:
    folder.mkdir(parents=True)
    save_file({"a": torch.zeros(64, 64), "b": torch.ones(3)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    return folder


def test_a_whole_safetensors_file_passes_and_a_truncated_one_is_caught(tmp_path):
    cache = _write_cache(tmp_path / "c")
    weights = cache / "model.safetensors"
    assert safetensors_problem(weights) is None
    assert cache_problem(cache) is None
    size = weights.stat().st_size
    with weights.open("r+b") as f:
        f.truncate(size - 100)
    assert "cut short" in safetensors_problem(weights)
    assert cache_problem(cache).startswith("model.safetensors")
    weights.write_bytes(b"\x00" * 3)
    assert safetensors_problem(weights) is not None


def test_a_cache_with_a_missing_or_broken_file_is_not_complete(tmp_path):
    assert cache_problem(tmp_path / "nothing") == "not built yet"
    cache = _write_cache(tmp_path / "c")
    (cache / "tokenizer.json").write_text("{not json")
    assert cache_problem(cache) == "tokenizer.json cannot be read"
    (cache / "tokenizer.json").unlink()
    assert cache_problem(cache) == "tokenizer.json is missing"


def test_a_damaged_cache_resolves_to_a_rebuild_not_a_load(tmp_path, monkeypatch):
    monkeypatch.setenv(loader.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(IGNORE_EMBEDDED_ENV, raising=False)
    spec = get_spec(DEFAULT_KEY)
    gguf = loader.find_embedded_gguf(spec)
    if gguf is None:
        pytest.skip("the embedded model package is not installed")
    cache = _write_cache(loader._cache_dir_for(spec, gguf))
    assert resolve_source()[1].kind == "cache"
    with (cache / "model.safetensors").open("r+b") as f:
        f.truncate(200)
    source = resolve_source()[1]
    assert source.kind == "gguf" and source.cache_dir == str(cache)


def test_the_environment_switch_takes_the_hub_path(monkeypatch):
    monkeypatch.setenv(IGNORE_EMBEDDED_ENV, "1")
    spec, source = resolve_source()
    assert source.kind == "hub" and source.location == spec.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    monkeypatch.setenv(IGNORE_EMBEDDED_ENV, "0")
    assert resolve_source()[1].kind in ("cache", "gguf", "hub")  # "0" does not hide the package


def test_an_unwritable_cache_folder_fails_fast_with_the_folder_and_the_fix(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ModelLoadError) as info:
        loader._writable_folder(blocker / "cache")
    assert str(blocker / "cache") in info.value.reason
    assert "LLMX_CACHE_DIR" in info.value.fix and "Try again" in info.value.fix


def test_five_sessions_at_once_share_one_load():
    calls = []

    def slow_load(key, progress):
        calls.append(key)
        progress(0.5, "halfway")
        time.sleep(0.3)
        return f"model:{key}"

    loads = ModelLoads(slow_load)
    jobs, barrier = [], threading.Barrier(5)

    def visit():
        barrier.wait()
        jobs.append(loads.start(None))

    threads = [threading.Thread(target=visit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(j) for j in jobs}) == 1
    assert [j.model(5) for j in jobs] == [f"model:{DEFAULT_KEY}"] * 5
    assert calls == [DEFAULT_KEY]
    assert jobs[0].step == 0.5 and jobs[0].message == "halfway" and jobs[0].done and jobs[0].fraction == 1.0


def test_a_failed_load_is_not_remembered_once_someone_tries_again():
    outcomes = [ModelLoadError("disk full", "free space"), RuntimeError("boom"), "model"]

    def flaky(key, progress):
        result = outcomes.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    loads = ModelLoads(flaky)
    first = loads.start()
    with pytest.raises(ModelLoadError, match="disk full"):
        first.model(5)
    assert loads.start() is first  # a rerun does not restart a failure by itself
    second = loads.retry()
    assert second is not first and second.generation > first.generation
    with pytest.raises(ModelLoadError) as info:
        second.model(5)
    assert "RuntimeError: boom" in info.value.reason and "Try again" in info.value.fix
    third = loads.retry()
    assert third.model(5) == "model"
    assert loads.retry() is third  # a finished load is kept: retry never reloads a working model
