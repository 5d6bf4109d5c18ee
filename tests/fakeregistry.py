"""A fake Chainguard registry (cgr.dev) for tests: a real HTTP server on loopback.

It speaks the part of cgr.dev that pinner uses, the way cgr.dev speaks it:

* ``GET /v2/`` answers 401 with a Bearer challenge naming ``<url>/token`` and ``<host:port>``
  (``anonymous=True``: 200, and the repositories that are not private need no token, as a
  ``docker-registry`` without auth).
* ``GET /token?service=..&scope=repository:<repo>:pull`` issues a token scoped to the repositories
  asked for; ``POST /token`` takes an OAuth2 ``refresh_token`` (or ``password``) grant, as Docker
  and containerd send when they hold an identity token.
* ``GET /v2/<repo>/_chainguard/history/<tag>?start=..&end=..`` answers the tag's history, oldest
  first, at most 1000 entries: the oldest 1000 of the window. A client that asks for a nightly tag
  without narrowing the window never sees the newest builds.
* ``HEAD``/``GET /v2/<repo>/manifests/<tag-or-digest>``: the tag points at its newest build.
* ``GET /v2/<repo>/referrers/<digest>`` (OCI 1.1): an index of the stored manifests whose
  ``subject`` is the digest, with their ``artifactType`` and annotations, ``artifactType=``
  filtering; ``referrers = False`` answers 404 instead, as a registry without the API does.

Tests add data (``add_history``, ``add_nightly``, ``load_fixture``), private repositories
(``add_private``), faults (``fail``, ``delay``, ``set_bad_payload``, ``misbehave``) and read
``requests``.

Hostile answers, written as raw bytes to the socket by ``misbehave(kind, times=,
path_contains=, method=, interval=)`` (the normal path of the handler is not involved):

* ``drip-headers``: the status line, then a header one byte every ``interval`` seconds.
* ``drip-body``: complete headers (``Content-Length: 1000000``), then the body one byte every
  ``interval`` seconds.
* ``endless``: a chunked body of blanks that never ends.
* ``huge-length``: ``Content-Length: 500000000``, and that many bytes as fast as they go.
* ``gzip-bomb``: ``Content-Encoding: gzip``, ~2 MB that inflate to 2 GiB of zeros.
* ``reset``: read the request, then close with ``SO_LINGER`` 0: the client gets a TCP RST.
* ``redirect-loop``: ``302`` with ``Location`` the request's own target, every time.

Each one stops by itself: when the client hangs up, when the registry stops, or after
``RAW_FAULT_SECONDS``. The token service can also answer a chosen token (``token_value``: a
control character, a NUL, non-ASCII, anything JSON can carry). Ties are data: ``add_history``
keeps entries with the same timestamp as they are.

It serves plain http unless given ``tls=make_certificates(tmp_path)``: then https, with a
certificate for ``127.0.0.1`` and ``localhost`` signed by a CA made for the test (trusted by
pointing ``SSL_CERT_FILE`` at ``ca_file``, as users trust a corporate CA). ``realm_url``
overrides the token realm its challenges name (by default its own ``/token``).

Deliberate simplifications, none of which pinner should rely on:

* The manifest body is a fixed empty index, so its sha256 is *not* the ``Docker-Content-Digest``.
* Timestamps in the data that are not RFC 3339 are served as given, never filtered out, and sort
  after all the others; the window bounds themselves must be RFC 3339 or the answer is 400.
* Credentials presented to ``/token`` are checked even for public repositories (Docker Hub and
  cgr.dev refuse a wrong password rather than ignore it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import secrets
import socket
import ssl
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "chainguard"
#: The real history API's page size; it has no cursor, only ``start``/``end``.
HISTORY_LIMIT = 1000
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"

#: No raw fault writes for longer than this: every loop in a test stops by itself.
RAW_FAULT_SECONDS = 30.0
Misbehaviour = Literal[
    "drip-headers", "drip-body", "endless", "huge-length", "gzip-bomb", "reset", "redirect-loop"
]
Order = Literal["oldest-first", "newest-first", "shuffled"]
TokenField = Literal["token", "access_token", "both"]
Entry = tuple[str, str]

_HISTORY_PATH = re.compile(r"/v2/(?P<repo>.+)/_chainguard/history/(?P<tag>[^/]+)")
_MANIFEST_PATH = re.compile(r"/v2/(?P<repo>.+)/manifests/(?P<reference>[^/]+)")
_BLOB_PATH = re.compile(r"/v2/(?P<repo>.+)/blobs/(?P<digest>[^/]+)")
_REFERRERS_PATH = re.compile(r"/v2/(?P<repo>.+)/referrers/(?P<digest>sha256:[0-9a-f]{64})")
_RFC3339 = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_KEYS = ("updateTimestamp", "digest")
_LEGACY_KEYS = ("UpdateTimestamp", "Digest")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHUTDOWN_POLL_SECONDS = 0.01


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch; ValueError unless ``text`` is RFC 3339 with an offset."""
    # Integer nanoseconds, not datetime: the API has up to 9 fraction digits and datetime keeps 6,
    # so inclusive bounds would be off by up to 999 ns. The offset is mandatory, as in Go's
    # time.RFC3339, which is what the real endpoint parses with.
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    offset = match["offset"].upper()
    whole = datetime.fromisoformat(
        f"{match['date']}T{match['time']}{'+00:00' if offset == 'Z' else offset}"
    )
    since_epoch = whole - _EPOCH
    seconds = since_epoch.days * 86_400 + since_epoch.seconds
    return seconds * 1_000_000_000 + int((match["fraction"] or "").ljust(9, "0"))


