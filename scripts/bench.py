"""Benchmark: load times, forward latency, rerun latency per page, generation speed, memory, classroom load.

Run with ``make bench``. Prints a table and, last, one JSON object. Figures are measured on this machine in this run;
nothing here is asserted by the unit tests (timed unit tests would be flaky and dishonest).

Usage:
    python scripts/bench.py [--quick] [--sessions 30] [--json-out bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scripts.bench_browser import percentile as _percentile  # noqa: E402 - after the path is set

#: For each page: a post-processing-only widget change (kind, key, values to cycle through). Only pages whose file
#: exists are measured. Keys are the pages' own widget keys.
RERUN_ACTIONS: dict[str, tuple[str, str, list]] = {
    "home": ("text_area", "prompt", ["The capital of Italy is", "The capital of France is"]),  # cached after one pass
    "ml_to_llm": ("slider", "ml_topk", [5, 12, 8]),
    "next_token": ("slider", "nt_k", [5, 20, 10]),
    "attention": ("slider", "at_layer", [3, 10, 20]),
    "pretraining": ("select_slider", "pt_lr", [0.3, 0.1]),
    "fine_tuning": ("select_slider", "ft_rank", [8, 4]),
    "tokenization": ("toggle", "tok_markers", [True, False]),
    "embeddings": ("slider", "emb_layer", [3, 10, 20]),
    "context_window": ("slider", "cw_window", [32, 64, 16]),
    "temperature": ("slider", "tmp_t", [0.5, 1.5, 1.0]),
    "prompts": ("selectbox", "pr_preset", None),
    "evaluation": ("text_area", "ev_cand", ["The cat sleeps on the sofa.", "A cat is sleeping on the couch."]),
    "genai_landscape": ("segmented_control", "land_show", ["Live here", "Described only", "All"]),
    "encoders": ("selectbox", "enc_vec", ["cls", "decoder", "mean"]),
}


def _fresh_process_json(code: str, env: dict[str, str] | None = None):
    """Run ``code`` in a fresh Python process from the project's root and return the JSON of its last output line."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _time_subprocess_load(cache_dir: str | None) -> dict:
    """A fresh process: seconds to import torch + transformers, then to load the model, then to load it again
    (``cache_dir`` None: the normal warm cache)."""
    env = {**os.environ}
    if cache_dir:
        env["LLMX_CACHE_DIR"] = cache_dir
    code = (
        "import time, json; t0=time.perf_counter(); import torch, transformers, transformers.modeling_utils; "
        "t1=time.perf_counter(); from engine.loader import load_pretrained; lm=load_pretrained(); t2=time.perf_counter(); "
        "lm=load_pretrained(); t3=time.perf_counter(); "
        "print(json.dumps({'import_s': t1-t0, 'first_s': t2-t1, 'again_s': t3-t2}))"
    )
    return _fresh_process_json(code, env)


def _script_thread_tok_s(prompt: str, new_tokens: int) -> float:
    """Tokens/s of one fast generation run from a thread named as Streamlit's script threads, in a fresh process
    whose main thread runs no torch (as a server's); the best of three."""
    code = (
        "import json, threading, time\n"
        "from engine import threads\n"
        "from engine.fastgen import SCRIPT_THREAD_NAME\n"
        "box = {}\n"
        "def load():\n"
        "    from engine.loader import load_pretrained\n"
        "    box['lm'] = load_pretrained(); box['lm'].fast_decoder()\n"
        "def run(thread_body):\n"
        "    t = threading.Thread(target=thread_body, name=SCRIPT_THREAD_NAME); t.start(); t.join()\n"
        "run(load)\n"
        "lm = box['lm']; ids = lm.encode(" + repr(prompt) + ")\n"
        "rates = []\n"
        "def gen():\n"
        "    threads.set_thread_intra_op(threads.SCRIPT_THREADS)\n"
        "    t0 = time.perf_counter(); n = sum(1 for _ in lm.generate_stream(ids, " + str(int(new_tokens)) + ", fast=True))\n"
        "    rates.append(n / (time.perf_counter() - t0))\n"
        "for _ in range(3):\n"
        "    run(gen)\n"
        "print(json.dumps(max(rates)))\n"
    )
    return float(_fresh_process_json(code, {**os.environ, "HF_HUB_OFFLINE": "1"}))


