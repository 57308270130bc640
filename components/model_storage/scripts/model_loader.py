"""Download a model's weights from the Hugging Face Hub into the shared volume, or warm the node's cache with them.

`download`: lists the repository at a revision (files, sizes and hashes from the Hub's file API), fetches the files
that match the include patterns and are not already present and verified, checks each one's size and hash (SHA-256
for LFS files, the git blob SHA-1 otherwise) before moving it into place, and records what it verified in a
manifest. A rerun downloads nothing that is already there. `warm`: reads every file once on this node, so that the
JuiceFS cache on a GPU node holds the weights before a model server starts there.

Runs in the loader Job and the warmup DaemonSet on a plain Python image: standard library only.
"""

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

MANIFEST = ".llm-platform-manifest.json"
PARTIAL = ".partial"
CHUNK = 16 * 1024 * 1024
ATTEMPTS = 3
TIMEOUT_SECONDS = 60.0


class StorageError(Exception):
    """A failure the user can act on; printed as the last line of the Job's log."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    algorithm: str  # "sha256" for LFS files, "git-sha1" for the rest
    digest: str


class _NoAuthAcrossHosts(urllib.request.HTTPRedirectHandler):
    """The Hub redirects downloads to a CDN: the token goes to the Hub only."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_NoAuthAcrossHosts)


def _open(url: str, token: str | None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    return _OPENER.open(request, timeout=TIMEOUT_SECONDS)


def list_files(endpoint: str, repo: str, revision: str, token: str | None) -> tuple[str, list[RemoteFile]]:
    """The commit the revision points to, and the repository's files with their sizes and hashes."""
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}?blobs=true"
    try:
        with _open(url, token) as response:
            info = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            hint = "set modelStorage.loader.hfToken" if not token else "is the token allowed to read it?"
            raise StorageError(
                f"{repo} is gated or private (HTTP {error.code}): accept its license on the Hub; {hint}"
            ) from None
        if error.code == 404:
            raise StorageError(f"no model {repo} at revision {revision} on {endpoint}") from None
        raise StorageError(f"{endpoint} answered HTTP {error.code} for {repo}") from None
    except (urllib.error.URLError, OSError) as error:
        raise StorageError(f"{endpoint} is unreachable: {getattr(error, 'reason', error)}") from None
    files = []
    for sibling in info.get("siblings", []):
        lfs = sibling.get("lfs")
        if lfs:
            files.append(RemoteFile(sibling["rfilename"], int(lfs["size"]), "sha256", lfs["sha256"]))
        else:
            files.append(RemoteFile(sibling["rfilename"], int(sibling["size"]), "git-sha1", sibling["blobId"]))
    return str(info["sha"]), files


def _hasher(algorithm: str, size: int) -> Any:
    if algorithm == "sha256":
        return hashlib.sha256()
    hasher = hashlib.sha1(usedforsecurity=False)
    hasher.update(f"blob {size}\0".encode())
    return hasher


def _digest(path: Path, file: RemoteFile) -> str:
    hasher = _hasher(file.algorithm, file.size)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
    return str(hasher.hexdigest())


def _read_manifest(dest: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((dest / MANIFEST).read_text()))
    except (OSError, ValueError):
        return {}


def _write_manifest(dest: Path, manifest: dict[str, Any]) -> None:
    temporary = dest / f"{MANIFEST}{PARTIAL}"
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(temporary, dest / MANIFEST)


def _fetch(url: str, token: str | None, target: Path, file: RemoteFile) -> None:
    """Stream one file to `target`, hashing as it arrives; raises when size or hash differ."""
    hasher, written = _hasher(file.algorithm, file.size), 0
    with _open(url, token) as response, target.open("wb") as out:
        while chunk := response.read(CHUNK):
            hasher.update(chunk)
            out.write(chunk)
            written += len(chunk)
    if written != file.size or hasher.hexdigest() != file.digest:
        target.unlink()
        raise StorageError(
            f"{file.name}: got {written} bytes with {file.algorithm} {hasher.hexdigest()}, expected "
            f"{file.size} bytes with {file.digest}"
        )


