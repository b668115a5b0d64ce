"""AppTest: the frame (navigation, sidebar model card, guided path) and the home page."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from components.frame import PAGES
from tests.conftest import app_page, assert_no_exception, chart_specs


def test_every_registered_page_has_a_file_and_matching_url():
    for page in PAGES:
        assert page.path.is_file(), f"missing page file {page.path}"
        assert page.path.stem == page.stem  # URL path == file name avoids the "Page not found" modal


ROOT = Path(__file__).resolve().parent.parent


def test_the_entry_reaches_st_navigation_before_importing_the_engine():
    """Until a new process's first run reaches ``st.navigation``, Streamlit shows its own list of the ``pages/``
    folder in the sidebar. The entry imports only Streamlit, the standard library and ``components.frame`` before
    that call, and ``components.frame`` pulls in nothing heavy (before: torch and the engine, 4.6 s here; Streamlit itself imports plotly)."""
    tree = ast.parse((ROOT / "streamlit_app.py").read_text())
    before = []
    for node in tree.body:
        if "st.navigation(" in ast.unparse(node):
            break
        if isinstance(node, ast.Import):
            before += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            before.append(node.module)
    else:
        pytest.fail("streamlit_app.py never calls st.navigation at its top level")
    assert {m.split(".")[0] for m in before} <= {"__future__", "pathlib", "streamlit", "components"}, before
    assert [m for m in before if m.startswith("components")] == ["components.frame"], before
    probe = ("import sys; import components.frame; "
             "print(sorted(m for m in ('torch', 'transformers', 'engine') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_home_shows_live_paris_prediction_and_map():
    at = app_page("home")
    assert_no_exception(at)
    specs = chart_specs(at)
    bars = specs[0]["data"][0]
    assert bars["y"][0] == "' Paris'"
    assert 0.6 < bars["x"][0] < 0.9
    assert bars["y"][-1] == "(all other tokens)"
    assert abs(sum(bars["x"]) - 1.0) < 1e-4  # top-10 plus the rest is the whole distribution
    assert any(s["data"][0]["type"] == "icicle" for s in specs)
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert "49,152" in card and "30" in card and "9 query, 3 key/value" in card


def test_home_prompt_change_updates_prediction():
    at = app_page("home")
    at.text_area(key="prompt").set_value("One, two, three, four,").run()
    assert_no_exception(at)
    bars = chart_specs(at)[0]["data"][0]
    assert bars["y"][0] == "' five'"


def test_home_empty_and_hostile_prompts():
    at = app_page("home")
    at.text_area(key="prompt").set_value("   ").run()
    assert_no_exception(at)
    assert any("Type a prompt" in i.value for i in at.info)
    at.text_area(key="prompt").set_value("<script>alert(1)</script>\x00 😀").run()
    assert_no_exception(at)
    assert any("Control characters" in c.value for c in at.caption)


def test_prompt_from_url_seeds_the_page():
    at = app_page("home", query={"prompt": "The capital of Italy is"})
    assert_no_exception(at)
    assert at.text_area(key="prompt").value == "The capital of Italy is"
    assert chart_specs(at)[0]["data"][0]["y"][0] == "' Rome'"


def test_unknown_model_in_url_falls_back_to_default():
    at = app_page("home", query={"model": "../../etc/passwd"})
    assert_no_exception(at)
    assert at.selectbox(key="model").value == "SmolLM2-135M-Instruct"


def test_unloadable_model_shows_one_clear_message(monkeypatch):
    """An allow-listed hub model with the hub unreachable: a readable error and a fix, no traceback."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = app_page("home", query={"model": "SmolLM2-360M-Instruct"})
    assert_no_exception(at)
    main_errors = [e.value for e in at.main.error]
    assert any("No language model could be loaded" in e and "not embedded" in e and "SmolLM2-135M-Instruct" in e
               for e in main_errors)
    assert not chart_specs(at)  # nothing pretends to be model output
    # The sidebar was drawn while the load still ran: it must not go on saying "loading" next to the error.
    sidebar = [c.value for c in at.sidebar.caption]
    assert not any("is loading" in c for c in sidebar), sidebar
    assert any("Model not loaded" in c and "SmolLM2-360M-Instruct" in c for c in sidebar), sidebar


def test_a_load_that_ends_between_the_sidebar_and_the_page_still_redraws_the_sidebar(monkeypatch):
    """The sidebar card saw the load running; by the time the page asked, it had failed (a load that fails at once
    can end between the two: CI hit it). The frame is drawn again, so the sidebar gives the reason, not "loading"."""
    import components.model as model
    from engine.loader import ModelLoadError

    class Job:  # a load that is running when the sidebar looks and has failed when the page looks
        finished, generation, result, first_look = False, 1, None, None
        error = RuntimeError("offline")
        load_error = ModelLoadError("The hub cannot be reached.", "Pick the embedded model.")

        @property
        def done(self) -> bool:
            return self.finished

    job = Job()

    def peek(key):  # require_lm's look, after the sidebar's
        job.finished = True
        return job

    monkeypatch.setattr(model, "_session_job", lambda key: job)
    monkeypatch.setattr(model.LOADS, "peek", peek)
    at = app_page("home")
    assert_no_exception(at)
    assert any("No language model could be loaded" in e.value for e in at.main.error)
    sidebar = [c.value for c in at.sidebar.caption]
    assert not any("is loading" in c for c in sidebar), sidebar
    assert any("Model not loaded: The hub cannot be reached." in c for c in sidebar), sidebar


