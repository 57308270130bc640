"""python -m scripts.lock_autoscaler [PIP OPTION...]: the sha256 of every wheel in autoscaler/requirements.txt.

Keeps the file's comments and `==` pins and replaces their hashes with those of the wheels pip downloads from
PyPI for the pinned image's Python (CPython 3.11, glibc 2.36: python:3.11.14-slim-bookworm) on x86_64 and on
aarch64, so the init container and the Dockerfile install with `--require-hashes` on either. Hashes are downloaded,
never typed. Extra options go to pip (e.g. `--cert FILE`); pip's own configuration is ignored so that no mirror's
files are hashed.
"""

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "autoscaler" / "requirements.txt"
GLIBC_MINOR = 36  # Debian bookworm
ARCHITECTURES = ("x86_64", "aarch64")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> list[str]:
    """`name==version` of each requirement, continuation lines and hashes dropped."""
    logical = text.replace("\\\n", " ").splitlines()
    return [line.split()[0] for line in logical if line.strip() and not line.startswith("#")]


def platforms(arch: str) -> list[str]:
    """pip's --platform list for the image, most specific first as the image's own pip ranks them."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)] + [f"manylinux2014_{arch}"]
    if arch == "x86_64":
        tags += ["manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64"]
    return [option for tag in tags for option in ("--platform", tag)]


def download(requirements: list[str], arch: str, dest: Path, pip_options: list[str]) -> None:
    command = [sys.executable, "-m", "pip", "download", "--isolated", "--index-url", "https://pypi.org/simple"]
    command += ["--no-deps", "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    command += ["--abi", "cp311", *platforms(arch), "--dest", str(dest), *pip_options, *requirements]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    text = REQUIREMENTS.read_text()
    requirements = pins(text)
    hashes: dict[str, set[str]] = {canonical(r.split("==")[0]): set() for r in requirements}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHITECTURES:
            download(requirements, arch, Path(tmp) / arch, sys.argv[1:])
        for wheel in Path(tmp).glob("*/*.whl"):
            hashes[canonical(wheel.name.split("-")[0])].add(hashlib.sha256(wheel.read_bytes()).hexdigest())
    lines = []
    for requirement in requirements:
        found = sorted(hashes[canonical(requirement.split("==")[0])])
        lines.append(" \\\n".join([requirement, *(f"    --hash=sha256:{h}" for h in found)]))
    header = [line for line in text.splitlines() if line.startswith("#")]
    REQUIREMENTS.write_text("\n".join([*header, *lines]) + "\n")


if __name__ == "__main__":
    main()
