"""Benchmark figures as a visitor meets them: the system Chromium against a real ``streamlit run``.

Called by ``scripts/bench.py`` (``make bench``); every figure is measured in this run on this machine:

- ``page_gen_tok_s`` / ``page_first_token_ms``: Next-token page, **Generate** with 120 new tokens (fast 4-bit path):
  tokens on screen per second from the click to the last token drawn, and the time from the click to the first
  token drawn. ``engine_same_request_tok_s`` is the same request straight through the engine, for comparison.
  ``page_gen_browser_cpu_s`` is the CPU Chromium spent drawing meanwhile (it shares the server's cores here), and
  ``page_gen_remote_tok_s`` the same press from a websocket client, as when the browser is on another machine.
- ``chat_first_token_ms`` / ``chat_tok_s``: one chat turn on the Prompts page, the same way.
- ``browser_first_content_s_max`` / ``browser_settled_s_max`` / ``browser_revisit_s_max``: every page opened in a
  fresh tab on a server started as ``make run`` starts it (the model loaded and every page's default example computed
  at start, ``warm_up_s``; before 2026-12-07 on a plain ``streamlit run`` whose caches were empty, which
  ``server_page_run_s_max`` still measures): time until the lesson's first content is visible (title and first paragraph), until the page stopped
  running, and when opened again from the sidebar in the same session (per page in ``browser_pages``; the revisit's
  clock starts once the browser is idle: before 2026-12-07 it started while the page just left could still be
  drawing, and the click waited for that).
  ``browser_filled_s_max``: until no element is a loading placeholder any more (a fresh browser fetches the chart
  library's code on its first chart). Before 2026-12-07 ``first_content`` also waited for that, so it read close to
  the settled time although the title and first paragraph were on screen after about 1.1-1.5 s.
  ``settled`` ends with the server's own end-of-run message (before 2026-12-07: when no status widget showed, which
  Streamlit draws only some hundred milliseconds into a run, so a long run could be timed as settled at once).
  ``browser_cpu_s`` (per page): the CPU Chromium spent on that first visit, on the server's two cores.
- ``server_page_run_s_max``: every page's first run on a fresh server from a websocket client (no browser drawing on
  these cores): the whole page as a browser on another machine receives it (per page in ``server_page_runs``).
- ``classroom60_p95_ms``: 60 sessions open the Next-token page's default example at the same second.
- ``mixed_light_p95_ms``: 60 sessions at once, 10 of them generating while 50 move a view-only slider.
- ``start_to_prediction_warm_s`` / ``start_to_prediction_cold_s``: a fresh server process started as ``make run``
  does (``scripts/serve.py``: the model loads from the process's start) to the home page's first live prediction in
  the browser, with the warm cache and with an empty one (first start). Before 2026-12-07 plain ``streamlit run``,
  where the first visit starts the load: ``start_to_prediction_warm_plain_s`` is that start, for comparison.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import tempfile
import time
from urllib.parse import urlencode

from tests.browser.conftest import CHROMIUM_ARGS, start_server, stop_server
from tests.support.st_client import LiveSession, run_many_sync, run_sync

#: The Generate request timed in the page and in the engine (a story opening: the model does not stop early).
GEN_PROMPT = "Once upon a time, in a small village by the sea,"
#: JavaScript: the page has finished running (Streamlit's "Running…" status widget is gone).
_SETTLED_JS = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
#: JavaScript: the lesson's first content is visible (the title and at least one paragraph of the page body).
_CONTENT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return false;
  const h1 = main.querySelector('h1');
  const p = main.querySelector('[data-testid="stMarkdownContainer"] p');
  return !!(h1 && h1.offsetParent && p && p.offsetParent);
}"""
#: JavaScript: no element of the page is still a loading placeholder (Streamlit draws a skeleton while an element's
#: code, e.g. the chart library, is fetched by a new browser, or while a delayed section computes).
_FILLED_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  return !!(main && main.querySelector('h1') && !main.querySelector('[data-testid="stSkeleton"]'));
}"""
#: JavaScript: resolves once the browser's main thread is idle (at most 5 s).
_IDLE_JS = "() => new Promise(r => requestIdleCallback(() => r(true), {timeout: 5000}))"
#: JavaScript: the highlighted continuation on the Next-token page has at least ``n`` characters.
_GEN_TEXT_JS = """(n) => {
  const spans = [...document.querySelectorAll('span')].filter(s => s.style && s.style.background.includes('255, 232, 204'));
  return spans.length && spans[spans.length - 1].textContent.length >= n;
}"""


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` by linear interpolation (NaN for none); ``scripts/bench.py`` uses it too."""
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _browser(p):
    return p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True)