def measure_loads(quick: bool) -> dict:
    """``load_warm_s``: loading from the warm cache once the libraries are imported (what a running server pays);
    ``import_s``: importing torch and transformers (once per process); ``cold_start_s``: both, in a fresh process;
    ``load_first_s``: a fresh process with an empty cache (GGUF conversion), imports included."""
    warm = _time_subprocess_load(None)
    out = {
        "import_s": warm["import_s"],
        "load_warm_s": min(warm["first_s"], warm["again_s"]),
        "cold_start_s": warm["import_s"] + warm["first_s"],
        "load_first_s": None,
    }
    if not quick:
        with tempfile.TemporaryDirectory() as tmp:
            first = _time_subprocess_load(tmp)
        out["load_first_s"] = first["import_s"] + first["first_s"]
    return out


def measure_forward(lm) -> dict:
    ids = lm.encode("The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat today")[:20]
    while len(ids) < 20:
        ids.append(ids[-1])
    lm.forward(ids)  # warm-up
    times = []
    for _ in range(15):
        t = time.perf_counter()
        lm.forward(ids)
        times.append((time.perf_counter() - t) * 1000)
    return {"forward_ms_p50": statistics.median(times)}


#: The text the engine's and llama.cpp's generation figures continue.
GEN_BENCH_PROMPT = "Once upon a time, in a small village by the sea,"


def measure_generation(lm) -> dict:
    """Greedy, 64 new tokens: the fast 4-bit path the pages use by default, and the exact float32 path."""
    ids = lm.encode(GEN_BENCH_PROMPT)
    out = {}
    for name, fast in (("gen_tok_s", True), ("gen_tok_s_exact_fp32", False)):
        list(lm.generate_stream(ids, 4, fast=fast))  # warm-up (builds the 4-bit weights once)
        best = 0.0
        for _ in range(2):
            t = time.perf_counter()
            n = sum(1 for _ in lm.generate_stream(ids, 64, stop_at_eos=False, fast=fast))
            best = max(best, n / (time.perf_counter() - t))
        out[name] = best
    out["gen_fast_path"] = "4-bit weights (groups of 32), bfloat16 products" if lm.fast_decoder() else "float32"
    return out