def _download(endpoint: str, repo: str, commit: str, file: RemoteFile, dest: Path, token: str | None) -> None:
    url = f"{endpoint}/{repo}/resolve/{commit}/{quote(file.name)}"
    final = dest / file.name
    partial = final.with_name(final.name + PARTIAL)
    final.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _fetch(url, token, partial, file)
            os.replace(partial, final)
            return
        except (urllib.error.URLError, OSError, StorageError) as error:
            if attempt == ATTEMPTS:
                raise StorageError(f"{file.name}: download failed {ATTEMPTS} times, last: {error}") from None
            print(f"{file.name}: attempt {attempt} failed ({error}); retrying", flush=True)
            time.sleep(2**attempt)


def _selected(files: list[RemoteFile], include: list[str]) -> list[RemoteFile]:
    return [f for f in files if any(fnmatch.fnmatch(f.name, pattern) for pattern in include)]


def download(endpoint: str, repo: str, revision: str, dest: Path, include: list[str], token: str | None) -> None:
    commit, files = list_files(endpoint, repo, revision, token)
    wanted = _selected(files, include)
    if not wanted:
        raise StorageError(f"no file of {repo} matches {include}: check modelStorage.models[].include")
    dest.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(dest)
    verified: dict[str, str] = manifest.get("files", {}) if manifest.get("commit") == commit else {}
    todo = [f for f in wanted if not _present(dest, f, verified)]
    needed = sum(f.size for f in todo)
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise StorageError(
            f"{repo} needs {needed / 2**30:.1f} GiB more, the volume has {free / 2**30:.1f} GiB free: "
            "raise modelStorage.volumeSize"
        )
    print(
        f"{repo}@{commit[:12]}: {len(wanted) - len(todo)} of {len(wanted)} files present and verified, "
        f"downloading {len(todo)} ({needed / 2**30:.2f} GiB)",
        flush=True,
    )
    for file in todo:
        started = time.monotonic()
        _download(endpoint, repo, commit, file, dest, token)
        verified[file.name] = file.digest
        _write_manifest(dest, {"repo": repo, "commit": commit, "files": verified, "complete": False})
        seconds = time.monotonic() - started
        print(f"{file.name}: {file.size / 2**20:.1f} MiB verified in {seconds:.1f} s", flush=True)
    _write_manifest(dest, {"repo": repo, "commit": commit, "files": verified, "complete": True})
    print(f"{repo}@{commit[:12]}: complete in {dest}", flush=True)


def _present(dest: Path, file: RemoteFile, verified: dict[str, str]) -> bool:
    """Present means the right size and a hash already verified, or verified now (weights copied by hand)."""
    path = dest / file.name
    if not path.is_file() or path.stat().st_size != file.size:
        return False
    if verified.get(file.name) == file.digest:
        return True
    if _digest(path, file) == file.digest:
        verified[file.name] = file.digest
        return True
    return False


def _files(dest: Path) -> Iterator[Path]:
    for path in sorted(dest.rglob("*")):
        if path.is_file() and not path.name.endswith(PARTIAL) and path.name != MANIFEST:
            yield path


def warm(dest: Path, wait_seconds: float, threads: int) -> None:
    """Read every file once through this node's mount; waits for a complete download first when asked to."""
    deadline = time.monotonic() + wait_seconds
    while wait_seconds and not _read_manifest(dest).get("complete"):
        if time.monotonic() > deadline:
            raise StorageError(f"no complete download in {dest} after {wait_seconds:.0f} s: is the loader Job done?")
        time.sleep(10)
    paths = list(_files(dest))
    if not paths:
        raise StorageError(f"no files in {dest}: load the model first")
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(_read_all, paths))
    seconds = max(time.monotonic() - started, 1e-9)
    print(f"warmed {len(paths)} files, {total / 2**30:.2f} GiB in {seconds:.1f} s", flush=True)


def _read_all(path: Path) -> int:
    read = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            read += len(chunk)
    return read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("download", help="download and verify a model's files")
    get.add_argument("--repo", required=True, help="Hugging Face repository id, e.g. meta-llama/Llama-2-70b-chat-hf")
    get.add_argument("--revision", default="main")
    get.add_argument("--dest", type=Path, required=True)
    get.add_argument("--include", action="append", required=True, help="glob of files to fetch (repeatable)")
    hot = commands.add_parser("warm", help="read a model's files once on this node")
    hot.add_argument("--dest", type=Path, required=True)
    hot.add_argument("--wait-seconds", type=float, default=0.0, help="wait this long for a complete download")
    hot.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
            token = os.environ.get("HF_TOKEN") or None
            download(endpoint, args.repo, args.revision, args.dest, args.include, token)
        else:
            warm(args.dest, args.wait_seconds, args.threads)
    except StorageError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
