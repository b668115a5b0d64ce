"""Write the requirements for a local install: ``requirements.txt`` with its torch lines swapped for the plain pin.

``requirements.txt`` is the file Streamlit Community Cloud installs, so it names PyTorch's CPU-only wheels by URL.
A local machine (and this project's CI, which has no network beyond the package registries) installs the same pins
with ``torch==<version>`` instead, which pip finds on the machine's own disk or on PyPI.

Usage: ``python scripts/local_requirements.py requirements.txt .venv/requirements-local.txt``
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_TORCH_URL = re.compile(r"^torch @ \S*/torch-(?P<version>[\d.]+)%2Bcpu-")


def local_lines(text: str) -> list[str]:
    """The requirement lines for a local install: one ``torch==<version>`` in place of every torch line."""
    versions = {m["version"] for line in text.splitlines() if (m := _TORCH_URL.match(line))}
    if len(versions) != 1:
        raise SystemExit(f"expected the CPU torch wheels of one version in the file, found {sorted(versions)}")
    out = [f"torch=={versions.pop()}"]
    out += [line for line in text.splitlines() if line.strip() and not line.startswith(("#", "torch @", "torch=="))]
    return out


def main(argv: list[str]) -> None:
    source, target = Path(argv[1]), Path(argv[2])
    target.write_text("\n".join(local_lines(source.read_text())) + "\n")


if __name__ == "__main__":
    main(sys.argv)