def measure_bandwidth(lm) -> dict:
    """Read bandwidth (GB/s) as a matrix-vector product sees it: a 512 MB float32 matrix times a vector (it cannot
    stay in cache), and the tokens/s that allows for the bytes of weights each generated token reads."""
    import torch

    w = torch.ones(512 * 1024 * 1024 // 4 // 1024, 1024)  # [131072, 1024] float32
    x = torch.ones(1024)
    torch.mv(w, x)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        torch.mv(w, x)
        best = max(best, w.numel() * 4 / (time.perf_counter() - t))
    del w
    fp32_bytes = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    dec = lm.fast_decoder()
    fast_bytes = dec.nbytes + dec.embed.shape[1] * 4 if dec else fp32_bytes  # + the one embedding row looked up
    return {
        "bandwidth_gb_s": best / 1e9,
        "weights_mb_per_token_fp32": fp32_bytes / 1e6,
        "weights_mb_per_token_fast": fast_bytes / 1e6,
        "bandwidth_limit_tok_s_fp32": best / fp32_bytes,
        "bandwidth_limit_tok_s": best / fast_bytes,
    }


#: The Python of the benchmark-only llama.cpp build (``make llama-cpp``); ``LLMX_LLAMA_PYTHON`` names another one.
LLAMA_PYTHON = ROOT / ".venv-llama" / "bin" / "python"


def measure_llama_cpp(lm, python: str | os.PathLike | None = None, timeout: float = 600.0) -> dict:
    """llama.cpp on the same GGUF, greedy 64 tokens, in a child process (``scripts/llama_cpp_bench.py``).

    Never in this process: torch and llama.cpp together crashed here. ``llama_cpp_build`` says what was compared
    against (llama.cpp's version and CPU features), or why nothing was: no build (``make llama-cpp``), or its error.
    """
    from engine.loader import find_embedded_gguf

    python = Path(python or os.environ.get("LLMX_LLAMA_PYTHON") or LLAMA_PYTHON)
    if not python.exists():
        return {"llama_cpp_tok_s": None, "llama_cpp_build": "not built (make llama-cpp)"}
    cmd = [str(python), str(ROOT / "scripts" / "llama_cpp_bench.py"), str(find_embedded_gguf(lm.spec)),
           "--prompt", GEN_BENCH_PROMPT, "--tokens", "64", "--threads", str(os.cpu_count() or 1)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as err:
        return {"llama_cpp_tok_s": None, "llama_cpp_build": f"failed: {err}"[:200]}
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
        features = [f.split("=")[0].split(":")[-1].strip() for f in result["system_info"].split("|") if f.strip().endswith("= 1")]
        return {
            "llama_cpp_tok_s": float(result["tok_s"]),
            "llama_cpp_build": f"llama-cpp-python {result['version']}, {result['threads']} threads, "
                               + (" ".join(features) or result["system_info"].strip()),
        }
    except (ValueError, KeyError, IndexError, TypeError):
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"llama_cpp_tok_s": None, "llama_cpp_build": f"failed: {why}"[:200]}


def measure_reruns(reps: int) -> dict:
    """Server-side script time of a post-processing-only widget change on every page (AppTest)."""
    from components.frame import available_pages
    from tests.conftest import app_page

    per_page = {}
    for page in available_pages():
        action = RERUN_ACTIONS.get(page.stem)
        if action is None:
            continue
        kind, key, values = action
        at = app_page(page.stem)
        if values is None:  # a selectbox: cycle through its own options
            values = list(getattr(at, kind)(key=key).options)
        try:
            getattr(at, kind)(key=key)
        except Exception as exc:  # noqa: BLE001
            per_page[page.stem] = {"error": f"no {kind} with key {key}: {exc}"}
            continue
        times = []
        try:
            for i in range(reps + len(values)):  # one pass over the values first: caches warm, then measure
                getattr(at, kind)(key=key).set_value(values[i % len(values)])
                t = time.perf_counter()
                at.run()
                if i >= len(values):
                    times.append((time.perf_counter() - t) * 1000)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other pages
            per_page[page.stem] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        per_page[page.stem] = {
            "p50": _percentile(times, 0.5),
            "p95": _percentile(times, 0.95),
            "exceptions": len(at.exception),
        }
    all_p95 = [v["p95"] for v in per_page.values() if "p95" in v]
    return {
        "rerun_ms_by_page": per_page,
        "rerun_ms_p50": statistics.median([v["p50"] for v in per_page.values() if "p50" in v]) if all_p95 else None,
        "rerun_ms_p95": max(all_p95) if all_p95 else None,
    }


def measure_prompt_change() -> dict:
    """End-to-end script time of a new prompt (not cached) on the next-token page."""
    from tests.conftest import app_page

    at = app_page("next_token")
    times = []
    for i in range(5):
        at.text_area(key="prompt").set_value(f"My favourite number is {i * 7 + 3} and my favourite colour is")
        t = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t) * 1000)
    return {"prompt_change_ms_p50": statistics.median(times), "prompt_change_ms_max": max(times)}