def test_a_failed_load_is_not_remembered_try_again_recovers(monkeypatch, real_lm):
    """The hub model fails offline; once the cause is gone, **Try again** loads it: no server restart."""
    from engine.loader import LOADS

    key = "smollm2-360m-instruct"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    LOADS._jobs.pop(key, None)
    try:
        at = app_page("home", query={"model": "SmolLM2-360M-Instruct"})
        assert any("No language model could be loaded" in e.value for e in at.main.error)
        assert "Try again" in at.main.error[0].value
        failed = LOADS.peek(key)
        assert failed.done and failed.error is not None
        at.run()  # a rerun of the same session does not hammer the hub again
        assert LOADS.peek(key) is failed
        # The cause goes away (here: a loader that succeeds); the same session presses Try again.
        monkeypatch.setattr(LOADS, "_loader", lambda _key, _progress: real_lm)
        at.button(key="model_retry").click().run()
        assert_no_exception(at)
        assert not at.main.error
        assert LOADS.peek(key) is not failed and LOADS.peek(key).result is real_lm
        assert chart_specs(at)[0]["data"][0]["y"][0] == "' Paris'"
    finally:
        LOADS._jobs.pop(key, None)


def test_invalid_link_values_fall_back_with_a_notice():
    at = app_page("temperature", query={"tmp_t": "NaN", "prompt": "The capital of Spain is"})
    assert_no_exception(at)
    assert at.slider(key="tmp_t").value == 1.0  # the default
    assert at.text_area(key="prompt").value == "The capital of Spain is"  # the valid part of the link is kept
    toasts = [t.value for t in at.toast]
    assert len(toasts) == 1 and "tmp_t" in toasts[0] and "prompt" not in toasts[0]


def test_valid_link_gives_no_notice():
    at = app_page("temperature", query={"tmp_t": "1.5", "prompt": "Hello"})
    assert at.slider(key="tmp_t").value == 1.5
    assert not at.toast


def test_model_card_says_which_weights_and_why_the_difference_is_not_measured(real_lm):
    from engine.weights import hub_weights_path, weights_lineage

    at = app_page("home")
    assert_no_exception(at)
    card = " ".join(m.value for m in at.sidebar.markdown)
    lines = weights_lineage(real_lm.source.kind, real_lm.spec.hub_id, real_lm.spec.gguf_file,
                            real_lm.spec.gguf_package, real_lm.info.dtype)
    assert all(line in card for line in lines)
    assert "4-bit" in card and "Q4_1" in card and "unpacked to float32" in card
    captions = " ".join(c.value for c in at.sidebar.caption)
    if hub_weights_path(real_lm.spec.hub_id) is None:  # offline machine: the original weights are not here
        assert "not measured here" in captions and "never downloads" in captions
    else:
        assert at.sidebar.button(key="card_measure") is not None


def test_a_chart_is_styled_once_per_content_and_shared():
    """``show_chart`` styles a figure once per distinct content (any session, any rerun) and reuses that figure."""
    from components import display
    from components.figures.bars import probability_bars

    def bars(p_first: float):
        return probability_bars([" Paris", " Lyon"], [p_first, 0.1], 0.9 - p_first, title="cache test")

    first = display._styled_once(bars(0.7), 300)
    again = display._styled_once(bars(0.7), 300)  # a new, equal figure: the styled one is reused
    assert again is first
    assert first.to_dict() == display.style_fig(bars(0.7), 300, False).to_dict()  # same as styling it afresh
    assert first.layout.height == 300 and first.layout.font.size == 13
    other = display._styled_once(bars(0.6), 300)  # other values: styled on its own
    assert other is not first and other.data[0].x[0] == 0.6
    taller = display._styled_once(bars(0.7), 400)  # the height is part of the content
    assert taller is not first and taller.layout.height == 400


def test_a_rerun_does_not_convert_the_shared_charts_again(monkeypatch):
    """``st.plotly_chart`` turns a figure into a dict on every run (a deep copy of every trace): the shared, styled
    figures keep theirs, so a rerun that changes nothing converts no chart, and what is sent is unchanged."""
    from plotly.basedatatypes import BaseFigure

    at = app_page("home")
    before = chart_specs(at)
    converted = []
    original = BaseFigure.to_dict

    def counting(self):
        converted.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(BaseFigure, "to_dict", counting)
    at.run()
    assert_no_exception(at)
    assert len(before) == 2 and chart_specs(at) == before
    assert converted == []


