"""Real browser, cold paths: the starts a newcomer, a Streamlit Cloud deployment and a broken machine take.

Every test starts its own server on folders it makes and removes (an empty ``LLMX_CACHE_DIR``, its own ``HF_HOME``),
so nothing an earlier run left on the machine is used: the embedded GGUF is converted here, in this run.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from engine.loader import cache_problem
from engine.registry import DEFAULT_KEY, get_spec
from tests.browser.conftest import ARTIFACTS, SCREENSHOTS, full_screenshot, new_page, start_server, stop_server
from tests.support.st_client import run_many_sync

pytestmark = pytest.mark.browser

PARIS = "Most likely next token: ' Paris'"
PROGRESS = "Preparing the language model"
CONVERSION_LINE = "llmx: converting"
#: A first start converts 98 MB of 4-bit weights on 2 shared cores: allow for a busy CI machine.
COLD_MS = 480_000


def _server_log(base: str) -> str:
    return (ARTIFACTS / f"server-{urlparse(base).port}.log").read_text(errors="replace")


def _error_boxes(pg) -> list[str]:
    boxes = pg.locator('[data-testid="stMain"] [data-testid="stAlertContentError"]')
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]


def _ready_seconds(pg) -> float:
    """The load time the sidebar card reports ("… ready (loaded in 0.4 s)")."""
    text = pg.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"ready \(loaded in")).first.inner_text()
    return float(re.search(r"loaded in ([\d.]+) s", text).group(1))


def _assert_home_works(rp) -> None:
    pg = rp.page
    pg.get_by_text(PARIS).first.wait_for(timeout=COLD_MS)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    assert not _error_boxes(pg), _error_boxes(pg)
    assert pg.locator('[data-testid="stException"]').count() == 0, "a traceback is on screen"
    assert not rp.outside_requests, rp.outside_requests


@pytest.fixture(scope="module")
def cold_cache(tmp_path_factory) -> Path:
    """An empty cache folder for this module; the first test fills it by converting the embedded GGUF."""
    folder = tmp_path_factory.mktemp("llmx-cold-cache")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _converted(cache: Path) -> Path:
    spec = get_spec(DEFAULT_KEY)
    from engine.loader import find_embedded_gguf

    gguf = find_embedded_gguf(spec)
    assert gguf is not None, "the embedded model package is not installed (make setup installs it)"
    return cache / f"{spec.key}-{gguf.stat().st_size}"


def _copy_cache(src: Path, dest: Path, link: bool = True) -> None:
    """Copy a converted cache; ``link`` hard-links the weights (fast) when the copy is never modified."""
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (os.link if link else shutil.copyfile)(f, dest / f.name)


def test_first_start_on_an_empty_cache_shows_progress_then_the_page_for_five_visitors(browser, cold_cache):
    """Five visitors open the app at the same moment on a fresh server with an empty cache: every one sees the
    load's progress, then the live prediction, with no error and no restart; the conversion ran once."""
    proc, base = start_server(extra_env={"LLMX_CACHE_DIR": str(cold_cache)})
    sessions = []
    try:
        for _ in range(5):
            rp = new_page(browser, base)
            rp.page.goto(base + "/")
            sessions.append(rp)
        for rp in sessions:
            rp.page.get_by_text(PROGRESS).first.wait_for(timeout=60_000)
        full_screenshot(sessions[0].page, SCREENSHOTS / "first-start-progress.png")
        for rp in sessions:
            _assert_home_works(rp)
        full_screenshot(sessions[0].page, SCREENSHOTS / "first-start-ready.png")
        assert _server_log(base).count(CONVERSION_LINE) == 1, "the embedded model was converted more than once"
        assert cache_problem(_converted(cold_cache)) is None
        assert not [p for p in cold_cache.iterdir() if ".tmp-" in p.name], "a half-written cache was left behind"
    finally:
        for rp in sessions:
            rp.page.context.close()
        stop_server(proc)

    # A second start on that cache loads it, quickly, without converting again.
    proc, base = start_server(extra_env={"LLMX_CACHE_DIR": str(cold_cache)})
    try:
        rp = new_page(browser, base)
        rp.page.goto(base + "/")
        rp.page.get_by_text(PARIS).first.wait_for(timeout=60_000)
        # The prediction came from the load's first look (the weights read before transformers is imported): the
        # sidebar still says the model is loading. Then the page is drawn again with the model.
        sidebar = rp.page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("The language model is loading").count() == 1, sidebar.inner_text()
        _assert_home_works(rp)
        assert _ready_seconds(rp.page) <= 3.0
        assert CONVERSION_LINE not in _server_log(base)
        rp.page.context.close()
    finally:
        stop_server(proc)


