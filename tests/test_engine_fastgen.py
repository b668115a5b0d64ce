"""The fast generation loop: its math equals the library's forward, and its 4-bit mode stays close to float32."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from engine.fastgen import FastDecoder, Int4Linear, int4_kernel_available
from engine.training import weights_fingerprint

needs_int4 = pytest.mark.skipif(not int4_kernel_available(), reason="this PyTorch build has no int4 CPU kernel")


def _hf_logits(lm, ids):
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([ids])).logits[0, -1]


def test_float32_loop_equals_the_library_forward_at_every_step(tiny_lm):
    """Prefill and each cached step give the library's logits for the same text (float tolerance only)."""
    dec = FastDecoder(tiny_lm.model, quantize=False)
    ids = tiny_lm.encode("The quick brown fox jumps")
    logits, state = dec.start(ids, len(ids) + 6)
    assert torch.allclose(logits, _hf_logits(tiny_lm, ids), atol=1e-4)
    seq = list(ids)
    for _ in range(6):
        token = int(torch.argmax(logits))
        seq.append(token)
        logits = dec.step(token, state)
        assert torch.allclose(logits, _hf_logits(tiny_lm, seq), atol=1e-4)
    with pytest.raises(ValueError, match="full"):
        dec.step(0, state)


def test_float32_loop_on_the_real_model_matches(real_lm):
    ids = real_lm.encode("The capital of France is")
    dec = FastDecoder(real_lm.model, quantize=False)
    logits, _ = dec.start(ids, len(ids) + 1)
    assert torch.allclose(logits, _hf_logits(real_lm, ids), atol=1e-3)


@needs_int4
def test_int4_linear_is_the_q4_1_grid():
    """A weight already on a 4-bit grid per group of 32 is stored exactly (up to bfloat16 scales)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randint(0, 16, (64, 128), generator=g).float()
    q[:, ::32] = 0.0  # each group of 32 spans the whole 0..15 range, as Q4_1 groups usually do
    q[:, 1::32] = 15.0
    step, low = 0.0625, -0.5  # exact in bfloat16
    w = q * step + low
    lin = Int4Linear(w)
    x = torch.randn(3, 128, generator=g).bfloat16().float()  # inputs exact in bfloat16 too
    assert torch.allclose(lin(x), x @ w.T, atol=0.05, rtol=0.01)
    assert lin.nbytes < w.numel() * 4 / 6  # about 4.5 bits a weight instead of 32


@needs_int4
def test_int4_decoder_keeps_the_answer_and_is_labelled_close_not_equal(real_lm):
    """The fast path's first prediction keeps the float32 answer and the distributions stay close (small KL)."""
    ids = real_lm.encode("The capital of France is")
    exact = torch.softmax(_hf_logits(real_lm, ids).double(), -1)
    fast_logits, _ = real_lm.fast_decoder().start(ids, len(ids) + 1)
    fast = torch.softmax(fast_logits.double(), -1)
    assert real_lm.token_text(int(fast.argmax())) == " Paris"
    assert abs(float(fast.max()) - float(exact.max())) < 0.05
    kl = float((exact * (exact.log() - fast.log())).sum())
    assert 0.0 < kl < 0.1  # close, and honestly not identical


@needs_int4
def test_fast_generation_streams_text_and_leaves_the_shared_model_alone(real_lm):
    before = weights_fingerprint(real_lm)
    ids = real_lm.encode("The capital of France is")
    fast = list(real_lm.generate_stream(ids, 8, fast=True))
    exact = list(real_lm.generate_stream(ids, 8, fast=False))
    assert fast[0].token_id == exact[0].token_id  # " Paris"
    assert "Paris" in "".join(s.text for s in fast)
    assert len(fast) == 8 and all(0.0 < s.prob <= 1.0 for s in fast)
    assert weights_fingerprint(real_lm) == before
    assert real_lm.fast_decoder() is real_lm.fast_decoder()  # built once, shared


