"""The benchmark's llama.cpp comparison: always in a child process, and it says what it compared against or why not."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.registry import DEFAULT_KEY, get_spec
from scripts.bench import measure_llama_cpp

LM = SimpleNamespace(spec=get_spec(DEFAULT_KEY))


def _fake_python(tmp_path: Path, body: str) -> Path:
    """An executable standing in for the llama.cpp virtualenv's Python (it ignores the script it is given)."""
    exe = tmp_path / "python"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


@pytest.fixture
def llama_cpp_import_trap(tmp_path, monkeypatch):
    """A ``llama_cpp`` module that records being imported into this (the benchmark's) process."""
    pkg = tmp_path / "trap" / "llama_cpp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import builtins\nbuiltins._llama_cpp_imported_here = True\n"
                                     "class Llama:\n    def __init__(self, *a, **k):\n        raise RuntimeError\n")
    monkeypatch.syspath_prepend(str(tmp_path / "trap"))
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    yield
    import builtins

    assert not getattr(builtins, "_llama_cpp_imported_here", False), "llama.cpp was loaded next to torch"


def test_without_a_build_the_figure_is_null_and_says_how_to_build_one(tmp_path, llama_cpp_import_trap):
    out = measure_llama_cpp(LM, python=tmp_path / "missing" / "python")
    assert out == {"llama_cpp_tok_s": None, "llama_cpp_build": "not built (make llama-cpp)"}


def test_the_child_processes_figure_and_build_are_reported(tmp_path, llama_cpp_import_trap):
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 0 | OPENMP = 1 | "
    exe = _fake_python(tmp_path, "echo 'loading…' ; echo '{\"tok_s\": 91.5, \"tok_s_runs\": [90.1, 91.5], "
                                 f"\"version\": \"0.3.36\", \"system_info\": \"{info}\", \"threads\": 2}}'")
    out = measure_llama_cpp(LM, python=exe)
    assert out["llama_cpp_tok_s"] == 91.5
    assert out["llama_cpp_build"] == "llama-cpp-python 0.3.36, 2 threads, SSE3 AVX AVX2 AVX512 OPENMP"


def test_a_crashing_build_is_reported_not_raised(tmp_path, llama_cpp_import_trap):
    exe = _fake_python(tmp_path, "echo 'Segmentation fault in eval' >&2; exit 139")
    out = measure_llama_cpp(LM, python=exe)
    assert out == {"llama_cpp_tok_s": None, "llama_cpp_build": "failed: Segmentation fault in eval"}
