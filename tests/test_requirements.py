"""The dependency files: what Streamlit Community Cloud installs is CPU-only torch and the same pins as this machine."""

from __future__ import annotations

import itertools
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import Requirement

from scripts.local_requirements import local_lines

ROOT = Path(__file__).resolve().parent.parent
CLOUD = (ROOT / "requirements.txt").read_text()


def _requirements(text: str) -> list[Requirement]:
    return [Requirement(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _environment(system: str, machine: str, python: str) -> dict[str, str]:
    return {"sys_platform": system, "platform_machine": machine, "python_version": python,
            "python_full_version": python + ".0", "platform_system": system.capitalize(), "os_name": "posix"}


def test_every_platform_gets_exactly_one_torch_of_the_installed_version_and_cloud_gets_the_cpu_wheel():
    torches = [r for r in _requirements(CLOUD) if r.name == "torch"]
    installed = version("torch").split("+")[0]
    for system, machine, python in itertools.product(
        ("linux", "darwin", "win32"), ("x86_64", "aarch64", "arm64"), ("3.11", "3.12", "3.13", "3.14")
    ):
        env = _environment(system, machine, python)
        chosen = [r for r in torches if r.marker is None or r.marker.evaluate(env)]
        assert len(chosen) == 1, (env, [str(r) for r in chosen])
        req = chosen[0]
        if system == "linux" and machine == "x86_64" and python != "3.14":
            # Cloud: a CPU-only wheel for that Python, named by URL so no index order can swap in a CUDA build.
            name = unquote(Path(urlparse(req.url).path).name)
            tag = "cp" + python.replace(".", "")
            assert name == f"torch-{installed}+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl", name
            assert "/whl/cpu/" in req.url
        else:
            assert req.url is None and str(req.specifier) == f"=={installed}"
    lines = [line.lower() for line in CLOUD.splitlines() if not line.startswith("#")]
    assert not any(word in line for line in lines for word in ("cu12", "cu13", "nvidia", "cuda"))


def test_this_machines_cpu_wheel_has_the_name_the_cloud_file_asks_for():
    """The local torch is the same CPU build (2.13.0+cpu) that the Cloud line for Python 3.11 names."""
    assert version("torch").endswith("+cpu")


def test_the_local_install_has_the_same_pins_and_they_are_what_is_installed():
    local = _requirements("\n".join(local_lines(CLOUD)))
    cloud = {r.name: r for r in _requirements(CLOUD) if r.name != "torch"}
    assert [r.name for r in local].count("torch") == 1
    assert {r.name for r in local} - {"torch"} == set(cloud)
    for req in local:
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"{req} is not pinned"
        assert version(req.name).split("+")[0] == next(iter(req.specifier)).version, f"{req.name} differs"
