"""Build container images in code and push them with the OCI distribution API.

An image is a list of :class:`Layer` (files as ``{path: entry}``) and :class:`EmptyStep`
(history-only steps such as ``ENV``). Entries are ``bytes`` (a regular file), :class:`File`,
:class:`Symlink`, :class:`Hardlink`, :data:`DIR`, :data:`WHITEOUT` (deletes ``path`` from
lower layers) or :data:`OPAQUE` (``path`` becomes an opaque directory). Layers can be gzip,
zstd or uncompressed; images OCI or Docker schema2; :func:`build_index` makes a multi-arch
OCI index or Docker manifest list. :func:`push` uploads blobs (monolithic or chunked) and
manifests, answering Basic and Bearer challenges itself. Everything is synchronous (urllib);
call it from async tests through ``asyncio.to_thread`` when a server in the same loop matters.

Also here: writers for real-format package databases (dpkg ``status``, apk ``installed``,
os-release) so image tests can put known packages in and check what comes out.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import ssl
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

LAYER_MEDIA_TYPES = {
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    # BuildKit writes this non-standard type for zstd without oci-mediatypes=true
    ("docker", "zstd"): "application/vnd.docker.image.rootfs.diff.tar.zstd",
    ("docker", "none"): "application/vnd.docker.image.rootfs.diff.tar",
}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- tar entries


@dataclass(frozen=True)
class File:
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Hardlink:
    target: str  # path inside the image, no leading slash


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755


@dataclass(frozen=True)
class Whiteout:
    """Deletes the path from the layers below (written as ``dir/.wh.name``)."""


@dataclass(frozen=True)
class Opaque:
    """The directory hides everything lower layers put in it (``dir/.wh..wh..opq``)."""


DIR = Dir()
WHITEOUT = Whiteout()
OPAQUE = Opaque()

Entry = bytes | File | Symlink | Hardlink | Dir | Whiteout | Opaque


def make_tar(files: Mapping[str, Entry], *, parents: bool = True) -> bytes:
    """An uncompressed tar of ``files`` in the given order (parent dirs added first)."""
    buf = io.BytesIO()
    written: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            if name in written:
                return
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            info.mtime = 1700000000
            tar.addfile(info)
            written.add(name)

        def add_parents(path: str) -> None:
            if not parents:
                return
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                add_dir("/".join(parts[:i]))

        for raw_path, entry in files.items():
            path = raw_path.strip("/")
            add_parents(path)
            if isinstance(entry, Whiteout):
                head, _, base = path.rpartition("/")
                name = f"{head}/.wh.{base}" if head else f".wh.{base}"
                info = tarfile.TarInfo(name)
                info.mtime = 1700000000
                tar.addfile(info, io.BytesIO(b""))
                continue
            if isinstance(entry, Opaque):
                add_dir(path)
                info = tarfile.TarInfo(f"{path}/.wh..wh..opq")
                info.mtime = 1700000000
                tar.addfile(info, io.BytesIO(b""))
                continue
            if isinstance(entry, Dir):
                add_dir(path, entry.mode)
                continue
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            if isinstance(entry, Symlink):
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            elif isinstance(entry, Hardlink):
                info.type = tarfile.LNKTYPE
                info.linkname = entry.target
                tar.addfile(info)
            else:
                file = entry if isinstance(entry, File) else File(entry)
                info.size = len(file.data)
                info.mode = file.mode
                tar.addfile(info, io.BytesIO(file.data))
            written.add(path)
    return buf.getvalue()


def raw_tar(members: Sequence[tuple[str, str, bytes | str]]) -> bytes:
    """A tar with names exactly as given (for ``../`` and absolute-path attacks).

    ``members``: (name, kind, payload) with kind "file" (payload bytes), "symlink" or
    "hardlink" (payload = link target), "dir".
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = payload if isinstance(payload, str) else payload.decode()
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                raise ValueError(f"unknown tar member kind {kind!r}")
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}")


# --------------------------------------------------------------------------- images


