"""The sandbox image, built without any registry: a tiny root filesystem imported with `docker import`.

The image holds only what must be real files (/etc basics, an empty /work and /tmp, a real /sbin for the
init process Docker injects); the system (/usr: Python, gcc, coreutils, git) is the host's, bind-mounted
read-only at run time. Users with a registry can build the equivalent from envs/docker/Dockerfile.
"""

import hashlib
import io
import os
import tarfile

import docker.client
import docker.errors

IMAGE = "cwm-sandbox"
_PASSWD = "root:x:0:0:root:/root:/bin/bash\nsandbox:x:65534:65534:sandbox:/work:/bin/bash\n"
_GROUP = "root:x:0:\nsandbox:x:65534:\n"


def _rootfs() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add_dir(name, mode=0o755, uid=0):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, uid
            tar.addfile(info)

        def add_file(name, data: bytes, mode=0o644):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        def add_link(name, target):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)

        for name in ("usr", "etc", "sbin", "proc", "dev", "sys", "root", "etc/alternatives"):
            add_dir(name)
        add_dir("tmp", 0o1777)
        add_dir("work", 0o1777)
        for link in ("bin", "lib", "lib64"):
            target = os.readlink(f"/{link}") if os.path.islink(f"/{link}") else f"usr/{link}"
            add_link(link, target)
        add_file("etc/passwd", _PASSWD.encode())
        add_file("etc/group", _GROUP.encode())
        if os.path.exists("/etc/ld.so.cache"):
            with open("/etc/ld.so.cache", "rb") as f:
                add_file("etc/ld.so.cache", f.read())
        if os.path.isdir("/etc/alternatives"):
            for entry in sorted(os.listdir("/etc/alternatives")):
                path = os.path.join("/etc/alternatives", entry)
                if os.path.islink(path):
                    add_link(f"etc/alternatives/{entry}", os.readlink(path))
    return buffer.getvalue()


def ensure_image(client: docker.client.DockerClient) -> str:
    """The image tag, importing it if this host does not have it yet (content-addressed by the rootfs)."""
    rootfs = _rootfs()
    tag = f"{IMAGE}:{hashlib.sha256(rootfs).hexdigest()[:12]}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        repository, version = tag.split(":")
        client.api.import_image_from_data(rootfs, repository=repository, tag=version)
    return tag
