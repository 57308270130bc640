"""How the autoscaler's code reaches the cluster: the hash-pinned requirements, the ConfigMap holding exactly the
runtime modules, the Dockerfile's context, and the release workflow that publishes the image."""

import ast
import fnmatch
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

from autoscaler import api
from components.autoscaling.component import PACKAGE, package_files
from components.pins import PYTHON_IMAGE
from stack.mocks import REPO
from stack.render import Rendered
from tests.test_model_serving import objects

INSTALL_FLAGS = ("--require-hashes", "--no-deps", "--only-binary=:all:")
CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data the API server accepts in one ConfigMap


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(path: Path) -> list[str]:
    """Logical requirement lines: continuations joined, comments and `-r` includes dropped."""
    lines = path.read_text().replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.startswith(("#", "-r"))]


def pinned(path: Path) -> dict[str, str]:
    return {canonical(n): v for n, v in (line.split()[0].split("==") for line in requirement_lines(path))}


def runtime_modules() -> set[str]:
    """The package's modules that `python -m autoscaler` imports, followed from __main__.py."""
    found: set[str] = set()
    todo = ["__init__", "__main__"]
    while todo:
        module = todo.pop()
        if module in found:
            continue
        found.add(module)
        for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "autoscaler":
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("autoscaler."):
                todo.append((node.module or "").split(".")[1])
    return {f"{module}.py" for module in found}


def test_requirements_are_pinned_hashed_complete_and_agree_with_the_repo() -> None:
    lines = requirement_lines(PACKAGE / "requirements.txt")
    for line in lines:
        assert re.match(r"^[A-Za-z0-9._-]+==\S+ ", line), line
        assert re.search(r"--hash=sha256:[0-9a-f]{64}\b", line), line
    pins = pinned(PACKAGE / "requirements.txt")
    assert len(pins) == len(lines)
    repo = pinned(REPO / "requirements.txt") | pinned(REPO / "requirements-dev.txt")
    shared = pins.keys() & repo.keys()
    assert shared >= {"kubernetes", "prometheus-api-client", "prometheus-client", "requests", "pydantic", "pyyaml"}
    assert {n: pins[n] for n in shared} == {n: repo[n] for n in shared}
    # Every dependency the pinned packages declare for Linux, Python 3.11 and no extra is pinned too, at a version
    # it accepts (read from the installed distributions' metadata).
    for name in pins:
        for declared in importlib.metadata.requires(name) or []:
            requirement = Requirement(declared)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            assert canonical(requirement.name) in pins, f"{name} needs {declared}"
            assert requirement.specifier.contains(pins[canonical(requirement.name)], prereleases=True), declared


def test_init_container_installs_only_hash_checked_wheels(rendered_stacks: dict[str, Rendered]) -> None:
    pod = objects(rendered_stacks["prod"], "Deployment")[api.AUTOSCALER_APP]["spec"]["template"]["spec"]
    (install,) = pod["initContainers"]
    assert install["image"] == PYTHON_IMAGE
    assert install["command"][:2] == ["pip", "install"] and set(INSTALL_FLAGS) <= set(install["command"])
    assert install["command"][-2:] == ["-r", "/app/autoscaler/requirements.txt"]


def test_configmap_ships_exactly_the_runtime_modules_and_they_start(
    rendered_stacks: dict[str, Rendered], tmp_path: Path
) -> None:
    code = objects(rendered_stacks["prod"], "ConfigMap")[f"{api.AUTOSCALER_APP}-code"]["data"]
    assert set(code) == runtime_modules() | {"requirements.txt"}
    assert sum(len(k) + len(v.encode()) for k, v in code.items()) < CONFIGMAP_LIMIT / 2
    (tmp_path / "autoscaler").mkdir()
    for name, text in code.items():
        (tmp_path / "autoscaler" / name).write_text(text)
    # From a folder holding only the shipped files, as the pod's /app: every import resolves or this fails.
    started = subprocess.run(
        [sys.executable, "-m", "autoscaler", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    assert "usage: python -m autoscaler" in started.stdout


def docker_context() -> set[str]:
    """The repository's files that .dockerignore lets into the build context (the last matching pattern wins; a
    pattern that matches a folder matches everything in it)."""
    patterns = [p for p in (REPO / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()

    def matches(pattern: str, path: str) -> bool:
        glob, parts = pattern.split("/"), path.split("/")
        return len(glob) <= len(parts) and all(fnmatch.fnmatchcase(p, g) for p, g in zip(parts, glob, strict=False))

    context = set()
    for path in tracked:
        kept = True
        for pattern in patterns:
            if matches(pattern.removeprefix("!"), path):
                kept = pattern.startswith("!")
        if kept:
            context.add(path)
    return context


def test_image_holds_what_the_configmap_holds_installed_the_same_way() -> None:
    dockerfile = (PACKAGE / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = [line.split(maxsplit=1) for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert ["FROM", PYTHON_IMAGE] in instructions
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert copies == ["autoscaler/requirements.txt /tmp/requirements.txt", "autoscaler/*.py /app/autoscaler/"]
    (install,) = [args.split() for keyword, args in instructions if keyword == "RUN" and "pip install" in args]
    assert set(INSTALL_FLAGS) <= set(install) and "/tmp/requirements.txt" in install
    assert docker_context() == {f"autoscaler/{name}" for name in package_files()}


def test_release_tags_publish_the_image_with_sbom_and_least_privilege() -> None:
    workflow: dict[Any, Any] = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    assert "v*" in workflow[True]["push"]["tags"]  # YAML 1.1 reads the key `on` as True
    job = workflow["jobs"]["image"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    for step in job["steps"]:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    meta = next(s for s in job["steps"] if s["uses"].startswith("docker/metadata-action@"))
    assert meta["with"]["images"] == "ghcr.io/${{ github.repository }}/autoscaler"
    build = next(s for s in job["steps"] if s["uses"].startswith("docker/build-push-action@"))["with"]
    assert build["file"] == "autoscaler/Dockerfile" and build["push"] is True
    assert build["sbom"] is True and build["provenance"]


def test_every_library_the_runtime_imports_is_a_shipped_requirement() -> None:
    """The image installs only autoscaler/requirements.txt: a library imported by a shipped module but installed
    only in the development environment (numpy, say) would fail in the cluster and nowhere else."""
    shipped = {canonical(name) for name in pinned(PACKAGE / "requirements.txt")}
    owners = importlib.metadata.packages_distributions()
    for module in sorted(runtime_modules()):
        for node in ast.walk(ast.parse((PACKAGE / module).read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"autoscaler"}:
                assert {canonical(d) for d in owners.get(top, [top])} & shipped, f"{module} imports {top}"