def test_fast_falls_back_to_float32_when_unsupported(tiny_lm, monkeypatch):
    import engine.fastgen as fg

    monkeypatch.setattr(fg, "int4_kernel_available", lambda: False)
    monkeypatch.setattr(tiny_lm, "_fast", None)
    ids = tiny_lm.encode("hello world")
    fast = [s.token_id for s in tiny_lm.generate_stream(ids, 5, fast=True, stop_at_eos=False)]
    exact = [s.token_id for s in tiny_lm.generate_stream(ids, 5, fast=False, stop_at_eos=False)]
    assert tiny_lm.fast_decoder() is None and fast == exact


def test_the_fast_decoder_is_prepared_once_in_the_background(real_lm):
    """Built off the request path (the first Generate click no longer waits for it), once per model."""
    thread = real_lm.prepare_fast_decoder()
    if thread is not None:
        thread.join(120)
    decoder = real_lm.fast_decoder()
    assert decoder is not None and real_lm.prepare_fast_decoder() is None  # already built: nothing started
    assert real_lm.fast_decoder() is decoder


def test_a_request_never_waits_for_the_fast_decoder_being_prepared(real_lm):
    """While the 4-bit copy is packed (its lock held), fast requests run on float32 at once and say so."""
    real_lm.fast_decoder()
    ids = real_lm.encode("The capital of France is")
    with real_lm._fast_lock:  # as while the background thread packs it
        during = list(real_lm.generate_stream(ids, 3, fast=True))
    after = list(real_lm.generate_stream(ids, 3, fast=True))
    exact = list(real_lm.generate_stream(ids, 3, fast=False))
    assert not any(s.fast for s in during) and [s.token_id for s in during] == [s.token_id for s in exact]
    assert all(s.fast for s in after) and not any(s.fast for s in exact)


@needs_int4
def test_packing_in_row_chunks_equals_packing_at_once(monkeypatch):
    """The chunked packing (bounded peak memory) stores exactly what one whole-matrix pack stores."""
    w = torch.randn(160, 64, generator=torch.Generator().manual_seed(1))
    whole = Int4Linear(w)
    monkeypatch.setattr(Int4Linear, "CHUNK_ROWS", 64)  # 160 rows = 64 + 64 + 32
    chunked = Int4Linear(w)
    assert torch.equal(whole.packed, chunked.packed) and torch.equal(whole.scales_zeros, chunked.scales_zeros)
    x = torch.randn(2, 64)
    assert torch.equal(whole(x), chunked(x))