def test_hub_path_offline_loads_from_the_hugging_face_cache(browser, cold_cache, tmp_path):
    """As on Streamlit Community Cloud: no embedded package, the allow-listed hub id from a pre-filled HF cache."""
    converted = _converted(cold_cache)
    if cache_problem(converted) is not None:
        pytest.skip("needs the cache converted by the first-start test")
    hub_id = get_spec(DEFAULT_KEY).hub_id
    snapshot = tmp_path / "hf" / "hub" / f"models--{hub_id.replace('/', '--')}" / "snapshots" / ("0" * 40)
    _copy_cache(converted, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    proc, base = start_server(extra_env={
        "LLMX_IGNORE_EMBEDDED": "1", "HF_HOME": str(tmp_path / "hf"), "LLMX_CACHE_DIR": str(tmp_path / "unused"),
    })
    try:
        rp = new_page(browser, base)
        rp.page.goto(base + "/")
        _assert_home_works(rp)
        sidebar = rp.page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Model card").click()
        sidebar.get_by_text(f"Hugging Face hub: {hub_id}").wait_for(timeout=10_000)
        assert not (tmp_path / "unused").exists(), "the hub path must not convert anything"
        rp.page.context.close()
    finally:
        stop_server(proc)


def test_unwritable_cache_folder_shows_the_fix_then_try_again_recovers(browser, cold_cache, tmp_path):
    """The cache folder cannot be created (a file is in its way): a clear message and **Try again**; once the
    cause is gone, Try again loads the model in the same server and session."""
    converted = _converted(cold_cache)
    if cache_problem(converted) is not None:
        pytest.skip("needs the cache converted by the first-start test")
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the cache folder should be")
    cache = blocker / "cache"
    proc, base = start_server(extra_env={"LLMX_CACHE_DIR": str(cache)})
    try:
        rp = new_page(browser, base)
        rp.page.goto(base + "/")
        rp.page.get_by_text("No language model could be loaded").first.wait_for(timeout=120_000)
        message = " ".join(_error_boxes(rp.page))
        assert "cannot be written" in message and str(cache) in message and "LLMX_CACHE_DIR" in message
        assert rp.page.locator('[data-testid="stException"]').count() == 0
        full_screenshot(rp.page, SCREENSHOTS / "first-start-unwritable.png")
        # Fix the cause: the folder becomes a real folder (here with a ready cache, so the retry is quick).
        blocker.unlink()
        _copy_cache(converted, cache / converted.name)
        rp.page.get_by_role("button", name="Try again").click()
        _assert_home_works(rp)
        rp.page.context.close()
    finally:
        stop_server(proc)


def test_a_truncated_cache_is_detected_and_rebuilt_not_loaded(browser, cold_cache, tmp_path):
    converted = _converted(cold_cache)
    if cache_problem(converted) is not None:
        pytest.skip("needs the cache converted by the first-start test")
    cache = tmp_path / "cache"
    damaged = cache / converted.name
    _copy_cache(converted, damaged, link=False)
    weights = damaged / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    assert cache_problem(damaged) is not None
    proc, base = start_server(extra_env={"LLMX_CACHE_DIR": str(cache)})
    try:
        rp = new_page(browser, base)
        started = time.monotonic()
        rp.page.goto(base + "/")
        _assert_home_works(rp)
        log = _server_log(base)
        assert "rebuilding damaged cache" in log and log.count(CONVERSION_LINE) == 1
        assert cache_problem(damaged) is None, "the rebuilt cache is whole"
        assert time.monotonic() - started < COLD_MS / 1000
        rp.page.context.close()
    finally:
        stop_server(proc)


def test_make_run_loads_the_model_before_the_first_visit(browser, cold_cache, tmp_path):
    """``make run`` (``scripts/serve.py``) starts the load with the process: the model is ready before anyone opens
    the app, and the first visitor gets the prediction without the load's progress. Plain ``streamlit run`` (Cloud)
    loads on the first visit only."""
    from scripts.serve import READY_LINE

    converted = _converted(cold_cache)
    if cache_problem(converted) is not None:
        pytest.skip("needs the cache converted by the first-start test")
    cache = tmp_path / "cache"
    _copy_cache(converted, cache / converted.name)
    for preload in (True, False):
        proc, base = start_server(extra_env={"LLMX_CACHE_DIR": str(cache)}, preload=preload)
        try:
            deadline = time.monotonic() + (120 if preload else 10)  # plain: nothing loads, however long we wait
            while READY_LINE not in _server_log(base) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert (READY_LINE in _server_log(base)) == preload  # nobody has visited yet
            if not preload:
                continue
            rp = new_page(browser, base)
            rp.page.goto(base + "/")
            _assert_home_works(rp)
            assert rp.page.get_by_text(PROGRESS).count() == 0  # no load left to wait for
            rp.page.context.close()
        finally:
            stop_server(proc)


def _cache_misses(base: str) -> int:
    """Cached computations the server has run so far (Streamlit's own metrics: lookups that missed)."""
    import urllib.request

    with urllib.request.urlopen(base + "/_stcore/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("cache_lookups_total") and 'result="miss"' in line)


def test_make_run_computes_every_pages_default_example_before_the_first_visitor():
    """``make run`` opens every page once after the load (``scripts/serve.py::warm_pages``): the first visitor of any
    page then computes nothing (no cache misses), and every page's warm-up run ended without an error."""
    from components.frame import available_pages
    from scripts.bench_browser import wait_warmed
    from scripts.serve import WARM_LINE, warm_pages

    proc, base = start_server(preload=True, warm=True)
    try:
        wait_warmed(base, timeout=300)
        n = len(available_pages())
        assert f"{WARM_LINE} ({n} of {n} pages" in _server_log(base)
        before = _cache_misses(base)
        assert before > n  # the pages' computations ran
        stems = ["attention", "rlhf", "embeddings", "ml_to_llm", "pretraining", "evaluation", "diffusion", "home"]
        results = run_many_sync(base, stems, timeout=300)
        assert all(r.ok for r in results), [r.exceptions for r in results]
        assert _cache_misses(base) == before  # a first visit now only reads what the warm-up computed
        assert warm_pages(["no_such_page"], base=base, timeout=60) == ["no_such_page"]  # a failure is reported
    finally:
        stop_server(proc)