def _server_memory_mb(pid: int) -> dict:
    """Current and peak resident memory of a process, from ``/proc`` (Linux)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return out


def _run_lines(log: Path, offset: int) -> list[dict[str, float]]:
    """The ``llmx-run`` lines (``components.frame.RunTimer``) a server wrote to ``log`` after byte ``offset``."""
    from components.frame import RUN_LOG_PREFIX

    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    # Found anywhere in a line: the server's own log output shares the file and may run into a line.
    pattern = re.escape(RUN_LOG_PREFIX) + r" page=\S+ frame_ms=([\d.]+) page_ms=([\d.]+) total_ms=([\d.]+)"
    return [
        {"frame_ms": float(m[1]), "page_ms": float(m[2]), "total_ms": float(m[3])} for m in re.finditer(pattern, text)
    ]


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds the process used so far (all its threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_server(sessions: int) -> dict:
    """Against a real ``streamlit run``: ``sessions`` websocket sessions open the next-token page's default example
    at once (the classroom figure), then every page is visited and its main action used; the server's peak
    resident memory is read from the kernel (one shared model, as in production).

    Where a classroom's time goes, per session, measured on the server rather than seen from the client (the client's
    wall-clock times include queueing behind the other sessions and whatever else the machine runs):

    - ``script_ms_p50`` (with ``script_frame_ms_p50`` and ``script_page_ms_p50``): CPU time of one script run, the frame
      (navigation, sidebar, share link, guided path) and the page apart. The server runs with ``LLMX_PROFILE_RUNS=1``,
      so the app prints one ``llmx-run`` line per run (``components.frame.RunTimer``: ``time.thread_time`` of the
      session's script thread, so the other sessions running at the same time do not count).
    - ``server_cpu_ms_per_session``: the whole server process's CPU during the classroom run divided by the number of
      sessions: the script run plus what Streamlit does around it (the websocket, session set-up, sending the
      messages), i.e. the figure the class's p95 grows with.
    """
    from components.frame import PROFILE_ENV, available_pages
    from tests.browser.conftest import ARTIFACTS, start_server, stop_server
    from tests.support.st_client import run_many_sync

    ARTIFACTS.mkdir(exist_ok=True)
    proc, base = start_server(extra_env={PROFILE_ENV: "1"})
    log = ARTIFACTS / f"server-{base.rsplit(':', 1)[1]}.log"
    try:
        run_many_sync(base, [""])  # Home loads the model: the load is not part of the classroom figure
        run_many_sync(base, ["next_token"])  # and the page's first use (its cached results) neither
        offset, cpu0 = log.stat().st_size, _process_cpu_s(proc.pid)
        results = run_many_sync(base, ["next_token"] * sessions)
        cpu1 = _process_cpu_s(proc.pid)
        time.sleep(0.5)  # the last runs' lines reach the log
        runs = _run_lines(log, offset)
        page_errors = []
        for page in available_pages():
            for r in run_many_sync(base, ["" if page.stem == "home" else page.stem], timeout=300):
                page_errors += r.exceptions + r.errors
        page_errors += _use_main_actions(base)
        memory = _server_memory_mb(proc.pid)
    finally:
        stop_server(proc)
    times = [r.seconds * 1000 for r in results]

    def p50(field: str) -> float | None:
        values = [r[field] for r in runs if field in r]
        return round(statistics.median(values), 1) if values else None

    return {
        "classroom_sessions": sessions,
        "classroom_p50_ms": _percentile(times, 0.5),
        "classroom_p95_ms": _percentile(times, 0.95),
        "classroom_errors": sum(1 for r in results if not r.ok),
        "script_ms_p50": p50("total_ms"),
        "script_frame_ms_p50": p50("frame_ms"),
        "script_page_ms_p50": p50("page_ms"),
        "server_cpu_ms_per_session": round((cpu1 - cpu0) * 1000 / max(sessions, 1), 1),
        "peak_rss_mb": memory.get("VmHWM"),
        "rss_after_mb": memory.get("VmRSS"),
        "page_errors": len(page_errors),
        "page_error_examples": [e[:200] for e in page_errors[:3]],
    }


#: The heaviest thing each page can be asked to do, as (page[?query], widgets to set, button to press).
MAIN_ACTIONS = [
    ("next_token", {"nt_len": 120}, "nt_generate"),
    ("next_token", {"nt_len": 60, "nt_fast": False}, "nt_generate"),
    ("temperature", {}, None),
    ("fine_tuning", {}, "ft_train"),
    ("pretraining", {}, None),
    ("context_window", {"cw_score": True}, None),
    ("rlhf", {"rl_likelihood": True}, "rl_run_dpo"),
    ("attention?at_writing=true", {"at_gen": 12}, None),  # its folded "while the model writes" section, opened
    ("embeddings", {}, None),
]


def _use_main_actions(base: str) -> list[str]:
    """One session per action: open the page, set its widgets and press its main button (generation, fine-tuning);
    returns the exceptions and error boxes seen."""
    from tests.support.st_client import LiveSession, run_sync

    async def run() -> list[str]:
        problems: list[str] = []
        for target, widgets, button in MAIN_ACTIONS:
            page, _, query = target.partition("?")
            async with LiveSession(base, timeout=300) as s:
                results = [await s.open(page, query)]
                if widgets or button:
                    results.append(await s.act(set=widgets or None, press=button))
                for r in results:
                    problems += r.exceptions + r.errors
        return problems

    return run_sync(run())


def measure_diffusion() -> dict:
    """The diffusion page's models trained from scratch here (budget: digits ≤ 60 s, 2-D ≤ 15 s on 2 idle cores),
    their weights' size, and how a real-digit classifier reads 100 generated digits (10 per class, guidance 2)."""
    from engine import diffusion as dm

    digits = dm.train_digits()
    toy = dm.train_toy("two moons")
    clf, _ = dm.digit_classifier()
    wanted = [d for d in range(10) for _ in range(10)]
    t = time.perf_counter()
    images = dm.sample(digits, list(range(100)), wanted, 2.0).final
    sample_s = time.perf_counter() - t
    return {
        "diffusion_digits_train_s": digits.seconds,
        "diffusion_2d_train_s": toy.seconds,
        "diffusion_models_mb": (digits.parameter_bytes + toy.parameter_bytes) / 1e6,
        "diffusion_sample_100_digits_s": sample_s,
        "diffusion_recognised": dm.recognise(clf, images, wanted).rate,
    }


def measure_encoders() -> dict:
    """The encoders page's two extra models, in a fresh process: resident memory they add once torch and
    transformers are imported (budget ≤ 150 MB together: the encoder loaded and run, then the encoder-decoder
    trained), the encoder's forward time on a 30-token sentence with attentions (budget ≤ 50 ms; also with one
    thread, which is what a CPU shared with other busy processes gives), the training time of the encoder-decoder
    and its held-out accuracy."""
    code = (
        "import gc, json, statistics, time, torch, transformers, transformers.modeling_utils\n"
        "from transformers import BartForConditionalGeneration, BertModel\n"
        "def rss():\n"
        "    gc.collect()\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) / 1024\n"
        "from engine import encoder as enc, seq2seq as s2s\n"
        "base = rss(); e = enc.load_encoder()\n"
        "ids = torch.tensor([e.tokenize(' '.join(['word'] * 28))[0]]); assert ids.shape[1] == 30\n"
        "mask = torch.ones_like(ids); times = []\n"
        "for i in range(25):\n"
        "    t = time.perf_counter(); e._forward(ids, mask, attentions=True); times.append((time.perf_counter() - t) * 1000)\n"
        "after_encoder = rss(); threads = torch.get_num_threads(); torch.set_num_threads(1); one = []\n"
        "for i in range(25):\n"
        "    t = time.perf_counter(); e._forward(ids, mask, attentions=True); one.append((time.perf_counter() - t) * 1000)\n"
        "torch.set_num_threads(threads)\n"
        "m = s2s.train(); after_both = rss()\n"
        "print(json.dumps({'encoder_forward_ms': statistics.median(times[5:]), 'encoder_forward_ms_min': min(times),\n"
        "    'encoder_forward_ms_1_thread': statistics.median(one[5:]),\n"
        "    'encoder_rss_mb': after_encoder - base, 'encoder_seq2seq_rss_mb': after_both - base,\n"
        "    'seq2seq_train_s': m.train_seconds, 'seq2seq_held_out_accuracy': m.accuracy}))\n"
    )
    return _fresh_process_json(code)


def measure_summarization(lm) -> dict:
    """The summarization page: the news example summarized in one sentence (fast path, greedy, cap 64): time to the
    first token (the model reads the whole text first), tokens/s after it, total; a store hit; ROUGE of the summary
    and the lead baseline; and, in a fresh process with what every page already imports (torch, transformers,
    streamlit, pandas, plotly, sacrebleu), what importing rouge-score adds (it pulls nltk, and scipy and scikit-learn
    through it, unless the diffusion or embeddings pages loaded those first): seconds and resident MB."""
    from engine import summarize as sm

    news = next(e for e in sm.examples() if e.key == "news_library")
    prompt = sm.build_prompt(lm, news.text, "One sentence", max_new_tokens=64)
    list(lm.generate_stream(list(prompt.ids), 2, fast=True))  # warm-up (builds the 4-bit weights once)
    store = sm.SummaryStore()
    key = ("bench", news.text)
    t = time.perf_counter()
    first = None
    for _ in store.stream(key, lambda: sm.summary_steps(lm, prompt, 64, True), 64, lm.info.eos_token_id, True):
        first = first if first is not None else time.perf_counter() - t
    total = time.perf_counter() - t
    summary = store.get(key)
    t = time.perf_counter()
    list(store.stream(key, lambda: iter(()), 64, lm.info.eos_token_id, True))
    hit_ms = (time.perf_counter() - t) * 1000
    sm.rouge("warm up", "warm up")
    t = time.perf_counter()
    sm.compare_with_lead(news.text, summary.text, news.reference)
    rouge_ms = (time.perf_counter() - t) * 1000
    code = (
        "import gc, json, time, torch, transformers, streamlit, pandas, plotly.graph_objects, sacrebleu\n"
        "from transformers import AutoModelForCausalLM\n"
        "def rss():\n"
        "    gc.collect()\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) / 1024\n"
        "base = rss(); t = time.perf_counter()\n"
        "from engine.summarize import rouge\n"
        "rouge('the cat sat', 'the cat sat on the mat')\n"
        "print(json.dumps({'rouge_import_s': time.perf_counter() - t, 'rouge_import_rss_mb': rss() - base}))\n"
    )
    rouge_figures = _fresh_process_json(code)
    return {
        "summary_prompt_tokens": len(prompt.ids),
        "summary_tokens": summary.n_tokens,
        "summary_first_token_s": first or 0.0,
        "summary_tok_s_after_first": (summary.n_tokens - 1) / max(total - (first or 0.0), 1e-9),
        "summary_total_s": total,
        "summary_store_hit_ms": hit_ms,
        "summary_rouge_and_lead_ms": rouge_ms,
        **rouge_figures,
    }


def measure_rlhf(lm) -> dict:
    """The RLHF page: the Bradley–Terry reward model on the built-in pairs (encoder features + training) and a 16-pair,
    30-step DPO run (prepare + steps) on a fresh LoRA adapter, with its final margin gain and KL."""
    from engine import preference as pref
    from engine.encoder import load_encoder
    from engine.training import new_adapter

    encoder = load_encoder()
    b = pref.builtin_set()
    t = time.perf_counter()
    report = pref.fit_reward_model(encoder, b.train, b.held_out)
    reward_s = time.perf_counter() - t
    adapter = new_adapter(lm, layers=pref.DPO_LAYERS)
    t = time.perf_counter()
    prep = pref.prepare_pairs(lm, b.train[:16], adapter)
    history = list(pref.dpo_steps(lm, adapter, prep, steps=30, beta=0.1, lr=2e-3))  # the page's default
    dpo_s = time.perf_counter() - t
    return {
        "reward_model_s": reward_s,
        "reward_model_head_s": report.model.seconds,
        "reward_model_held_out_acc": report.test_accuracy,
        "dpo_16_pairs_30_steps_s": dpo_s,
        "dpo_margin_gain_nats": history[-1].margin - history[0].margin,
        "dpo_final_kl": history[-1].kl,
    }


def measure_fine_tune_dataset(lm) -> dict:
    """The Fine-tuning page's run: 20 examples (the built-in class Q&A, 16 train / 4 validation), 60 steps, batch 4,
    rank 4, last 4 layers, through the server's line and a background thread, as the page starts it (target ≤ 60 s
    idle)."""
    from engine import datasets as D
    from engine import training as tr

    prep = D.prepare(lm, "builtin:room12_qa", b"")
    start = time.perf_counter()
    run = tr.start_dataset_run(lm, prep.train, prep.val, tr.FineTuneSettings(steps=60))
    run.wait()
    total = time.perf_counter() - start
    return {"fine_tune_20ex_60steps_s": total, "fine_tune_step_ms": 1000 * run.seconds / max(run.steps_done, 1),
            "fine_tune_val_loss_before": run.val_points[0][1], "fine_tune_val_loss_best": min(v for _, v in
                                                                                             run.val_points)}


def measure_browser(lm) -> dict:
    """What a visitor meets in Chromium (``scripts/bench_browser.py``), next to the engine's figure for the same
    request as the page's **Generate** (120 tokens, greedy, the fast path, prompt pass included)."""
    from components.frame import available_pages
    from scripts.bench_browser import GEN_PROMPT, measure_all

    ids = lm.encode(GEN_PROMPT)
    list(lm.generate_stream(ids, 4, fast=True))  # warm
    t = time.perf_counter()
    n = sum(1 for _ in lm.generate_stream(ids, 120, fast=True))
    out = {"engine_same_request_tok_s": n / (time.perf_counter() - t)}
    # The same request from a page's script thread, in a fresh process where, as in the server, only threads run
    # torch: its passes go to the one decode thread (engine.fastgen.DecodeThread), on every core while nothing else
    # is busy. (Not in this process: its main thread's own OpenMP pool would slow that thread's.) The page vs this
    # figure is what streaming to the page costs (in Chromium, also the browser drawing on the same cores, when
    # passes leave it a core).
    out["engine_worker_thread_tok_s"] = _script_thread_tok_s(GEN_PROMPT, 120)
    out.update(measure_all([p.stem for p in available_pages()]))
    if out.get("page_gen_tok_s") and out["engine_same_request_tok_s"]:
        out["page_to_engine_ratio"] = out["page_gen_tok_s"] / out["engine_same_request_tok_s"]
        out["page_to_worker_thread_ratio"] = out["page_gen_tok_s"] / out["engine_worker_thread_tok_s"]
    if out.get("page_gen_remote_tok_s") and out["engine_same_request_tok_s"]:
        # The browser on another machine (a classroom): nothing else on the server's cores
        out["page_remote_to_engine_ratio"] = out["page_gen_remote_tok_s"] / out["engine_same_request_tok_s"]
    return out


#: The groups of figures ``--only`` can pick (all of them run by default).
GROUPS = ("loads", "engine", "pages", "server", "browser", "diffusion", "encoders", "summarization", "rlhf",
          "fine_tune")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the empty-cache load and use fewer repetitions")
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated groups to run (" + ", ".join(GROUPS) + "); all by default")
    args = parser.parse_args()

    from engine.loader import load_pretrained

    only = set(args.only.split(",")) if args.only else None

    def wanted(group: str) -> bool:
        return only is None or group in only

    results: dict = {}
    if wanted("loads"):
        results.update(measure_loads(args.quick))
    lm = load_pretrained()
    if wanted("engine"):
        results.update(measure_forward(lm))
        results.update(measure_generation(lm))
        results.update(measure_bandwidth(lm))
        results.update(measure_llama_cpp(lm))
        if results.get("llama_cpp_tok_s") and results.get("gen_tok_s"):
            results["ratio_to_llama_cpp"] = results["gen_tok_s"] / results["llama_cpp_tok_s"]
        results["ratio_to_bandwidth_limit"] = results["gen_tok_s"] / results["bandwidth_limit_tok_s"]
    if wanted("pages"):
        results.update(measure_reruns(5 if args.quick else 12))
        results.update(measure_prompt_change())
    if wanted("server"):
        results.update(measure_server(args.sessions))
    if wanted("browser"):
        results.update(measure_browser(lm))
    if wanted("diffusion"):
        results.update(measure_diffusion())
    if wanted("encoders"):
        results.update(measure_encoders())
    if wanted("summarization"):
        results.update(measure_summarization(lm))
    if wanted("rlhf"):
        results.update(measure_rlhf(lm))
    if wanted("fine_tune"):
        results.update(measure_fine_tune_dataset(lm))

    print(f"{'metric':34} value")
    for key, value in results.items():
        if key == "rerun_ms_by_page":
            for page, figures in value.items():
                shown = ", ".join(f"{k}={v:.0f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
                print(f"  rerun {page:26} {shown}")
            continue
        print(f"{key:34} {value:.2f}" if isinstance(value, float) else f"{key:34} {value}")
    print(json.dumps(results, default=float))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