@dataclass
class Layer:
    """One filesystem layer.

    ``files`` is turned into a tar unless ``tar`` (uncompressed tar bytes) is given; ``blob``
    overrides the compressed bytes entirely (for truncated or hostile data) and then
    ``diff_id`` should be given too.
    """

    files: Mapping[str, Entry] = field(default_factory=dict)
    compression: str = "gzip"
    created_by: str = ""
    tar: bytes | None = None
    blob: bytes | None = None
    diff_id: str | None = None
    media_type: str | None = None

    def materialise(self, flavour: str) -> tuple[bytes, str, str]:
        """(blob bytes, media type, diffID)."""
        tar_bytes = self.tar if self.tar is not None else make_tar(self.files)
        blob = self.blob if self.blob is not None else compress(tar_bytes, self.compression)
        diff_id = self.diff_id or sha256_digest(tar_bytes)
        media_type = self.media_type or LAYER_MEDIA_TYPES[(flavour, self.compression)]
        return blob, media_type, diff_id


@dataclass
class EmptyStep:
    """A history entry without a layer (ENV, LABEL, CMD, ...)."""

    created_by: str


@dataclass
class BuiltImage:
    manifest: bytes
    media_type: str
    digest: str
    config: bytes
    config_digest: str
    blobs: dict[str, bytes]  # digest -> bytes, config included
    layer_digests: list[str]
    diff_ids: list[str]
    history: list[dict[str, Any]]
    platform: dict[str, str]

    @property
    def size(self) -> int:
        return len(self.manifest)


@dataclass
class BuiltIndex:
    manifest: bytes
    media_type: str
    digest: str
    children: list[BuiltImage | BuiltIndex]

    @property
    def size(self) -> int:
        return len(self.manifest)