def format_rfc3339(moment: datetime, fraction_digits: int = 3) -> str:
    """``moment`` in UTC with a ``Z`` and exactly ``fraction_digits`` (0-9); naive means UTC."""
    if not 0 <= fraction_digits <= 9:
        raise ValueError(f"fraction_digits must be 0 to 9, not {fraction_digits}")
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    fraction = f"{utc.microsecond:06d}000"[:fraction_digits]
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def nightly_digest(repo: str, tag: str, index: int) -> str:
    """The digest ``add_nightly`` gives build number ``index`` of ``repo:tag``."""
    return "sha256:" + hashlib.sha256(f"{repo}:{tag}:{index}".encode()).hexdigest()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, with the status it answered."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased
    form: Mapping[str, str]
    status: int
    scopes: tuple[str, ...] = ()  # every scope= of a token request (query holds the last)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass(frozen=True)
class Certificates:
    """PEM files from ``make_certificates``: the CA to trust, and the server's key pair."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(
    directory: str | Path, names: Sequence[str] = ("127.0.0.1", "localhost")
) -> Certificates:
    """A CA and a server certificate it signs for ``names`` (IP addresses or DNS names).

    A real CA, not a self-signed leaf: verifiers (Python 3.13's VERIFY_X509_STRICT among them)
    want the extensions RFC 5280 asks of each, and this is the corporate-CA set-up users have.
    EC keys, so that making them costs milliseconds.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinner test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _key_usage(*, cert_sign: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class _Entry:
    timestamp: str
    digest: str
    instant: int | None  # None when the timestamp is deliberately not RFC 3339

    @classmethod
    def of(cls, timestamp: str, digest: str) -> _Entry:
        try:
            instant: int | None = parse_rfc3339_ns(timestamp)
        except ValueError:
            instant = None
        return cls(timestamp, digest, instant)

    def sort_key(self) -> tuple[bool, int]:
        return (self.instant is None, self.instant or 0)

    def within(self, start: int | None, end: int | None) -> bool:
        if self.instant is None:
            return True
        return (start is None or start <= self.instant) and (end is None or self.instant <= end)


@dataclass
class _TagHistory:
    entries: list[_Entry] = field(default_factory=list)
    order: Order = "oldest-first"
    legacy_keys: bool = False
    bad_payload: bytes | None = None

    def newest_digest(self) -> str | None:
        ordered = sorted(self.entries, key=_Entry.sort_key)
        return ordered[-1].digest if ordered else None


@dataclass(frozen=True)
class _Realm:
    """A private repository prefix and the credentials that open it."""

    prefix: str
    username: str | None
    password: str | None
    refresh_tokens: frozenset[str]
    registry_tokens: frozenset[str]

    def covers(self, repo: str) -> bool:
        return repo == self.prefix or repo.startswith(self.prefix + "/")

    def accepts(self, username: str, password: str) -> bool:
        if self.username is not None and (username, password) == (self.username, self.password):
            return True
        # An identity token or a registry token also works as a Basic password (as
        # docker-credential-cgr hands it to clients that cannot do the POST grant).
        return password in self.refresh_tokens or password in self.registry_tokens


@dataclass
class _Fault:
    remaining: int
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    path_contains: str | None


@dataclass
class _Delay:
    remaining: int
    seconds: float
    path_contains: str | None


@dataclass
class _Misbehave:
    remaining: int
    kind: Misbehaviour
    interval: float
    path_contains: str | None
    method: str | None


_Rule = TypeVar("_Rule", _Fault, _Delay, _Misbehave)


class FakeRegistry:
    """A cgr.dev look-alike; ``with FakeRegistry() as registry:`` serves it on 127.0.0.1."""

    def __init__(
        self,
        *,
        token_field: TokenField = "token",
        basic_reject_status: int = 401,
        accept_post_token: bool = True,
        strict_orgs: bool = False,
        history_limit: int = HISTORY_LIMIT,
        tls: Certificates | None = None,
        realm_url: str | None = None,
        token_value: str | None = None,
        grant_scopes: int | None = None,
        max_scopes: int | None = None,
        anonymous: bool = False,
    ) -> None:
        # Options are plain attributes: a test may change them while the server runs
        # (except ``tls``, read when it starts).
        self.token_field: TokenField = token_field
        self.basic_reject_status = basic_reject_status
        self.accept_post_token = accept_post_token
        self.strict_orgs = strict_orgs
        self.history_limit = history_limit
        self.tls = tls
        self.realm_url = realm_url
        self.token_value = token_value  # when set, /token answers this instead of a real token
        # Serve the OCI 1.1 referrers API (off: a registry without it answers 404, as
        # distribution 2.8 does).
        self.referrers = True
        # A token service that reads only the first grant_scopes scopes of a request (the
        # token covers those alone), or that refuses (400) a request with more than max_scopes.
        self.grant_scopes = grant_scopes
        self.max_scopes = max_scopes
        # A registry without auth (docker-registry's default): /v2/ answers 200, and every
        # repository but the private ones is read without a token.
        self.anonymous = anonymous
        self._lock = threading.RLock()
        self._histories: dict[tuple[str, str], _TagHistory] = {}
        # Content stored by put_manifest / put_blob / put_tag: (repo, digest) -> (type, body).
        self._manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._blobs: dict[tuple[str, str], bytes] = {}
        self._tags: dict[tuple[str, str], str] = {}  # plain tags (cosign's sha256-<hex>.att)
        self._realms: list[_Realm] = []
        self._tokens: dict[str, frozenset[str]] = {}
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._misbehaviours: list[_Misbehave] = []
        self._log: list[RecordedRequest] = []
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeRegistry:
        if self._server is not None:
            raise RuntimeError("fake registry already started")
        self._closing.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name=f"fake-registry-{self.host}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._closing.set()  # wakes handlers sleeping in a delay()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the Bearer ``service`` and the registry part of references."""
        if self._server is None:
            raise RuntimeError("fake registry not started")
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{'http' if self.tls is None else 'https'}://{self.host}"

    # -- data --------------------------------------------------------------------------------

    def add_history(
        self,
        repo: str,
        tag: str,
        entries: Iterable[Entry],
        *,
        order: Order | None = None,
        legacy_keys: bool | None = None,
    ) -> None:
        """Append ``(timestamp, digest)`` entries, kept verbatim; None options stay as they were."""
        with self._lock:
            history = self._histories.setdefault((repo, tag), _TagHistory())
            history.entries.extend(_Entry.of(ts, digest) for ts, digest in entries)
            if order is not None:
                history.order = order
            if legacy_keys is not None:
                history.legacy_keys = legacy_keys

    def add_nightly(
        self,
        repo: str,
        tag: str,
        count: int,
        start: datetime,
        step: timedelta = timedelta(days=1),
        fraction_digits: int = 3,
        *,
        order: Order | None = None,
        legacy_keys: bool | None = None,
    ) -> list[Entry]:
        """Add ``count`` builds ``step`` apart from ``start``; returns them, oldest first."""
        with self._lock:
            first = len(self._histories.get((repo, tag), _TagHistory()).entries)
            builds = [
                (
                    format_rfc3339(start + i * step, fraction_digits),
                    nightly_digest(repo, tag, first + i),
                )
                for i in range(count)
            ]
            self.add_history(repo, tag, builds, order=order, legacy_keys=legacy_keys)
        return builds

    def put_manifest(self, repo: str, body: bytes, media_type: str) -> str:
        """Store a manifest or index under its own digest (served by GET and HEAD by digest,
        exactly these bytes); returns the digest. A tag history may then name it."""
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        with self._lock:
            self._manifests[(repo, digest)] = (media_type, body)
        return digest

    def put_blob(self, repo: str, data: bytes) -> str:
        """Store a blob (a config, a layer, an attestation) under its digest; returns it."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._lock:
            self._blobs[(repo, digest)] = data
        return digest

    def put_tag(self, repo: str, tag: str, digest: str) -> None:
        """Point a plain tag (one without a history, as cosign's ``.att`` tags) at a stored
        manifest."""
        with self._lock:
            self._tags[(repo, tag)] = digest

    def put_image(self, repo: str, platform: str, seed: str = "x") -> str:
        """A small OCI image for ``platform`` (``os/arch[/variant]``): its config blob names the
        platform, its one layer is seed-derived bytes. Returns the manifest's digest."""
        os_, arch, *variant = platform.split("/")
        config: dict[str, object] = {"os": os_, "architecture": arch, "rootfs": {}}
        if variant:
            config["variant"] = variant[0]
        config_bytes = json.dumps(config, sort_keys=True).encode()
        layer = hashlib.sha256(f"{seed}/{platform}".encode()).digest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": _descriptor(
                "application/vnd.oci.image.config.v1+json",
                config_bytes,
                self.put_blob(repo, config_bytes),
            ),
            "layers": [
                _descriptor(
                    "application/vnd.oci.image.layer.v1.tar", layer, self.put_blob(repo, layer)
                )
            ],
        }
        body = json.dumps(manifest, sort_keys=True).encode()
        return self.put_manifest(repo, body, OCI_MANIFEST_MEDIA_TYPE)

    def put_index(
        self,
        repo: str,
        platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
        seed: str = "x",
    ) -> tuple[str, dict[str, str]]:
        """One image per platform and an OCI index over them, as Chainguard publishes; returns
        the index digest and each platform's manifest digest."""
        children: dict[str, str] = {}
        entries: list[dict[str, object]] = []
        for platform in platforms:
            digest = children[platform] = self.put_image(repo, platform, seed)
            media_type, body = self._manifests[(repo, digest)]
            os_, arch, *variant = platform.split("/")
            fields = {"os": os_, "architecture": arch}
            if variant:
                fields["variant"] = variant[0]
            entries.append(
                {"mediaType": media_type, "digest": digest, "size": len(body), "platform": fields}
            )
        index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries}
        body = json.dumps(index, sort_keys=True).encode()
        return self.put_manifest(repo, body, INDEX_MEDIA_TYPE), children

    def load_fixture(
        self, path: str | Path, *, order: Order | None = None, legacy_keys: bool | None = None
    ) -> list[Entry]:
        """Add ``{"repository", "tag", "history"}`` from ``path`` (or from FIXTURES_DIR)."""
        file = Path(path)
        if not file.is_file():
            file = FIXTURES_DIR / path
        document = json.loads(file.read_text(encoding="utf-8"))
        entries = [
            (_either(item, "updateTimestamp"), _either(item, "digest"))
            for item in document["history"]
        ]
        self.add_history(
            document["repository"], document["tag"], entries, order=order, legacy_keys=legacy_keys
        )
        return entries

    def add_private(
        self,
        repo_prefix: str,
        username: str | None = None,
        password: str | None = None,
        *,
        refresh_token: str | None = None,
        registry_token: str | None = None,
    ) -> None:
        """Make ``repo_prefix`` and everything below it need one of these credentials.

        ``refresh_token`` is an identity token for the ``POST /token`` refresh grant;
        ``registry_token`` is accepted as a Bearer on the API itself, without ``/token``.
        """
        realm = _Realm(
            prefix=repo_prefix.strip("/"),
            username=username,
            password=password,
            refresh_tokens=frozenset({refresh_token} if refresh_token else ()),
            registry_tokens=frozenset({registry_token} if registry_token else ()),
        )
        with self._lock:
            self._realms.append(realm)

    def revoke_tokens(self) -> None:
        """Forget every token issued so far, as if they had all expired."""
        with self._lock:
            self._tokens.clear()

    # -- faults ------------------------------------------------------------------------------

    def fail(
        self,
        times: int,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with this instead of the real answer.

        ``path_contains`` is matched against the raw request target, query string included.
        """
        data = body.encode() if isinstance(body, str) else body
        fault = _Fault(times, status, tuple((headers or {}).items()), data, path_contains)
        with self._lock:
            self._faults.append(fault)

    def delay(self, seconds: float, times: int = 1, path_contains: str | None = None) -> None:
        """Sleep ``seconds`` before answering the next ``times`` matching requests."""
        with self._lock:
            self._delays.append(_Delay(times, seconds, path_contains))

    def misbehave(
        self,
        kind: Misbehaviour,
        *,
        times: int = 1,
        path_contains: str | None = None,
        method: str | None = None,
        interval: float = 0.05,
    ) -> None:
        """Answer the next ``times`` matching requests (of ``method``, if given) with a hostile
        answer (see the module doc)."""
        with self._lock:
            self._misbehaviours.append(_Misbehave(times, kind, interval, path_contains, method))

    def set_bad_payload(self, repo: str, tag: str, body: bytes | None) -> None:
        """Serve ``body`` verbatim, with 200, as the history of ``repo:tag``; None undoes it."""
        with self._lock:
            self._histories.setdefault((repo, tag), _TagHistory()).bad_payload = body

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the log, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_to(self, path_contains: str) -> list[RecordedRequest]:
        return [r for r in self.requests if path_contains in r.path]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- serving -----------------------------------------------------------------------------

    def _respond(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[_Reply, float, _Misbehave | None]:
        """The reply to one request, how long to sleep before sending it, and the hostile
        answer to write instead, if any."""
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
        with self._lock:
            wait = _take(self._delays, target)
            raw = _take(self._misbehaviours, target, method)
            fault = _take(self._faults, target) if raw is None else None
            if raw is not None and raw.kind == "redirect-loop":
                reply, raw = _Reply(302, (("Location", target),)), None
            elif raw is not None:
                reply = _Reply(0 if raw.kind == "reset" else 200)  # 0: no answer at all
            elif fault is not None:
                reply = _Reply(fault.status, fault.headers, fault.body)
            else:
                reply = self._route(method, path, query, form, headers)
            self._log.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    query={k: v[-1] for k, v in query.items()},
                    headers=dict(headers),
                    form={k: v[-1] for k, v in form.items()},
                    status=reply.status,
                    scopes=tuple(query.get("scope", [])),
                )
            )
        return reply, (wait.seconds if wait is not None else 0.0), raw

    def _route(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        form: Mapping[str, list[str]],
        headers: Mapping[str, str],
    ) -> _Reply:
        reading = method in ("GET", "HEAD")
        if path in ("/v2/", "/v2"):
            return self._ping(headers) if reading else _method_not_allowed()
        if path == "/token":
            if method == "GET":
                return self._token_by_get(query, headers)
            if method == "POST" and self.accept_post_token:
                return self._token_by_post(form)
            return _method_not_allowed()
        if match := _HISTORY_PATH.fullmatch(path):
            if not reading:
                return _method_not_allowed()
            return self._history(match["repo"], match["tag"], query, headers)
        if self.referrers and (match := _REFERRERS_PATH.fullmatch(path)):
            if not reading:
                return _method_not_allowed()
            return self._referrers(match["repo"], match["digest"], query, headers)
        if match := _MANIFEST_PATH.fullmatch(path):
            if not reading:
                return _method_not_allowed()
            return self._manifest(match["repo"], match["reference"], headers)
        if match := _BLOB_PATH.fullmatch(path):
            if not reading:
                return _method_not_allowed()
            return self._blob(match["repo"], match["digest"], headers)
        return _error(404, "NOT_FOUND", f"no route for {path}")

    def _ping(self, headers: Mapping[str, str]) -> _Reply:
        if self.anonymous:
            return _json(200, {})
        token = _bearer(headers)
        if token is not None and (
            token in self._tokens or any(token in r.registry_tokens for r in self._realms)
        ):
            return _json(200, {})
        return self._challenge(None)

    def _token_by_get(self, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> _Reply:
        repos = _requested_repos(query.get("scope", []))
        if self.max_scopes is not None and len(repos) > self.max_scopes:
            return _error(400, "UNSUPPORTED", "too many scopes")
        repos = repos[: self.grant_scopes]
        if refusal := self._refuse_unknown_orgs(repos):
            return refusal
        credentials = _basic_credentials(headers)
        if credentials is None:
            private = [repo for repo in repos if self._is_private(repo)]
            if private:
                return _error(401, "UNAUTHORIZED", f"authentication required for {private[0]}")
        else:
            realms = [r for r in self._realms if r.accepts(*credentials)]
            if not self._realms_open(realms, repos):
                return self._bad_credentials()
        token = self._issue(repos)
        body: dict[str, str] = {}
        if self.token_field in ("token", "both"):
            body["token"] = token
        if self.token_field in ("access_token", "both"):
            body["access_token"] = token
        return _json(200, body)

    def _token_by_post(self, form: Mapping[str, list[str]]) -> _Reply:
        # The OAuth2 form Docker and containerd POST when they hold an identity token:
        # https://distribution.github.io/distribution/spec/auth/oauth/
        fields = {k: v[-1] for k, v in form.items()}
        repos = _requested_repos(form.get("scope", []))
        if refusal := self._refuse_unknown_orgs(repos):
            return refusal
        grant = fields.get("grant_type")
        if grant == "refresh_token":
            secret = fields.get("refresh_token", "")
            realms = [r for r in self._realms if secret in r.refresh_tokens]
        elif grant == "password":
            user, password = fields.get("username", ""), fields.get("password", "")
            realms = [r for r in self._realms if r.accepts(user, password)]
        else:
            return _json(400, {"error": "unsupported_grant_type"})
        if not self._realms_open(realms, repos):
            return _error(401, "UNAUTHORIZED", "invalid grant")
        return _json(200, {"access_token": self._issue(repos)})

    def _history(
        self, repo: str, tag: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> _Reply:
        if not self._authorised(headers, repo):
            return self._challenge(repo)
        history = self._histories.get((repo, tag))
        if history is None:
            return self._unknown(repo)
        if history.bad_payload is not None:
            return _Reply(200, (("Content-Type", "application/json"),), history.bad_payload)
        try:
            start, end = _bound(query, "start"), _bound(query, "end")
        except ValueError as e:
            return _error(400, "BAD_REQUEST", str(e))
        window = sorted((e for e in history.entries if e.within(start, end)), key=_Entry.sort_key)
        page = _reorder(window[: self.history_limit], history.order, seed=f"{repo}:{tag}")
        stamp, digest = _LEGACY_KEYS if history.legacy_keys else _KEYS
        return _json(200, {"history": [{stamp: e.timestamp, digest: e.digest} for e in page]})

    def _manifest(self, repo: str, reference: str, headers: Mapping[str, str]) -> _Reply:
        if not self._authorised(headers, repo):
            return self._challenge(repo)
        stored = self._stored_manifest(repo, reference)
        if stored is not None:
            media_type, content = stored
            address = "sha256:" + hashlib.sha256(content).hexdigest()
            return _Reply(
                200, (("Content-Type", media_type), ("Docker-Content-Digest", address)), content
            )
        tags = {tag: h for (name, tag), h in self._histories.items() if name == repo}
        if not tags:
            return self._unknown(repo)
        if ":" in reference:
            known = any(e.digest == reference for h in tags.values() for e in h.entries)
            digest = reference if known else None
        else:
            history = tags.get(reference)
            digest = history.newest_digest() if history is not None else None
        if digest is None:
            return self._unknown(repo)
        # A fixed body: its own sha256 is not `digest`, which is fine for "is it there" checks.
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
        ).encode()
        return _Reply(
            200, (("Content-Type", INDEX_MEDIA_TYPE), ("Docker-Content-Digest", digest)), body
        )

    def _referrers(
        self, repo: str, digest: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> _Reply:
        """OCI 1.1 ``GET /v2/<repo>/referrers/<digest>``: an index of the stored manifests whose
        ``subject`` is *digest*, each with its artifactType (else its config's media type) and
        annotations; ``artifactType=`` filters, and ``OCI-Filters-Applied`` says so."""
        if not self._authorised(headers, repo):
            return self._challenge(repo)
        wanted = query.get("artifactType", [])
        entries: list[dict[str, object]] = []
        for (name, address), (media_type, body) in sorted(self._manifests.items()):
            if name != repo:
                continue
            document = json.loads(body)
            subject = document.get("subject") if isinstance(document, dict) else None
            if not isinstance(subject, dict) or subject.get("digest") != digest:
                continue
            config = document.get("config") or {}
            artifact = document.get("artifactType") or config.get("mediaType", "")
            if wanted and artifact not in wanted:
                continue
            entry: dict[str, object] = {
                "mediaType": media_type,
                "digest": address,
                "size": len(body),
                "artifactType": artifact,
            }
            if document.get("annotations"):
                entry["annotations"] = document["annotations"]
            entries.append(entry)
        index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries}
        headers_out: tuple[tuple[str, str], ...] = (("Content-Type", INDEX_MEDIA_TYPE),)
        if wanted:
            headers_out += (("OCI-Filters-Applied", "artifactType"),)
        return _Reply(200, headers_out, json.dumps(index).encode())

    def _stored_manifest(self, repo: str, reference: str) -> tuple[str, bytes] | None:
        """A manifest put_manifest stored, by digest, by plain tag, or as the newest build of a
        tag history that names a stored manifest."""
        if ":" in reference:
            return self._manifests.get((repo, reference))
        digest = self._tags.get((repo, reference))
        if digest is None and (history := self._histories.get((repo, reference))) is not None:
            digest = history.newest_digest()
        return None if digest is None else self._manifests.get((repo, digest))

    def _blob(self, repo: str, digest: str, headers: Mapping[str, str]) -> _Reply:
        if not self._authorised(headers, repo):
            return self._challenge(repo)
        data = self._blobs.get((repo, digest))
        if data is None:
            return _error(404, "BLOB_UNKNOWN", f"blob unknown: {digest}")
        return _Reply(
            200,
            (("Content-Type", "application/octet-stream"), ("Docker-Content-Digest", digest)),
            data,
        )

    # -- auth --------------------------------------------------------------------------------

    def _is_private(self, repo: str) -> bool:
        return any(realm.covers(repo) for realm in self._realms)

    def _realms_open(self, realms: Sequence[_Realm], repos: Sequence[str]) -> bool:
        """Whether credentials valid for ``realms`` may pull every one of ``repos``."""
        if not realms:
            return False
        private = [repo for repo in repos if self._is_private(repo)]
        return all(any(realm.covers(repo) for realm in realms) for repo in private)

    def _issue(self, repos: Sequence[str]) -> str:
        token = self.token_value or "fake-" + secrets.token_urlsafe(18)
        self._tokens[token] = frozenset(repos)
        return token

    def _authorised(self, headers: Mapping[str, str], repo: str) -> bool:
        if self.anonymous and not self._is_private(repo):
            return True
        token = _bearer(headers)
        if token is None:
            return False
        if repo in self._tokens.get(token, frozenset()):
            return True
        return any(token in r.registry_tokens and r.covers(repo) for r in self._realms)

    def _refuse_unknown_orgs(self, repos: Sequence[str]) -> _Reply | None:
        if not self.strict_orgs:
            return None
        known = {repo.split("/")[0] for repo, _ in self._histories}
        known |= {realm.prefix.split("/")[0] for realm in self._realms}
        for repo in repos:
            if repo.split("/")[0] not in known:
                return _error(400, "NAME_INVALID", f"unknown organization in {repo!r}")
        return None

    def _bad_credentials(self) -> _Reply:
        if self.basic_reject_status == 403:
            return _error(403, "DENIED", "requested access to the resource is denied")
        return _error(self.basic_reject_status, "UNAUTHORIZED", "invalid username or password")

    def _challenge(self, repo: str | None) -> _Reply:
        realm = self.realm_url if self.realm_url is not None else f"{self.url}/token"
        value = f'Bearer realm="{realm}",service="{self.host}"'
        if repo is not None:
            value += f',scope="repository:{repo}:pull"'
        reply = _error(401, "UNAUTHORIZED", "authentication required")
        return _Reply(401, (*reply.headers, ("WWW-Authenticate", value)), reply.body)

    def _unknown(self, repo: str) -> _Reply:
        # The distribution spec's codes: NAME_UNKNOWN for the repository, else MANIFEST_UNKNOWN.
        if any(name == repo for name, _ in self._histories):
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        return _error(404, "NAME_UNKNOWN", "repository name not known to registry")


def _take(rules: list[_Rule], target: str, method: str | None = None) -> _Rule | None:
    """Consume one use of the first rule (a _Fault, _Delay or _Misbehave) that matches
    ``target`` (and ``method``, for a rule that names one)."""
    for rule in rules:
        if getattr(rule, "method", None) not in (None, method):
            continue
        if rule.remaining > 0 and (rule.path_contains is None or rule.path_contains in target):
            rule.remaining -= 1
            return rule
    return None


def _either(item: Mapping[str, str], key: str) -> str:
    """``item[key]``, or the legacy capitalised key an older API answered with."""
    return item[key] if key in item else item[key[0].upper() + key[1:]]


def _requested_repos(scopes: Iterable[str]) -> list[str]:
    # Clients may repeat `scope=` or put several scopes in one, space-separated (distribution
    # token spec). Scopes that do not ask to pull a repository grant nothing here.
    repos = []
    for value in scopes:
        for scope in value.split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and name and {"pull", "*"} & set(actions.split(",")):
                repos.append(name)
    return repos


def _bound(query: Mapping[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values or not values[-1]:
        return None
    return parse_rfc3339_ns(values[-1])


def _reorder(entries: list[_Entry], order: Order, seed: str) -> list[_Entry]:
    if order == "newest-first":
        return entries[::-1]
    if order == "shuffled":
        shuffled = list(entries)
        random.Random(seed).shuffle(shuffled)
        if len(shuffled) > 1 and shuffled == entries:  # a test of "shuffled" must see disorder
            shuffled = shuffled[1:] + shuffled[:1]
        return shuffled
    return entries


def _authorization(headers: Mapping[str, str], scheme: str) -> str | None:
    given, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if given.lower() == scheme else None


def _bearer(headers: Mapping[str, str]) -> str | None:
    return _authorization(headers, "bearer")


def _basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    value = _authorization(headers, "basic")
    if value is None:
        return None
    try:
        username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error and UnicodeDecodeError: garbage is wrong credentials
        return ("", "")
    return (username, password)


def _descriptor(media_type: str, data: bytes, digest: str) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _json(status: int, document: object) -> _Reply:
    body = json.dumps(document, separators=(",", ":")).encode()
    return _Reply(status, (("Content-Type", "application/json"),), body)


def _error(status: int, code: str, message: str) -> _Reply:
    return _json(status, {"errors": [{"code": code, "message": message}]})


def _method_not_allowed() -> _Reply:
    return _error(405, "UNSUPPORTED", "method not allowed")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a client opening dozens of connections at once
    # (as pin does, one per lookup) would see SYNs dropped and retried a second later, which
    # no real registry does.
    request_queue_size = 128

    def __init__(self, registry: FakeRegistry) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.registry = registry
        self.tls = None if registry.tls is None else registry.tls.server_context()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.tls is None:
            return connection, address
        # The handshake happens in the handler's thread (see _Handler.setup), so a client that
        # stalls in it or rejects the certificate does not hold up the accept loop.
        wrapped = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        # Keep-alive handler threads block reading the next request; end them on stop().
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                # The plain socket's shutdown, also for TLS ones: SSLSocket.shutdown would drop
                # the TLS state under the thread still reading from it.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out (see delay()) hangs up before the reply: the test working.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as cgr.dev; every reply has a Content-Length
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK holds the
    # body back ~40 ms per request.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        self.server.track(self.request, True)
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().setup()
        except BaseException:
            self.server.track(self.request, False)
            raise

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: FakeRegistry.requests is the log."""

    def do_GET(self) -> None:
        self._answer()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        registry = self.server.registry
        reply, wait, raw = registry._respond(self.command, self.path, headers, body)
        if wait and registry._closing.wait(wait):
            self.close_connection = True  # stopped while sleeping: nobody wants the answer
            return
        if raw is not None:
            self.close_connection = True
            with suppress(OSError):  # the client hung up: what these faults wait for
                self._misbehave(raw, registry._closing)
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _misbehave(self, fault: _Misbehave, closing: threading.Event) -> None:
        """Write a hostile answer (see the module doc) as raw bytes."""
        deadline = time.monotonic() + RAW_FAULT_SECONDS

        def going() -> bool:
            return not closing.is_set() and time.monotonic() < deadline

        def drip(data: bytes) -> None:
            for byte in data:
                if not going():
                    return
                self.wfile.write(bytes([byte]))
                time.sleep(fault.interval)

        out = self.wfile
        if fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif fault.kind == "drip-headers":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            drip(b"X-Drip: " + b"." * 100_000)
        elif fault.kind == "drip-body":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            drip(b" " * 1_000_000)
        elif fault.kind == "endless":
            out.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (_CHUNK, b" " * _CHUNK)
            while going():
                out.write(chunk)
        elif fault.kind == "huge-length":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500000000\r\n\r\n")
            for _ in range(500_000_000 // _CHUNK):
                if not going():
                    return
                out.write(b" " * _CHUNK)
        elif fault.kind == "gzip-bomb":
            bomb = gzip_bomb()
            out.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
            )
            out.write(bomb)


_CHUNK = 64 * 1024


@cache
def gzip_bomb(mebibytes: int = 2048) -> bytes:
    """A gzip body of ~1 KiB per MiB of zeros it inflates to (2 GiB by default).

    Each MiB is compressed after a full flush, so every block after the first is the same
    bytes: building 2 GiB's worth takes milliseconds, not the seconds deflating it would.
    The trailer's CRC is wrong; nobody who respects a cap reads that far.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + block * (mebibytes - 2) + compressor.compress(zeros) + compressor.flush()


@contextmanager
def running_registry(**options: Any) -> Iterator[FakeRegistry]:
    """A started ``FakeRegistry(**options)``, stopped on exit.

    The body of a pytest fixture: ``with running_registry() as registry: yield registry``.
    """
    with FakeRegistry(**options) as registry:
        yield registry