def test_a_process_that_exits_while_the_4bit_copy_is_packed_exits_cleanly():
    """The app starts packing the 4-bit copy in a background thread once the model is loaded. A process that ended right after the load
    (a short test run, a server stopped at once) aborted with exit 134 ("terminate called without an active
    exception"): the thread was a daemon, still inside a torch kernel while the interpreter shut down."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("from engine.loader import LOADS\n"
            "lm = LOADS.start(None).model()\n"
            "lm.prepare_fast_decoder()  # as the app does once the model is loaded (components/model.py)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-800:]
    assert "terminate called" not in out.stderr


def test_a_decode_in_a_script_thread_is_identical_and_leaves_its_thread_count(real_lm):
    """Streamlit runs scripts in their own threads; their passes run in the decode thread or on one intra-op thread
    (:class:`engine.fastgen.DecodeThread`): the tokens must equal the main thread's, and the script thread's setting
    must be the same before, between and after the steps."""
    import threading

    import torch

    if real_lm.fast_decoder() is None:
        pytest.skip("no 4-bit decoder on this PyTorch build")
    ids = real_lm.encode("Once upon a time, in a small village by the sea,")
    main = [s.token_id for s in real_lm.generate_stream(ids, 40, fast=True)]
    seen: list = []

    def worker():
        before = torch.get_num_threads()
        steps = real_lm.generate_stream(ids, 40, fast=True)
        first = next(steps)
        inside = torch.get_num_threads()  # between steps: the setting is back
        seen.append(([first.token_id] + [s.token_id for s in steps], before, inside, torch.get_num_threads()))

    t = threading.Thread(target=worker)
    t.start()
    t.join(120)
    tokens, before, inside, after = seen[0]
    assert tokens == main
    assert before == inside == after


@pytest.mark.parametrize("scope", ["intra_op_threads", "diffusion_one_thread"])
def test_a_one_thread_scope_does_not_leak_into_threads_started_meanwhile(scope):
    """Regression (CI, stop 26): ``torch.set_num_threads(1)`` held by one script thread became the setting of any
    thread started in that moment (torch copies a process-wide default into each new thread), so another session's
    fine-tune ran on one thread and its loss read 0.509 instead of 0.508. The scope must change the calling thread
    only."""
    import threading

    import torch

    from engine import diffusion, threads

    if not threads.available():
        pytest.skip("no OpenMP runtime found for per-thread settings")
    enter = {"intra_op_threads": lambda: threads.intra_op_threads(1), "diffusion_one_thread": diffusion.one_thread}[scope]
    process = torch.get_num_threads()
    if process < 2:
        pytest.skip("one core: nothing to leak")
    inside, holding, release = {}, threading.Event(), threading.Event()

    def holder():
        torch.ones(4).sum()  # this thread's torch setup has happened, like a script thread's prompt pass
        with enter():
            inside["holder"] = torch.get_num_threads()
            holding.set()
            release.wait(30)
        inside["holder_after"] = torch.get_num_threads()

    def newcomer():
        holding.wait(30)
        inside["newcomer"] = torch.get_num_threads()
        release.set()

    threads_ = [threading.Thread(target=holder), threading.Thread(target=newcomer)]
    for t in threads_:
        t.start()
    for t in threads_:
        t.join(60)
    assert inside == {"holder": 1, "newcomer": process, "holder_after": process}
    assert torch.get_num_threads() == process


def test_first_logits_choose_the_first_token_and_the_cache_continues_from_it(tiny_lm):
    """``first_logits`` (a page's float32 distribution) decides the first pick; later steps continue from that token."""
    ids = tiny_lm.encode("The quick brown fox jumps")
    own_first = next(tiny_lm.generate_stream(ids, 1)).token_id
    forced = (own_first + 7) % tiny_lm.info.vocab_size  # a token the model itself would not pick first
    first_logits = torch.zeros(tiny_lm.info.vocab_size)
    first_logits[forced] = 5.0
    steps = list(tiny_lm.generate_stream(ids, 5, stop_at_eos=False, first_logits=first_logits))
    rest = list(tiny_lm.generate_stream([*ids, forced], 4, stop_at_eos=False))
    assert steps[0].token_id == forced
    assert [s.token_id for s in steps[1:]] == [s.token_id for s in rest]


@needs_int4
def test_greedy_reply_starts_with_the_float32_top_token_then_runs_fast(real_lm):
    """The reply a page shows next to a float32 distribution begins with that distribution's top token."""
    from engine.generation import greedy_reply

    real_lm.fast_decoder()
    for text in ("The capital of France is", "<|im_start|>user\nSay hello to my class.<|im_end|>\n<|im_start|>assistant\n"):
        ids = real_lm.encode(text)
        logits = real_lm.next_token_logits(ids)
        reply = greedy_reply(real_lm, ids, 8, logits)
        assert reply.token_ids[0] == int(torch.argmax(logits))
        assert reply.fast and 1 < len(reply.token_ids) <= 8
        assert reply.text == real_lm.decode(list(reply.token_ids), skip_special_tokens=True)
    with real_lm._fast_lock:  # while the 4-bit copy is still being packed: float32 throughout, and labelled so
        slow = greedy_reply(real_lm, ids, 8, logits)
    assert not slow.fast and slow.token_ids[0] == reply.token_ids[0]


@needs_int4
def test_a_batched_step_gives_each_sequence_its_own_logits_bit_for_bit(real_lm):
    """Continuous batching must not change a learner's text: each row of a batched pass equals that sequence's step
    run alone, exactly (different prompt lengths, so different positions and cache lengths in one batch)."""
    dec = real_lm.fast_decoder()
    texts = ["The capital of France is", "Once upon a time", "def fibonacci(n):\n    ", "Hi"]
    alone, batched = [], []
    for text in texts:
        ids = real_lm.encode(text)
        logits, state = dec.start(ids, len(ids) + 3)
        token = int(torch.argmax(logits))
        with torch.inference_mode():
            alone.append(dec._run(torch.tensor([token]), state))  # the one-sequence step, no batcher
        _, state = dec.start(ids, len(ids) + 3)
        batched.append((token, state))
    rows = dec.step_batch([t for t, _ in batched], [s for _, s in batched])
    assert rows.shape == (len(texts), real_lm.info.vocab_size)
    for row, ref in zip(rows, alone):
        assert torch.equal(row, ref)
    assert [s["len"] for _, s in batched] == [len(real_lm.encode(t)) + 1 for t in texts]


@needs_int4
def test_sessions_generating_at_once_share_passes_and_each_get_their_own_text(real_lm):
    """Eight sessions generate at the same moment: their steps share batched passes (fewer passes than steps), and
    each text equals what the session gets generating alone."""
    import threading

    dec = real_lm.fast_decoder()
    prompts = ["The capital of France is", "Once upon a time", "My favourite food is", "Water boils at"] * 2
    solo = {p: [s.token_id for s in real_lm.generate_stream(real_lm.encode(p), 20, fast=True, stop_at_eos=False)]
            for p in set(prompts)}
    got: dict[int, list[int]] = {}
    go = threading.Barrier(len(prompts))

    def session(i: int, prompt: str) -> None:
        steps = real_lm.generate_stream(real_lm.encode(prompt), 20, fast=True, stop_at_eos=False)
        go.wait(30)
        got[i] = [s.token_id for s in steps]

    passes, rows = dec.batcher.passes, dec.batcher.rows
    threads = [threading.Thread(target=session, args=(i, p)) for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(got[i] == solo[p] for i, p in enumerate(prompts))
    served, used = dec.batcher.rows - rows, dec.batcher.passes - passes
    assert served == len(prompts) * 19  # every step after the prompt pass went through the batcher
    assert used < served / 2  # most passes served more than one session


def test_an_error_in_a_batched_pass_reaches_every_waiting_session(tiny_lm, monkeypatch):
    """A failing pass raises in each session it served; none is left waiting, and the next pass works again."""
    import threading

    from engine.fastgen import StepBatcher

    dec = FastDecoder(tiny_lm.model, quantize=False)
    batcher = StepBatcher(dec)
    calls = []

    def failing(tokens, states):
        calls.append(len(tokens))
        raise RuntimeError("out of memory")

    monkeypatch.setattr(dec, "step_batch", failing)
    errors = []

    def session() -> None:
        _, state = dec.start(tiny_lm.encode("Hello"), 8)
        try:
            batcher.step(1, state)
        except RuntimeError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=session) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == ["out of memory"] * 4 and sum(calls) == 4
    monkeypatch.undo()
    _, state = dec.start(tiny_lm.encode("Hello"), 8)
    assert batcher.step(1, state).shape == (tiny_lm.info.vocab_size,)


def test_generation_shares_all_cores_but_one_while_others_are_busy(monkeypatch):
    """While pages or jobs are busy a pass leaves one core to them (at least one thread); ``LLMX_DECODE_THREADS``
    overrides."""
    from engine import fastgen

    monkeypatch.delenv("LLMX_DECODE_THREADS", raising=False)
    for cores, shared in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(fastgen.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert fastgen._shared_threads() == shared
    monkeypatch.setenv("LLMX_DECODE_THREADS", "3")
    assert fastgen._shared_threads() == 3
    monkeypatch.setenv("LLMX_DECODE_THREADS", "zero")
    assert fastgen._shared_threads() == 7


def _named_thread(name: str, until: threading.Event, *, waiting_on=None) -> threading.Thread:
    """A thread named like a page's script run or an app job, alive until ``until`` is set (optionally marked as
    waiting on ``waiting_on``, a :class:`DecodeThread`)."""
    ready = threading.Event()

    def body() -> None:
        if waiting_on is None:
            ready.set()
            until.wait(30)
            return
        with waiting_on.waiting():
            ready.set()
            until.wait(30)

    thread = threading.Thread(target=body, name=name)
    thread.start()
    ready.wait(30)
    return thread


def test_the_script_thread_name_is_streamlits():
    """Page runs are recognised by the name Streamlit gives their thread: if a Streamlit upgrade renamed it, busy
    pages would no longer count and generation would take every core under them."""
    import inspect

    from streamlit.runtime.scriptrunner import script_runner

    from engine import fastgen

    assert f'name="{fastgen.SCRIPT_THREAD_NAME}"' in inspect.getsource(script_runner.ScriptRunner)


def test_a_pass_takes_every_core_only_while_nothing_else_is_busy(monkeypatch):
    """Every core when no page run, job or other process is busy; all but one as soon as one is. A page's run that
    waits for its own generation does not count (it is not using a core)."""
    from engine import fastgen, threads

    monkeypatch.delenv("LLMX_DECODE_THREADS", raising=False)
    monkeypatch.setattr(fastgen.os, "sched_getaffinity", lambda _pid: {0, 1})
    load = {"cores": 0.0}
    monkeypatch.setattr(threads.OTHER_PROCESSES, "cores", lambda: load["cores"])
    service = fastgen.DecodeThread()
    assert service.threads_now() == 2
    for name, waiting in (("ScriptRunner.scriptThread", None), ("llmx-background-job", None),
                          ("ScriptRunner.scriptThread", service)):
        stop = threading.Event()
        thread = _named_thread(name, stop, waiting_on=waiting)
        try:
            assert service.threads_now() == (2 if waiting is service else 1), name
        finally:
            stop.set()
            thread.join(30)
    load["cores"] = 0.5  # e.g. a browser drawing the page on the same machine
    assert service.threads_now() == 1
    load["cores"] = 0.1
    assert service.threads_now() == 2


def test_a_pass_on_every_core_runs_in_the_decode_thread_and_a_one_core_pass_in_the_callers():
    """From a page's script thread, a pass that may use several cores runs in the one decode thread (one OpenMP pool
    in the process), which ends once idle; a one-core pass runs where it was asked (no hand-over); errors come back
    to the caller. A thread that runs torch on several threads itself (here the main thread; a training job) keeps
    its passes, on its own count."""
    from engine import fastgen, threads

    if torch.get_num_threads() < 2:
        pytest.skip("one core: every pass runs where it was asked")

    service = fastgen.DecodeThread(linger=0.05)
    where = []

    def record():
        where.append((threading.current_thread().name, torch.get_num_threads()))
        return len(where)

    def in_script_thread(fn):
        box = {}

        def body():
            threads.set_thread_intra_op(1)  # as the entry and components.frame.fragment set a script run's
            try:
                box["value"] = fn()
            except BaseException as err:  # noqa: BLE001 - handed to the test's thread
                box["error"] = err

        thread = threading.Thread(target=body, name=fastgen.SCRIPT_THREAD_NAME)
        thread.start()
        thread.join(60)
        if "error" in box:
            raise box["error"]
        return box["value"]

    service.threads_now = lambda: 2
    assert in_script_thread(lambda: service.run(record)) == 1
    service.threads_now = lambda: 1
    assert in_script_thread(lambda: service.run(record)) == 2
    service.threads_now = lambda: 2
    assert service.run(record) == 3  # the main thread: its own pool, so its passes stay in it
    assert [w[0] for w in where] == [fastgen.DECODE_THREAD_NAME, fastgen.SCRIPT_THREAD_NAME,
                                     threading.current_thread().name]
    assert where[1][1] == 1 and where[2][1] == 2
    assert sum(service.passes_by_threads.values()) == 3
    deadline = time.monotonic() + 10
    while any(t.name == fastgen.DECODE_THREAD_NAME for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == fastgen.DECODE_THREAD_NAME for t in threading.enumerate())  # ended, pool freed

    def failing():
        raise RuntimeError("out of memory")

    for n in (2, 1):
        service.threads_now = lambda n=n: n
        with pytest.raises(RuntimeError, match="out of memory"):
            in_script_thread(lambda: service.run(failing))
    service.threads_now = lambda: 2
    assert in_script_thread(lambda: service.run(record)) == 4  # the thread comes back for the next pass
    assert where[-1][0] == fastgen.DECODE_THREAD_NAME


@needs_int4
@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one core: nothing to compare")
def test_a_generation_is_the_same_on_one_core_and_on_every_core(real_lm, monkeypatch):
    """The decode thread picks the thread count per pass; a learner's text and its probabilities must not depend on
    it (a page's script thread, as Streamlit runs it)."""
    from engine import fastgen, threads

    ids = real_lm.encode("Once upon a time, in a small village by the sea,")
    runs = {}
    for n in (1, 2):
        monkeypatch.setattr(fastgen.DECODE, "threads_now", lambda n=n: n)
        before = dict(fastgen.DECODE.passes_by_threads)
        got = []
        def script_run(got=got):
            threads.set_thread_intra_op(1)  # as a page's script run
            got.extend(real_lm.generate_stream(ids, 30, fast=True, stop_at_eos=False))

        page = threading.Thread(target=script_run, name="ScriptRunner.scriptThread")
        page.start()
        page.join(120)
        assert fastgen.DECODE.passes_by_threads.get(n, 0) - before.get(n, 0) == 30  # prompt pass + 29 steps
        runs[n] = [(s.token_id, s.prob) for s in got]
    assert runs[1] == runs[2]


def test_other_processes_load_is_read_from_proc_stat():
    """A busy child process on our CPUs shows up as about one core; an idle machine as little; a stale window
    counts as idle."""
    import subprocess
    import sys

    from engine.threads import OtherProcessesLoad

    load = OtherProcessesLoad(interval=0.0, stale=30)
    if load._sample() is None:
        pytest.skip("no /proc/stat here")
    load.cores()
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
    try:
        time.sleep(1.0)
        busy = load.cores()
    finally:
        spin.wait(30)
    assert busy > 0.6
    stale = OtherProcessesLoad(interval=0.0, stale=0.0)
    stale.cores()
    time.sleep(0.01)
    assert stale.cores() == 0.0




@pytest.mark.parametrize("fast", [True, False])
def test_a_first_pick_from_the_pages_distribution_needs_no_pass(real_lm, fast):
    """Given the logits a page already shows, the first token comes before any pass runs (on screen at once), and
    the prompt pass then reads the prompt and that token together: one pass fewer, and the text is the model's
    continuation of prompt + first token."""
    if fast and real_lm.fast_decoder() is None:
        pytest.skip("no 4-bit decoder on this PyTorch build")
    ids = real_lm.encode("The capital of France is")
    first = real_lm.next_token_logits(ids)
    before = real_lm.stats.forward_calls
    steps = real_lm.generate_stream(ids, 8, fast=fast, first_logits=first, stop_at_eos=False)
    step1 = next(steps)
    assert real_lm.stats.forward_calls == before  # no pass yet
    assert step1.token_id == int(torch.argmax(first))
    rest = [s.token_id for s in steps]
    assert real_lm.stats.forward_calls - before == 7  # prompt + first token in one pass, then 6 steps
    alone = [s.token_id for s in real_lm.generate_stream(ids + [step1.token_id], 7, fast=fast, stop_at_eos=False)]
    assert rest == alone