class RunWatcher:
    """Counts the ends of script runs a page's websocket receives (``ForwardMsg.script_finished``).

    Why: Streamlit shows its "Running…" status widget only some hundred milliseconds after a run starts, so "no
    status widget" alone can read as settled while the page is still computing. Before 2026-12-07 the settled figure
    waited 150 ms and then for the widget to be gone; a page whose run outlasted that but whose widget had not
    appeared yet could be timed as settled at once (seen: the Context window page "settled" at 1.4 s while its run went
    on to 9.5 s). A run's end is now the server's own message.
    """

    _RERUN = 2  # ForwardMsg.FINISHED_EARLY_FOR_RERUN: another run follows at once (e.g. the frame taking over a link)

    def __init__(self, page) -> None:
        self.finished = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(bytes(payload))
        except Exception:  # noqa: BLE001 - not a ForwardMsg: not ours to count
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished != self._RERUN:
            self.finished += 1


def _watch(page) -> RunWatcher:
    """A page's :class:`RunWatcher`, attached before its first navigation."""
    watcher = getattr(page, "_llmx_runs", None)
    if watcher is None:
        watcher = RunWatcher(page)
        page._llmx_runs = watcher
    return watcher


def _wait_settled(page, timeout_s: float = 120, since: int | None = None) -> None:
    """Until a run that ended after ``since`` runs had ended (the server's message), then no status widget.

    Without ``since`` (older callers): wait briefly for a run to start, then for the status widget to be gone.
    """
    if since is not None:
        watcher = _watch(page)
        page.wait_for_function("() => true")  # let Playwright dispatch pending websocket events
        deadline = time.perf_counter() + timeout_s
        while watcher.finished <= since:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no script run ended within {timeout_s} s")
            page.wait_for_timeout(20)
    else:
        page.wait_for_timeout(150)  # let a rerun start before asking whether it ended
    page.wait_for_function(_SETTLED_JS, timeout=timeout_s * 1000, polling=50)


def measure_page_generation(base: str, browser) -> dict:
    """Generate 120 tokens on the Next-token page as a learner does; the page's own figures and the wall clock."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _watch(page)
    out: dict = {}
    try:
        page.goto(f"{base}/next_token?{urlencode({'nt_len': 120, 'nt_temp': 0.0, 'prompt': GEN_PROMPT})}",
                  wait_until="domcontentloaded")
        page.get_by_role("button", name="Generate").wait_for(timeout=180_000)
        _wait_settled(page, since=0)
        button = page.get_by_role("button", name="Generate")
        cpu0 = _browser_cpu_s()
        t_click = time.perf_counter()
        button.click()
        page.wait_for_function(_GEN_TEXT_JS, arg=1, timeout=120_000, polling="raf")
        t_first = time.perf_counter()
        caption = page.get_by_text(re.compile(r"tokens/s on this CPU")).first
        caption.wait_for(timeout=180_000)
        t_done = time.perf_counter()
        browser_cpu = _browser_cpu_s() - cpu0
        text = caption.inner_text()
        tokens = int(re.search(r"(\d+) tokens in", text).group(1))
        shown = float(re.search(r"([\d.]+) tokens/s", text).group(1))
        out.update(
            page_first_token_ms=(t_first - t_click) * 1000,
            page_gen_tokens=tokens,
            page_gen_tok_s=tokens / (t_done - t_click),
            page_reported_tok_s=shown,
            # Chromium runs on the same two cores as the server here: the CPU it spent drawing during the generation
            page_gen_browser_cpu_s=browser_cpu,
        )
    finally:
        page.close()
    return out


def _browser_cpu_s() -> float:
    """CPU seconds used so far by the Chromium processes this benchmark started (children of this process)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name():
                cpu = child.cpu_times()
                total += cpu.user + cpu.system
        except psutil.Error:
            continue
    return total


def measure_remote_generation(base: str, runs: int = 3) -> dict:
    """The same **Generate** as :func:`measure_page_generation`, driven by a websocket client instead of Chromium:
    the page's tokens/s when the browser that draws them is on another machine (a classroom), from the press to the
    last message of the run."""

    async def one():
        async with LiveSession(base, timeout=300) as s:
            await s.open("next_token", urlencode({"nt_len": 120, "nt_temp": 0.0, "prompt": GEN_PROMPT}))
            rates = []
            for _ in range(runs):
                r = await s.act(press="nt_generate")
                if not r.ok or r.exceptions:
                    return {"page_gen_remote_error": "; ".join(map(str, r.exceptions))[:200] or "no answer"}
                rates.append(120 / r.seconds)
            return {"page_gen_remote_tok_s": statistics.median(rates)}

    return run_sync(one())


