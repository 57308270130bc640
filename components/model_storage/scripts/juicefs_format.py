"""Create the bucket and format the JuiceFS volume once; a rerun never reformats an existing volume.

Runs in the format Job (and, unchanged, in the integration tests). Settings come from a folder holding the keys of
the JuiceFS Secret as files (`name`, `metaurl`, `storage`, `bucket`, `access-key`, `secret-key`, optional `envs`):
the Secret mounted as a volume. Standard library only: it runs on a plain Python image next to the juicefs binary.
Each failure ends with one line that says what is wrong and where to look.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

TIMEOUT_SECONDS = 10.0
NOT_FORMATTED = "not formatted"


class StorageError(Exception):
    """A failure the user can act on; its message is printed as the last line of the Job's log."""


def read_settings(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


# --- metadata engine: a minimal RESP client, enough to authenticate and read two settings ------------------------


def _encode(*args: str) -> bytes:
    out = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


def _reply(stream: Any) -> Any:
    line = stream.readline()
    if not line:
        raise StorageError("metadata engine closed the connection (is it a Redis-protocol server?)")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n").decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        return RedisError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == "-1" else stream.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [] if rest == "-1" else [_reply(stream) for _ in range(int(rest))]
    raise StorageError(f"metadata engine sent an unexpected reply {line[:40]!r} (is it a Redis-protocol server?)")


class RedisError(str):
    """An error reply, kept as a value so that callers decide whether it is fatal."""


def check_metadata_engine(metaurl: str) -> None:
    """Reachable, password accepted, database selectable, and keys never evicted (JuiceFS loses files otherwise)."""
    url = urlsplit(metaurl)
    where = f"{url.hostname}:{url.port or 6379}"
    try:
        raw = socket.create_connection((url.hostname or "", url.port or 6379), timeout=TIMEOUT_SECONDS)
    except OSError as error:
        raise StorageError(f"metadata engine {where} is unreachable: {error}") from None
    sock: socket.socket = (
        ssl.create_default_context().wrap_socket(raw, server_hostname=url.hostname) if url.scheme == "rediss" else raw
    )
    with sock, sock.makefile("rb") as stream:

        def call(*args: str) -> Any:
            sock.sendall(_encode(*args))
            return _reply(stream)

        if url.password:
            auth = call("AUTH", *([url.username] if url.username else []), url.password)
            if isinstance(auth, RedisError):
                raise StorageError(f"metadata engine {where} rejected the password: {auth}")
        database = url.path.strip("/") or "0"
        for reply in (call("SELECT", database), call("PING")):
            if isinstance(reply, RedisError):
                hint = " (no password configured?)" if "NOAUTH" in reply else ""
                raise StorageError(f"metadata engine {where} database {database}: {reply}{hint}")
        policy = call("CONFIG", "GET", "maxmemory-policy")
        # Managed Redis services often refuse CONFIG; then the operator's docs are the check.
        if isinstance(policy, list) and len(policy) == 2 and policy[1] != "noeviction":
            raise StorageError(f"metadata engine {where} has maxmemory-policy {policy[1]}: JuiceFS needs noeviction")


# --- object store: a signed HEAD or PUT of the bucket (AWS signature version 4) ---------------------------------


def _signed(method: str, url: str, access_key: str, secret_key: str, region: str) -> dict[str, str]:
    parts = urlsplit(url)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = hashlib.sha256(b"").hexdigest()
    headers = f"host:{parts.netloc}\nx-amz-content-sha256:{payload}\nx-amz-date:{now}\n"
    names = "host;x-amz-content-sha256;x-amz-date"
    canonical = "\n".join([method, quote(parts.path or "/", safe="/-_.~"), "", headers, names, payload])
    scope = f"{now[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", now, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (now[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": now,
        "x-amz-content-sha256": payload,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={names}, "
        f"Signature={signature}",
    }


def _bucket_request(method: str, settings: dict[str, str], region: str) -> int:
    bucket = settings["bucket"].rstrip("/")
    headers = _signed(method, bucket, settings["access-key"], settings["secret-key"], region)
    request = urllib.request.Request(bucket, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StorageError(f"object store {_endpoint(bucket)} is unreachable: {reason}") from None


def _endpoint(bucket: str) -> str:
    parts = urlsplit(bucket)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def ensure_bucket(settings: dict[str, str], create: bool, region: str) -> None:
    """The bucket exists before `juicefs format` (its own bucket creation fails on several S3 servers)."""
    bucket = settings["bucket"].rstrip("/")
    status = _bucket_request("HEAD", settings, region)
    if status in (401, 403):
        raise StorageError(f"object store rejected the access key for {bucket} (HTTP {status}): check the credentials")
    if status == 404 and not create:
        raise StorageError(f"bucket {bucket} does not exist: create it in the object store, then rerun")
    if status == 404:
        status = _bucket_request("PUT", settings, region)
        if status not in (200, 409):
            raise StorageError(f"could not create bucket {bucket} (HTTP {status})")
        print(f"created bucket {bucket}")
    elif status != 200:
        raise StorageError(f"object store answered HTTP {status} for bucket {bucket}")


# --- the volume ---------------------------------------------------------------------------------------------------


def _juicefs(
    juicefs: str, command: list[str], metaurl: str, env: dict[str, str], after: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run juicefs with the metadata password in META_PASSWORD, never on its command line."""
    url = urlsplit(metaurl)
    netloc = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
    if url.username:
        netloc = f"{url.username}@{netloc}"
    bare = urlunsplit((url.scheme, netloc, url.path, "", ""))
    environment = {**os.environ, **env, "META_PASSWORD": url.password or ""}
    return subprocess.run([juicefs, *command, bare, *after], env=environment, capture_output=True, text=True)


def format_once(settings: dict[str, str], juicefs: str) -> str:
    """Format the volume unless its metadata already holds one; returns what was done."""
    envs = json.loads(settings.get("envs") or "{}")
    status = _juicefs(juicefs, ["status"], settings["metaurl"], envs)
    if status.returncode == 0:
        existing = json.loads(status.stdout)["Setting"]["Name"]
        if existing != settings["name"]:
            raise StorageError(f"the metadata database holds volume '{existing}', not '{settings['name']}'")
        return f"volume '{existing}' is already formatted: nothing to do"
    if NOT_FORMATTED not in status.stderr + status.stdout:
        raise StorageError(f"juicefs status failed: {_last_line(status)}")
    command = ["format", "--storage", settings["storage"], "--bucket", settings["bucket"]]
    command += ["--access-key", settings["access-key"]]
    secret = {**envs, "SECRET_KEY": settings["secret-key"]}
    formatted = _juicefs(juicefs, command, settings["metaurl"], secret, (settings["name"],))
    if formatted.returncode != 0:
        raise StorageError(f"juicefs format failed: {_last_line(formatted)}")
    return f"formatted volume '{settings['name']}' on {settings['bucket']}"


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {result.returncode}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--settings", type=Path, required=True, help="folder with the JuiceFS Secret's keys")
    parser.add_argument("--juicefs", default="juicefs", help="the juicefs binary")
    parser.add_argument("--create-bucket", action="store_true", help="create the bucket when it is missing")
    parser.add_argument("--region", default="us-east-1", help="S3 region the requests are signed for")
    args = parser.parse_args(argv)
    try:
        settings = read_settings(args.settings)
        check_metadata_engine(settings["metaurl"])
        ensure_bucket(settings, args.create_bucket, args.region)
        print(format_once(settings, args.juicefs))
    except StorageError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
