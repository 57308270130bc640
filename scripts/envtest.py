"""python -m scripts.envtest [--dir DIR]: pinned kube-apiserver, etcd and kubectl for tests/envtest.

Downloads controller-tools' envtest release for this OS and architecture (the tarballs `setup-envtest` uses),
checks its SHA-512 against the pin below before unpacking anything, and prints the folder to export as
KUBEBUILDER_ASSETS; an unpacked folder is reused. Standard library only, so it runs before any install.
"""

import argparse
import hashlib
import platform
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

# The newest envtest release listed in controller-tools' envtest-releases.yaml (no 1.37 yet for the 37.x client).
VERSION = "1.36.2"
RELEASES = "https://github.com/kubernetes-sigs/controller-tools/releases/download"
# SHA-512 (hex) of each tarball, copied from envtest-releases.yaml at kubernetes-sigs/controller-tools@2b2bbdfb.
SHA512 = {
    "linux-amd64": "ea743186c8a799f5cf8faf16969f86189d003cb7d130e0ac4b58789f1e5748dcf30ebe91c837a10d5ac415383da3e10b9e64d65785c938c23e739781cfb76f08",  # noqa: E501
    "linux-arm64": "2d72ee985a8e262a3c57dc9f7f0fd891f6a8c7bf7ebaa2db6dc6d8eac8ae28181afe51c1f368b67756cdb40b10de9b205609e1726e5f27f7c6d824dd9c6649ac",  # noqa: E501
    "darwin-amd64": "b4fe9f973cd1992e3880f8b230ed32c0c243b83371591e3e3315f4404df2cdbef8ee94eeb9bb245b7e5feb987d5c4a76c43e0877654ab73f00d7bbc2b9984514",  # noqa: E501
    "darwin-arm64": "9278f9e5af556b2f1f2d139769c1f0d717c7b4426917fdebdba898bcb725a916e4910d6160886194ff9be9589ea7c5c32c2b8ae0754703874b7c8ba8ddfc41ce",  # noqa: E501
}
BINARIES = ("etcd", "kube-apiserver", "kubectl")
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class EnvtestError(Exception):
    """A download that cannot be trusted or a platform without a pin: nothing is installed."""


def this_platform() -> str:
    """`os-arch` as the envtest tarballs name it, e.g. linux-amd64."""
    return f"{sys.platform}-{ARCHITECTURES.get(platform.machine().lower(), platform.machine())}"


def pinned(platform_name: str, base_url: str = RELEASES) -> tuple[str, str]:
    """The tarball's URL and SHA-512 for a platform; a clear error for one without a pin."""
    if platform_name not in SHA512:
        raise EnvtestError(f"no envtest binaries pinned for {platform_name}; pinned: {', '.join(SHA512)}")
    return f"{base_url}/envtest-v{VERSION}/envtest-v{VERSION}-{platform_name}.tar.gz", SHA512[platform_name]


def install(url: str, sha512: str, target: Path) -> Path:
    """Download, verify, then unpack the binaries flat into `target` (as setup-envtest lays them out)."""
    if all((target / b).is_file() for b in BINARIES):
        return target
    print(f"downloading {url}", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        archive = Path(work) / "envtest.tar.gz"
        digest = hashlib.sha512()
        with urllib.request.urlopen(url, timeout=120) as response, archive.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha512:
            raise EnvtestError(f"{url}: SHA-512 {digest.hexdigest()} is not the pinned {sha512}; nothing installed")
        unpacked = Path(work) / "bin"
        unpacked.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                source = tar.extractfile(member) if member.isfile() and name in BINARIES else None
                if source is not None:
                    with source, (unpacked / name).open("wb") as out:
                        shutil.copyfileobj(source, out)
                    (unpacked / name).chmod(0o755)
        missing = [b for b in BINARIES if not (unpacked / b).is_file()]
        if missing:
            raise EnvtestError(f"{url}: the archive lacks {', '.join(missing)}")
        shutil.rmtree(target, ignore_errors=True)  # a partial folder from an interrupted run
        unpacked.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.envtest", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("build/envtest"), help="cache folder")
    parser.add_argument("--base-url", default=RELEASES, help="a mirror of the controller-tools release downloads")
    args = parser.parse_args(argv)
    try:
        name = this_platform()
        url, sha512 = pinned(name, args.base_url)
        target = install(url, sha512, args.dir.resolve() / "k8s" / f"{VERSION}-{name}")
    except (EnvtestError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
