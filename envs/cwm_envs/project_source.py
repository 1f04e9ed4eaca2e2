"""A project's source tree, from a local folder or from PyPI (`pypi:NAME==VERSION`: its sdist).

The sdist is found through the package index's simple API (PEP 691 JSON), downloaded, checked against the
index's sha256 and unpacked here as data: nothing of the project runs on the host (`pip download` would
build the sdist's metadata, running its setup code). Only regular files and folders are kept: links,
devices and paths leaving the tree are dropped and counted, as task repositories hold regular files only.
"""

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile

from cwm_common.errors import CwmError

PYPI_SIMPLE = "https://pypi.org/simple"
PYPI_PREFIX = "pypi:"
# Never copied from a local project: version control, caches and build outputs.
_SKIPPED_DIRS = {".git", ".hg", ".tox", ".nox", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", "build"}
_TOP_ONLY = {"venv", "build"}  # skipped only at the project's root


def normalized(name: str) -> str:
    """A project name as the index spells it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def fetch_source(source: str, dest: str, index: str = PYPI_SIMPLE) -> dict:
    """The project's files in `dest` (made fresh); returns where they came from."""
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    if source.startswith(PYPI_PREFIX):
        return _fetch_sdist(source[len(PYPI_PREFIX) :], dest, index)
    if not os.path.isdir(source):
        raise CwmError(f"{source}: neither a project folder nor {PYPI_PREFIX}NAME==VERSION")
    dropped = _copy_tree(source, dest)
    return {"source": os.path.abspath(source), "dropped": dropped}


def _skipped(name: str, top: bool) -> bool:
    return name.endswith(".egg-info") or (name in _SKIPPED_DIRS and (top or name not in _TOP_ONLY))


def _copy_tree(source: str, dest: str) -> int:
    dropped = 0
    for root, dirs, files in os.walk(source):
        top = root == source  # `build` or `venv` deeper down can be a package (pypa/build's src/build)
        dirs[:] = sorted(d for d in dirs if not _skipped(d, top))
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not (os.path.isdir(path) or os.path.isfile(path)):
                dropped += 1
                if name in dirs:
                    dirs.remove(name)
                continue
            target = os.path.join(dest, os.path.relpath(path, source))
            if os.path.isdir(path):
                os.makedirs(target, exist_ok=True)
            else:
                shutil.copyfile(path, target)
    return dropped


def _fetch_sdist(spec: str, dest: str, index: str) -> dict:
    name, sep, version = spec.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise CwmError(f"{PYPI_PREFIX}{spec}: name the exact release, as {PYPI_PREFIX}NAME==VERSION")
    name, version = name.strip(), version.strip()
    url = f"{index.rstrip('/')}/{normalized(name)}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            listing = json.load(response)
    except (OSError, ValueError) as e:
        raise CwmError(f"{url}: could not read the index's file list ({e})") from None
    sdists = [f for f in listing.get("files", []) if _is_sdist_of(f["filename"], name, version) and not f.get("yanked")]
    if not sdists:
        raise CwmError(f"{PYPI_PREFIX}{spec}: the index lists no source distribution of {name} {version}")
    chosen = sdists[0]
    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, chosen["filename"])
        try:
            urllib.request.urlretrieve(chosen["url"], archive)
        except OSError as e:
            raise CwmError(f"{chosen['url']}: download failed ({e})") from None
        with open(archive, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        want = chosen.get("hashes", {}).get("sha256")
        if want and digest != want:
            raise CwmError(f"{chosen['filename']}: sha256 {digest} is not the index's {want}")
        dropped = _unpack(archive, dest)
    return {
        "source": f"{PYPI_PREFIX}{name}=={version}",
        "sdist": chosen["filename"],
        "sha256": digest,
        "dropped": dropped,
    }


def _is_sdist_of(filename: str, name: str, version: str) -> bool:
    stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
    project, _, release = stem.rpartition("-")
    return stem != filename and normalized(project) == normalized(name) and release == version


def _unpack(archive: str, dest: str) -> int:
    """The archive's single top folder's regular files into dest; returns how many entries were dropped."""
    members: list[tuple[str, bytes]] = []
    dropped = 0
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                mode = info.external_attr >> 16
                if mode and mode & 0o170000 not in (0, 0o100000):
                    dropped += 1
                    continue
                members.append((info.filename, z.read(info)))
    else:
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                if member.isdir():
                    continue
                if not member.isfile():
                    dropped += 1
                    continue
                extracted = t.extractfile(member)
                members.append((member.name, extracted.read() if extracted else b""))
    for path, data in members:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if len(parts) < 2 or ".." in parts or os.path.isabs(path):
            dropped += 1
            continue
        target = os.path.join(dest, *parts[1:])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
    return dropped