def build_image(
    steps: Sequence[Layer | EmptyStep],
    *,
    flavour: str = "oci",
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    include_media_type: bool = True,
    config_extra: Mapping[str, Any] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
) -> BuiltImage:
    """Config (rootfs.diff_ids, history) and manifest for ``steps``; flavour "oci"/"docker"."""
    if flavour not in ("oci", "docker"):
        raise ValueError(f"unknown image flavour {flavour!r}")
    blobs: dict[str, bytes] = {}
    descriptors: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    history: list[dict[str, Any]] = []
    for step in steps:
        if isinstance(step, EmptyStep):
            history.append(
                {
                    "created": "2024-01-01T00:00:00Z",
                    "created_by": step.created_by,
                    "empty_layer": True,
                }
            )
            continue
        blob, media_type, diff_id = step.materialise(flavour)
        digest = sha256_digest(blob)
        blobs[digest] = blob
        descriptors.append({"mediaType": media_type, "size": len(blob), "digest": digest})
        diff_ids.append(diff_id)
        entry: dict[str, Any] = {"created": "2024-01-01T00:00:00Z"}
        if step.created_by:
            entry["created_by"] = step.created_by
        history.append(entry)
    platform = {"os": os, "architecture": architecture}
    if variant:
        platform["variant"] = variant
    config_obj: dict[str, Any] = {
        **platform,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    if config_extra:
        config_obj.update(config_extra)
    config = json.dumps(config_obj, separators=(",", ":")).encode()
    config_digest = sha256_digest(config)
    blobs[config_digest] = config
    media_type = OCI_MANIFEST if flavour == "oci" else DOCKER_MANIFEST
    manifest_obj: dict[str, Any] = {"schemaVersion": 2}
    if include_media_type or flavour == "docker":
        manifest_obj["mediaType"] = media_type
    manifest_obj["config"] = {
        "mediaType": OCI_CONFIG if flavour == "oci" else DOCKER_CONFIG,
        "size": len(config),
        "digest": config_digest,
    }
    manifest_obj["layers"] = descriptors
    if manifest_extra:
        manifest_obj.update(manifest_extra)
    manifest = json.dumps(manifest_obj, indent=2).encode()
    return BuiltImage(
        manifest=manifest,
        media_type=media_type,
        digest=sha256_digest(manifest),
        config=config,
        config_digest=config_digest,
        blobs=blobs,
        layer_digests=[d["digest"] for d in descriptors],
        diff_ids=diff_ids,
        history=history,
        platform=platform,
    )


def build_index(children: Sequence[BuiltImage | BuiltIndex], *, flavour: str = "oci") -> BuiltIndex:
    """A multi-arch OCI index or Docker manifest list over ``children`` (which may nest)."""
    media_type = OCI_INDEX if flavour == "oci" else DOCKER_LIST
    manifests = []
    for child in children:
        desc: dict[str, Any] = {
            "mediaType": child.media_type,
            "size": child.size,
            "digest": child.digest,
        }
        if isinstance(child, BuiltImage):
            desc["platform"] = dict(child.platform)
        manifests.append(desc)
    obj = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    data = json.dumps(obj, indent=2).encode()
    return BuiltIndex(data, media_type, sha256_digest(data), list(children))


# --------------------------------------------------------------------------- pushing


_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class Pusher:
    """Minimal distribution-API uploader (Basic and Bearer), for building test fixtures."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        ca_file: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.username = username
        self.password = password
        self._auth_header: str | None = None
        self._tokens: dict[str, str] = {}

    def _basic(self) -> str | None:
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _token(self, challenge: str, scope: str) -> str:
        if scope in self._tokens:
            return self._tokens[scope]
        params = dict(_CHALLENGE.findall(challenge))
        query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
        req = urllib.request.Request(f"{params['realm']}?{query}")
        basic = self._basic()
        if basic:
            req.add_header("Authorization", basic)
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        token = body.get("token") or body["access_token"]
        self._tokens[scope] = token
        return token

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        scope: str = "",
        ok: Iterable[int] = (200, 201, 202, 204),
    ) -> tuple[int, Mapping[str, str], bytes]:
        full = url if url.startswith("http") else self.base_url + url
        hdrs = dict(headers or {})
        for attempt in range(2):
            req = urllib.request.Request(full, data=data, method=method, headers=hdrs)
            if self._auth_header and "Authorization" not in hdrs:
                req.add_header("Authorization", self._auth_header)
            if scope in self._tokens:
                req.add_header("Authorization", "Bearer " + self._tokens[scope])
            try:
                with urllib.request.urlopen(req, timeout=120, context=self._ssl) as resp:
                    return resp.status, dict(resp.headers), resp.read()
            except urllib.error.HTTPError as exc:
                body = exc.read()
                if exc.code == 401 and attempt == 0:
                    challenge = exc.headers.get("WWW-Authenticate", "")
                    if challenge.lower().startswith("basic"):
                        self._auth_header = self._basic()
                    else:
                        self._token(challenge, scope)
                    continue
                if exc.code in set(ok):
                    return exc.code, dict(exc.headers), body
                raise RuntimeError(
                    f"{method} {full} -> {exc.code}: {body[:300].decode(errors='replace')}"
                ) from None
        raise RuntimeError(f"{method} {full}: still unauthorised")

    def blob_exists(self, repository: str, digest: str) -> bool:
        scope = f"repository:{repository}:pull,push"
        status, _, _ = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope, ok=(200, 404)
        )
        return status == 200

    def push_blob(
        self, repository: str, data: bytes, *, chunked: bool = False, chunk_size: int = 1 << 20
    ) -> str:
        digest = sha256_digest(data)
        scope = f"repository:{repository}:pull,push"
        if self.blob_exists(repository, digest):
            return digest
        _, headers, _ = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        location = urllib.parse.urljoin(self.base_url + "/", headers["Location"])
        if chunked:
            offset = 0
            while offset < len(data):
                chunk = data[offset : offset + chunk_size]
                _, headers, _ = self.request(
                    "PATCH",
                    location,
                    data=chunk,
                    scope=scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    },
                )
                location = urllib.parse.urljoin(self.base_url + "/", headers["Location"])
                offset += len(chunk)
            body = b""
        else:
            body = data
        sep = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            data=body,
            scope=scope,
            headers={"Content-Type": "application/octet-stream"},
        )
        return digest

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> None:
        self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            data=data,
            scope=f"repository:{repository}:pull,push",
            headers={"Content-Type": media_type},
        )


def push(
    base_url: str,
    repository: str,
    image: BuiltImage | BuiltIndex,
    *,
    tag: str | None = "latest",
    username: str | None = None,
    password: str | None = None,
    chunked: bool = False,
    pusher: Pusher | None = None,
    ca_file: str | None = None,
) -> str:
    """Upload ``image`` (and, for an index, every child) to ``repository``; returns its digest."""
    pusher = pusher or Pusher(base_url, username, password, ca_file=ca_file)
    if isinstance(image, BuiltIndex):
        for child in image.children:
            push(base_url, repository, child, tag=None, chunked=chunked, pusher=pusher)
    else:
        for data in image.blobs.values():
            pusher.push_blob(repository, data, chunked=chunked)
    pusher.push_manifest(repository, tag or image.digest, image.manifest, image.media_type)
    return image.digest


# --------------------------------------------------------------------------- package databases


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    arch: str = "amd64"
    source: str | None = None  # "src" or "src (1.2-3)"
    status: str = "install ok installed"
    maintainer: str = "Test Maintainer <test@example.org>"
    multi_arch: str | None = None


def dpkg_status(packages: Iterable[DebPackage]) -> bytes:
    """A ``/var/lib/dpkg/status`` file in dpkg's real paragraph format."""
    paragraphs = []
    for pkg in packages:
        lines = [
            f"Package: {pkg.name}",
            f"Status: {pkg.status}",
            "Priority: optional",
            "Section: misc",
            "Installed-Size: 123",
            f"Maintainer: {pkg.maintainer}",
            f"Architecture: {pkg.arch}",
        ]
        if pkg.multi_arch:
            lines.append(f"Multi-Arch: {pkg.multi_arch}")
        if pkg.source:
            lines.append(f"Source: {pkg.source}")
        lines += [
            f"Version: {pkg.version}",
            "Depends: libc6 (>= 2.34)",
            f"Description: test package {pkg.name}",
            " A package put in by the tests so the scanner has something to find.",
            " .",
            " Second paragraph of the long description.",
        ]
        paragraphs.append("\n".join(lines) + "\n")
    return "\n".join(paragraphs).encode()


@dataclass(frozen=True)
class ApkPackage:
    name: str
    version: str
    arch: str = "x86_64"
    origin: str | None = None
    license: str = "MIT"


def apk_installed(packages: Iterable[ApkPackage]) -> bytes:
    """A ``/lib/apk/db/installed`` file in apk's one-letter-field format."""
    blocks = []
    for pkg in packages:
        digest = base64.b64encode(hashlib.sha1(pkg.name.encode()).digest()).decode()
        lines = [
            f"C:Q1{digest}",
            f"P:{pkg.name}",
            f"V:{pkg.version}",
            f"A:{pkg.arch}",
            "S:12345",
            "I:45678",
            f"T:test package {pkg.name}",
            "U:https://example.org",
            f"L:{pkg.license}",
            f"o:{pkg.origin or pkg.name}",
            "m:Test Maintainer <test@example.org>",
            "t:1700000000",
            "c:0123456789abcdef0123456789abcdef01234567",
            "D:so:libc.musl-x86_64.so.1",
            "F:usr/bin",
            f"R:{pkg.name}",
            "a:0:0:755",
        ]
        blocks.append("\n".join(lines) + "\n")
    return ("\n".join(blocks) + "\n").encode()


def os_release(
    id: str,
    version_id: str,
    *,
    pretty_name: str | None = None,
    codename: str | None = None,
    id_like: str | None = None,
) -> bytes:
    lines = [
        f'PRETTY_NAME="{pretty_name or f"{id} {version_id}"}"',
        f'NAME="{id.capitalize()}"',
        f'VERSION_ID="{version_id}"',
        f"ID={id}",
    ]
    if codename:
        lines.append(f"VERSION_CODENAME={codename}")
    if id_like:
        lines.append(f"ID_LIKE={id_like}")
    return ("\n".join(lines) + "\n").encode()
