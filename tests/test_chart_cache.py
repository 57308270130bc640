"""The chart cache against a chart repository on loopback: the pinned version's archive is cached only when its
sha256 matches the index's digest and every declared dependency is packaged inside it."""

import functools
import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from components.pins import HelmChart
from stack.charts import ChartCacheError, archive_path, fetch
from tests.tiny_chart import write_archive


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served as a chart repository at the returned URL."""
    root = tmp_path / "repo"
    (root / "charts").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root / "charts", f"http://127.0.0.1:{server.server_address[1]}/charts"
    server.shutdown()
    server.server_close()


def publish(folder: Path, digest: str | None = None, with_dependency: bool = True) -> bytes:
    """The tiny chart as version 1.0.0 with a relative URL (as most repositories list it), and an older version."""
    archive = write_archive(folder / "widgets-1.0.0.tgz", with_dependency=with_dependency)
    data = archive.read_bytes()
    entries = [
        {"version": "0.9.0", "urls": ["widgets-0.9.0.tgz"], "digest": "0" * 64},
        {"version": "1.0.0", "urls": ["widgets-1.0.0.tgz"], "digest": digest or hashlib.sha256(data).hexdigest()},
    ]
    (folder / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {"widgets": entries}}))
    return data


def test_the_pinned_version_is_cached_when_its_digest_matches(repo: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = repo
    data = publish(folder)
    cached = fetch(HelmChart(url, "widgets", "1.0.0", "widgets"), tmp_path / "cache")
    assert cached == archive_path(tmp_path / "cache", "widgets", "1.0.0")
    assert cached.read_bytes() == data
    (folder / "widgets-1.0.0.tgz").unlink()
    assert fetch(HelmChart(url, "widgets", "1.0.0", "widgets"), tmp_path / "cache") == cached, "not fetched twice"


def test_a_wrong_digest_fails_naming_the_chart_and_caches_nothing(repo: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = repo
    publish(folder, digest="ab" * 32)
    with pytest.raises(
        ChartCacheError, match=r"widgets 1\.0\.0: .*widgets-1\.0\.0\.tgz has sha256 .*, the index says abab"
    ):
        fetch(HelmChart(url, "widgets", "1.0.0", "widgets"), tmp_path / "cache")
    assert list((tmp_path / "cache").glob("*")) == []


def test_a_dependency_missing_from_the_archive_fails_naming_it(repo: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = repo
    publish(folder, with_dependency=False)
    with pytest.raises(
        ChartCacheError, match=re.escape("widgets 1.0.0: dependency sidecar is declared but not packaged in charts/")
    ):
        fetch(HelmChart(url, "widgets", "1.0.0", "widgets"), tmp_path / "cache")
    assert list((tmp_path / "cache").glob("*")) == []


def test_a_version_the_index_does_not_list_fails_naming_the_repository(repo: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = repo
    publish(folder)
    with pytest.raises(ChartCacheError, match=re.escape(f"widgets 2.0.0: version not in {url} index.yaml")):
        fetch(HelmChart(url, "widgets", "2.0.0", "widgets"), tmp_path / "cache")