def measure_chat_turn(base: str, browser) -> dict:
    """One chat turn on the Prompts page: time to the first reply text and reply tokens per second on screen."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    runs = _watch(page)
    try:
        page.goto(f"{base}/prompts", wait_until="domcontentloaded")
        box = page.locator('[data-testid="stChatInput"] textarea').first
        box.wait_for(timeout=180_000)
        _wait_settled(page, since=0)
        before = page.locator('[data-testid="stChatMessage"]').count()
        done = runs.finished
        t0 = time.perf_counter()
        box.fill("Explain in two sentences what a language model does.")
        box.press("Enter")
        reply = page.locator('[data-testid="stChatMessage"]').nth(before + 1)
        reply.wait_for(timeout=120_000)
        page.wait_for_function(
            "(n) => { const m = document.querySelectorAll('[data-testid=\"stChatMessage\"]'); "
            "return m.length > n && m[n].innerText.trim().length > 0; }", arg=before + 1, timeout=120_000,
            polling="raf")
        t_first = time.perf_counter()
        _wait_settled(page, 180, since=done)
        t_done = time.perf_counter()
        return {"chat_first_token_ms": (t_first - t0) * 1000, "chat_turn_s": t_done - t0}
    except Exception as exc:  # noqa: BLE001 - a figure that could not be taken is reported, not fatal
        return {"chat_error": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        page.close()


def measure_page_visits(base: str, browser, stems: list[str]) -> dict:
    """Every page in a fresh tab (first visit) and again from the sidebar in the same session (revisit)."""
    per_page: dict[str, dict] = {}
    for stem in stems:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        runs = _watch(page)
        figures: dict = {}
        try:
            cpu0 = _browser_cpu_s()
            t0 = time.perf_counter()
            page.goto(f"{base}/{'' if stem == 'home' else stem}", wait_until="commit")
            page.wait_for_function(_CONTENT_JS, timeout=300_000, polling=50)
            figures["first_content_s"] = time.perf_counter() - t0
            page.wait_for_function(_FILLED_JS, timeout=300_000, polling=50)
            figures["filled_s"] = time.perf_counter() - t0
            _wait_settled(page, 300, since=0)
            figures["settled_s"] = time.perf_counter() - t0
            # Chromium shares the server's two cores here: what it spent on this first visit (a fresh browser also
            # loads and compiles the app's code, then draws every chart).
            figures["browser_cpu_s"] = _browser_cpu_s() - cpu0
            # Revisit: another page, then this one again through the sidebar (same session, caches warm).
            other = "home" if stem != "home" else "tokenization"
            done = runs.finished
            page.goto(f"{base}/{'' if other == 'home' else other}", wait_until="commit")
            page.wait_for_function(_CONTENT_JS, timeout=300_000, polling=50)
            _wait_settled(page, 300, since=done)
            link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{"" if stem == "home" else stem}"]').first
            if link.count() == 0 or not link.is_visible():
                more = page.get_by_text(re.compile(r"View \d+ more"))
                if more.count():
                    more.first.click()
            # Start the clock with the browser idle: the page just left may still be drawing (its charts), and a
            # click then waits for it (seen: 0.3-1.0 s before the click reached the server). That belongs to the other
            # page, not to this revisit.
            page.evaluate(_IDLE_JS)
            done = runs.finished
            t1 = time.perf_counter()
            link.click()
            page.wait_for_function(_CONTENT_JS, timeout=300_000, polling=50)
            _wait_settled(page, 300, since=done)
            figures["revisit_s"] = time.perf_counter() - t1
        except Exception as exc:  # noqa: BLE001
            figures["error"] = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            ctx.close()
        per_page[stem] = figures

    def worst(name: str) -> float | None:
        values = [f[name] for f in per_page.values() if name in f]
        return max(values) if values else None

    return {
        "browser_first_content_s_max": worst("first_content_s"),
        "browser_filled_s_max": worst("filled_s"),
        "browser_settled_s_max": worst("settled_s"),
        "browser_revisit_s_max": worst("revisit_s"),
        "browser_pages": per_page,
    }


def measure_server_page_runs(base: str, stems: list[str]) -> dict:
    """Every page's first run on a fresh server, from a websocket client (no browser drawing on these cores): the
    whole page as the server delivers it to a browser on another machine, e.g. a classroom's."""
    per_page = {}
    for stem in stems:
        result = run_many_sync(base, ["" if stem == "home" else stem], timeout=300)[0]
        per_page[stem] = result.seconds if result.ok else None
    values = [v for v in per_page.values() if v is not None]
    return {"server_page_run_s_max": max(values) if values else None, "server_page_runs": per_page}


