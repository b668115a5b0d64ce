"""llama.cpp's generation speed on the embedded GGUF, for ``make bench`` (run in its own process and virtualenv).

``python scripts/llama_cpp_bench.py MODEL.gguf --prompt TEXT [--tokens 64] [--threads N]`` prints one JSON line: tokens/s of a
greedy generation (after a short warm-up, as the engine's own figure), llama.cpp's version and its build's CPU
features (``llama_print_system_info``), so the README can say which build it compared against.

Why a separate process: torch and llama.cpp in one process crashed on this machine (both bring their own OpenMP
and CPU kernels). Why a separate virtualenv (``make llama-cpp``): ``llama-cpp-python`` compiles llama.cpp for several
minutes; it is a benchmark-only extra, never part of ``make setup``.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--prompt", required=True, help="the text the engine's figure continues (scripts/bench.py)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import llama_cpp

    llm = llama_cpp.Llama(model_path=args.model, n_ctx=512, n_threads=args.threads, verbose=False)
    llm(args.prompt, max_tokens=4, temperature=0.0)  # warm-up: first-call allocations are not generation
    rates = []
    for _ in range(max(1, args.runs)):
        t = time.perf_counter()
        out = llm(args.prompt, max_tokens=args.tokens, temperature=0.0)
        rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
    info = llama_cpp.llama_print_system_info()
    print(json.dumps({
        "tok_s": max(rates),  # the best of the runs, as the engine's figure
        "tok_s_runs": rates,
        "version": llama_cpp.__version__,
        "system_info": info.decode() if isinstance(info, bytes) else str(info),
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
