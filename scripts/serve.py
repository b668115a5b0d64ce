"""``make run``: the app's server, with the model loading from the moment the process starts.

``streamlit run streamlit_app.py`` runs no app code until the first visitor connects, so that visitor waited for
the libraries to import and the model to load. Here the load starts in a background thread before Streamlit's
server even listens (the same ``engine.loader.LOADS`` job every page then finds, loading or done), and the app's own
modules are imported meanwhile. Streamlit Community Cloud runs ``streamlit_app.py`` directly and loads on the first
visit, as before.

Usage: ``python scripts/serve.py [streamlit run options, e.g. --server.port 8501]``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "llmx: model ready at server start"

log = logging.getLogger("llmx.serve")


def preload() -> None:
    """Load the default (or ``LLMX_MODEL``) model, then pack its 4-bit copy; a failure is left for the pages to show
    (a visitor's session asks again and sees the reason and the fix)."""
    t0 = time.perf_counter()
    from engine.loader import LOADS

    try:
        lm = LOADS.start(None).model()
    except Exception as err:  # noqa: BLE001 - the pages report it with its fix; the server keeps running
        print(f"llmx: model not loaded at server start ({err})", file=sys.stderr, flush=True)
        return
    print(f"{READY_LINE} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    lm.prepare_fast_decoder()
    import components.caches  # noqa: F401 - the first page run then finds the app's modules imported


def main() -> None:
    sys.path.insert(0, str(ROOT))
    threading.Thread(target=preload, name="llmx-preload", daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(ROOT / "streamlit_app.py"), *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