def measure_classroom(base: str, sessions: int = 60) -> dict:
    """``sessions`` visitors open the Next-token page's default example at the same second."""
    results = run_many_sync(base, ["next_token"] * sessions, timeout=300)
    times = [r.seconds * 1000 for r in results]
    return {
        f"classroom{sessions}_p50_ms": percentile(times, 0.5),
        f"classroom{sessions}_p95_ms": percentile(times, 0.95),
        f"classroom{sessions}_errors": sum(1 for r in results if not r.ok),
    }


def measure_mixed_class(base: str, heavy: int = 10, light: int = 50) -> dict:
    """``heavy`` sessions generate 60 tokens while ``light`` sessions move a view-only slider, all at once."""

    async def one(kind: int, i: int) -> tuple[str, float, bool]:
        async with LiveSession(base, timeout=300) as s:
            first = await s.open("next_token")
            if not first.ok:
                return ("open", first.seconds, False)
            if kind:
                r = await s.act(set={"nt_len": 60}, press="nt_generate")
                return ("heavy", r.seconds, r.ok and not r.exceptions)
            r = await s.act(set={"nt_k": 5 + i % 15})
            return ("light", r.seconds, r.ok and not r.exceptions)

    async def run():
        return await asyncio.gather(*([one(1, i) for i in range(heavy)] + [one(0, i) for i in range(light)]))

    results = run_sync(run())
    light_ms = [s * 1000 for kind, s, _ in results if kind == "light"]
    heavy_ms = [s * 1000 for kind, s, _ in results if kind == "heavy"]
    return {
        "mixed_light_p95_ms": percentile(light_ms, 0.95),
        "mixed_heavy_p50_ms": statistics.median(heavy_ms) if heavy_ms else None,
        "mixed_errors": sum(1 for _, _, ok in results if not ok),
    }


def wait_warmed(base: str, timeout: float = 600) -> float | None:
    """Until the ``scripts/serve.py`` server at ``base`` has opened every page once; the warm-up's seconds (its log)."""
    from urllib.parse import urlparse

    from scripts.serve import WARM_LINE
    from tests.browser.conftest import ARTIFACTS

    log = ARTIFACTS / f"server-{urlparse(base).port}.log"
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.search(re.escape(WARM_LINE) + r" \(\d+ of \d+ pages, ([\d.]+) s\)", text)
        if found:
            return float(found.group(1))
        time.sleep(0.5)
    raise TimeoutError(f"the server did not finish warming its pages in {timeout} s")


def measure_start_to_prediction(browser, cache_dir: str | None = None, preload: bool = True) -> float:
    """Seconds from starting a fresh server process (as ``make run`` does, or plain ``streamlit run`` without
    ``preload``) to the home page's first live prediction in the browser."""
    t0 = time.perf_counter()
    proc, base = start_server(extra_env={"LLMX_CACHE_DIR": cache_dir} if cache_dir else None, preload=preload,
                              warm=preload)  # exactly as `make run`: the pages warm up after the load (home first)
    try:
        page = browser.new_page()
        page.goto(base, wait_until="commit")
        page.get_by_text(re.compile(r"Most likely next token: ' Paris'")).first.wait_for(timeout=300_000)
        seconds = time.perf_counter() - t0
        page.close()
        return seconds
    finally:
        stop_server(proc)


def measure_all(stems: list[str]) -> dict:
    """Every browser figure of this module, each against its own fresh server where it matters."""
    from playwright.sync_api import sync_playwright

    results: dict = {}
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            results["start_to_prediction_warm_s"] = measure_start_to_prediction(browser)
            results["start_to_prediction_warm_plain_s"] = measure_start_to_prediction(browser, preload=False)
            with tempfile.TemporaryDirectory(prefix="llmx-bench-cache-") as empty:
                results["start_to_prediction_cold_s"] = measure_start_to_prediction(browser, empty)
            proc, base = start_server()
            try:
                run_many_sync(base, [""], timeout=300)  # the model load is not part of the page figures
                results.update(measure_server_page_runs(base, stems))
            finally:
                stop_server(proc)
            # As `make run` serves a class: the model loaded and every page's default example computed at start
            # (scripts/serve.py); the cold-cache compute of each page is server_page_run_s_max above.
            proc, base = start_server(preload=True, warm=True)
            try:
                results["warm_up_s"] = wait_warmed(base)
                results.update(measure_page_visits(base, browser, stems))
                results.update(measure_page_generation(base, browser))
                results.update(measure_remote_generation(base))
                results.update(measure_chat_turn(base, browser))
                results.update(measure_classroom(base, 60))
                results.update(measure_mixed_class(base))
            finally:
                stop_server(proc)
        finally:
            browser.close()
    return results
