"""engine.jobs.BackgroundJob: the one background-work mechanism (model loads, shared and per-session training)."""

from __future__ import annotations

import threading

import pytest

from engine.jobs import BackgroundJob
from engine.loader import LoadJob, ModelLoadError


def test_a_job_reports_steps_values_and_messages_then_its_result():
    gate = threading.Event()

    def work(report):
        report(1, 4, 2.5, message="warming up")
        report(2, 4)  # a step without a value adds nothing to the curve
        gate.wait(5)
        return "done"

    job = BackgroundJob(work).start()
    while job.step < 2 and not job.done:
        job.wait(0.01)
    assert job.running and not job.done
    assert job.fraction == 0.5 and job.values == [2.5] and job.message == "warming up"
    gate.set()
    assert job.wait(5) and job.result == "done" and job.fraction == 1.0 and job.error is None


def test_stop_is_a_request_the_work_honours_between_steps():
    job = BackgroundJob(lambda report: work(report))

    def work(report):
        step = 0
        while not job.stop_requested and step < 10_000:
            step += 1
            report(step, 10_000)
            threading.Event().wait(0.001)
        return step

    job.start()
    while job.step < 3 and not job.done:
        job.wait(0.01)
    job.request_stop()
    assert job.wait(5) and 3 <= job.result < 10_000


def test_a_failure_is_kept_as_text_and_exception_never_raised_in_the_thread():
    job = BackgroundJob(lambda report: 1 / 0).start()
    assert job.wait(5)
    assert job.error.startswith("ZeroDivisionError") and isinstance(job.exception, ZeroDivisionError)
    assert job.fraction < 1.0  # a failed job never looks complete


def test_a_load_job_turns_any_failure_into_a_model_load_error_with_a_fix():
    job = LoadJob("k", 1, lambda key, progress: (progress(0.7, "half"), progress(0.2, "back?"), 1 / 0)).start()
    assert job.wait(5)
    assert isinstance(job.load_error, ModelLoadError) and "Try again" in job.load_error.fix
    assert job.step == 0.7 and job.message == "back?"  # progress never moves backwards
    with pytest.raises(ModelLoadError, match="ZeroDivisionError"):
        job.model(1)