def test_profile_runs_reports_frame_and_page_cpu(monkeypatch, capsys):
    """With ``LLMX_PROFILE_RUNS=1`` every completed run prints its CPU time, frame and page apart (scripts/bench.py)."""
    import re

    from components.frame import PROFILE_ENV, RUN_LOG_PREFIX

    monkeypatch.setenv(PROFILE_ENV, "1")
    at = app_page("home")
    at.text_area(key="prompt").set_value("One, two, three,").run()
    assert_no_exception(at)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(RUN_LOG_PREFIX)]
    assert lines, "no per-run line printed"
    figures = dict(re.findall(r"(\w+)=([\w.]+)", lines[-1]))
    assert figures["page"] == "home"
    frame, page, total = (float(figures[k]) for k in ("frame_ms", "page_ms", "total_ms"))
    assert frame > 0 and page > 0 and abs(frame + page - total) <= 0.2


def test_a_page_run_uses_one_intra_op_thread_and_leaves_other_threads_alone(monkeypatch):
    """Each script run sets its own thread's OpenMP count (engine.threads.SCRIPT_THREADS); the test process's main
    thread, where background jobs and other sessions get their default, keeps its count."""
    import torch

    import components.frame as frame
    from engine import threads

    if not threads.available() or torch.get_num_threads() < 2:
        pytest.skip("no per-thread OpenMP setting here, or one core")
    seen = []
    real_run_page = frame.run_page

    def recording_run_page(page):
        seen.append(torch.get_num_threads())  # inside the script run's own thread
        return real_run_page(page)

    monkeypatch.setattr(frame, "run_page", recording_run_page)
    process = torch.get_num_threads()
    at = app_page("home")
    assert_no_exception(at)
    assert seen and set(seen) == {threads.SCRIPT_THREADS} == {1}
    assert torch.get_num_threads() == process


def test_a_fragment_rerun_uses_the_script_runs_intra_op_thread_count(monkeypatch):
    """A fragment's own rerun runs without the entry script, in a fresh thread: ``components.frame.fragment`` gives
    it the script runs' count. With plain ``st.fragment`` the Next-token page's Generate ran on torch's default of two
    threads there, oversubscribing OpenMP (36 tokens/s instead of 74 in Chromium)."""
    import threading

    import torch

    from components.frame import fragment
    from engine import threads

    if not threads.available() or torch.get_num_threads() < 2:
        pytest.skip("no per-thread OpenMP setting here, or one core")
    seen = []
    # What Streamlit keeps and calls on the fragment's rerun (outside a run st.fragment calls nothing)
    monkeypatch.setattr("streamlit.fragment", lambda f, run_every=None: f)

    @fragment
    def section():
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=section)  # a new thread, as a fragment rerun gets
    worker.start()
    worker.join()
    assert seen == [threads.SCRIPT_THREADS] == [1]


@pytest.mark.parametrize("look_fails", [False, True])
def test_while_the_library_imports_home_predicts_with_the_first_look_then_with_the_model(monkeypatch, real_lm,
                                                                                         look_fails):
    """A warm start: the load offers its first look (the same weights, read without transformers) before the model
    exists. The home page predicts with it, then waits for the model and draws itself again with the model. A first
    look that cannot compute falls back to the model, with no traceback."""
    import threading

    from components import caches
    from engine.first_look import FirstLook
    from engine.loader import LOADS
    from engine.registry import ALLOWED_MODELS

    key = "smollm2-360m-instruct"  # a key of its own, so the test's load is the only one that has a first look
    calls, predicted = [], threading.Event()
    original = FirstLook.next_token_logits

    def spy(self, ids):
        calls.append(list(ids))
        predicted.set()
        if look_fails:
            raise RuntimeError("weights unreadable")
        return original(self, ids)

    def loader(_key, progress):
        progress.first_look(FirstLook(real_lm.source.location, ALLOWED_MODELS[key]))
        predicted.wait(60)  # the model is "ready" only once the page has predicted with the first look
        progress.first_look(None)
        return real_lm

    monkeypatch.setattr(FirstLook, "next_token_logits", spy)
    monkeypatch.setattr(LOADS, "_loader", loader)
    LOADS._jobs.pop(key, None)
    caches.first_look_distribution.clear()
    try:
        at = app_page("home", query={"model": "SmolLM2-360M-Instruct"})
        assert_no_exception(at)
        assert calls == [real_lm.encode("The capital of France is")]  # the page predicted with the first look
        assert LOADS.peek(key).done and LOADS.peek(key).first_look is None
        bars = chart_specs(at)[0]["data"][0]
        assert bars["y"][0] == "' Paris'" and 0.6 < bars["x"][0] < 0.9
        sidebar = [c.value for c in at.sidebar.caption]
        assert any("ready" in c for c in sidebar) and not any("is loading" in c for c in sidebar), sidebar
        assert not at.main.error and not any("Preparing" in s.label for s in at.main.status)
    finally:
        LOADS._jobs.pop(key, None)
        caches.first_look_distribution.clear()
