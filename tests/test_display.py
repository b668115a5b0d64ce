"""components.display.stream_text: streamed text is redrawn at a steady frame rate, never once per token."""

from __future__ import annotations

import time

from components.display import stream_text
from engine.lm import GenStep


def _steps(n: int, per_token_s: float):
    start = time.perf_counter()
    for i in range(n):
        time.sleep(per_token_s)
        yield GenStep(i, f"t{i} ", 0.5, time.perf_counter() - start)


def test_redraws_are_batched_and_the_last_draw_has_everything():
    drawn: list[tuple[int, str]] = []
    tally = stream_text(_steps(120, 0.002), lambda t: drawn.append((t.tokens, t.text)), fps=10)
    assert tally.tokens == 120 and tally.text == "".join(f"t{i} " for i in range(120))
    assert drawn[0][0] == 1  # the first token is shown at once
    assert drawn[-1] == (120, tally.text)
    # ~0.24 s of tokens at 10 redraws a second: a handful of draws, not 120
    assert len(drawn) <= 0.3 * 10 + 3


def test_the_tally_measures_time_to_first_token_and_rate():
    tally = stream_text(_steps(5, 0.01), lambda t: None)
    assert 0 < tally.first_token_s <= tally.seconds
    assert abs(tally.tokens_per_s - 5 / tally.seconds) < 1e-9
    assert tally.stopped_by_model(4) and not tally.stopped_by_model(2)


def test_an_empty_stream_draws_once_and_reports_nothing():
    drawn = []
    tally = stream_text(iter(()), drawn.append)
    assert len(drawn) == 1 and tally.tokens == 0 and tally.tokens_per_s == 0.0 and tally.first_token_s is None


def test_a_watched_job_is_left_as_soon_as_it_ends_not_at_the_next_poll():
    """A page waiting for the model load (or a training job) goes on the moment the job ends: the wait is on the
    job's own completion, not a fixed sleep (a 30 s poll here; the page used to sleep the rest of it)."""
    import threading

    from components.display import watch_job
    from engine.jobs import BackgroundJob

    release = threading.Event()

    def work(job):
        release.wait(30)
        return "done"

    job = BackgroundJob(work)
    job.start()
    watcher = threading.Thread(target=watch_job, args=(job, lambda j: "working", None, "job", 30.0))
    watcher.start()
    time.sleep(0.3)  # the watcher is inside its wait
    release.set()
    watcher.join(10)
    assert not watcher.is_alive() and job.done
