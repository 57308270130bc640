"""python -m stack.charts: fill the local chart cache with every pinned chart, each checked against its repository.

The offline render expands Helm releases from this cache only, so what it shows is what these checks admitted:
the pinned version from the repository's `index.yaml`, the archive's sha256 equal to the index's `digest`, and
every dependency its Chart.yaml declares packaged inside it (Helm puts them under `charts/`).
"""

import hashlib
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import helm_python
import requests
import yaml

from components import pins
from components.pins import HelmChart

CACHE_ENV = "LLM_PLATFORM_CHART_CACHE"
TIMEOUT_S = 120


class ChartCacheError(Exception):
    """A pinned chart could not be cached: the message names the chart and what failed."""


def cache_dir() -> Path:
    """Shared by every checkout and kept by `make clean`: charts are large and change only with a pin."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llm-platform" / "charts"


def pinned_charts() -> list[HelmChart]:
    return [c for c in vars(pins).values() if isinstance(c, HelmChart)]


def archive_path(cache: Path, chart: str, version: str) -> Path:
    """Helm's own archive name, `<chart>-<version>.tgz`."""
    return cache / f"{chart}-{version}.tgz"


def _get(url: str) -> bytes:
    response = requests.get(url, timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.content


def index_entry(chart: HelmChart, index: Any) -> tuple[str, str]:
    """The archive URL (resolved against the repository) and the sha256 the index gives for the pinned version."""
    entries = index.get("entries", {}).get(chart.chart, []) if isinstance(index, dict) else []
    entry = next((e for e in entries if str(e.get("version")) == chart.version), None)
    if entry is None:
        raise ChartCacheError(f"{chart.chart} {chart.version}: version not in {chart.repo} index.yaml")
    if not entry.get("urls") or not entry.get("digest"):
        raise ChartCacheError(f"{chart.chart} {chart.version}: the index gives no archive URL or no digest")
    return urljoin(chart.repo.rstrip("/") + "/", entry["urls"][0]), str(entry["digest"]).removeprefix("sha256:")


def missing_dependencies(archive: Path) -> list[str]:
    """Dependencies the chart declares that its archive does not carry (Helm refuses to install it then)."""
    with helm_python.Chart.load(archive) as chart:
        declared = [d["name"] for d in chart.metadata.get("dependencies") or []]
        packaged = {d["name"] for d in chart.dependencies}
    return [name for name in declared if name not in packaged]


def fetch(chart: HelmChart, cache: Path) -> Path:
    """Download and check one pinned chart, once: only an archive that passed every check is ever in the cache."""
    target = archive_path(cache, chart.chart, chart.version)
    if target.is_file():
        return target
    try:
        index = yaml.load(_get(urljoin(chart.repo.rstrip("/") + "/", "index.yaml")), Loader=yaml.CSafeLoader)
        url, digest = index_entry(chart, index)
        data = _get(url)
    except (requests.RequestException, yaml.YAMLError) as error:
        raise ChartCacheError(f"{chart.chart} {chart.version}: {error}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ChartCacheError(f"{chart.chart} {chart.version}: {url} has sha256 {actual}, the index says {digest}")
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    try:
        missing = missing_dependencies(partial)
    except helm_python.HelmError as error:
        partial.unlink()
        raise ChartCacheError(f"{chart.chart} {chart.version}: not a loadable chart: {error}") from None
    if missing:
        partial.unlink()
        raise ChartCacheError(
            f"{chart.chart} {chart.version}: dependency {', '.join(missing)} is declared but not packaged in charts/"
        )
    partial.replace(target)
    return target


def main() -> int:
    cache = cache_dir()
    failed = 0
    for chart in pinned_charts():
        try:
            print(f"{chart.chart} {chart.version}: {fetch(chart, cache)}")
        except ChartCacheError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
