"""Every limit pin keeps, in one place: what the README's "Limits and guarantees" quotes.

Plain constants, no imports: the offline path reads some of them and must stay cheap. A
limit a user may change has a command-line option whose default is the value here.
"""

from __future__ import annotations

# -- time ------------------------------------------------------------------------------------
#: Default of --timeout: seconds one registry request may take, all of it: connecting, the
#: TLS handshake, the headers, every redirect and the whole body.
REQUEST_TIMEOUT = 10.0
#: The --timeout accepted: at least MIN_TIMEOUT; at most MAX_TIMEOUT, for a bound must be one.
MIN_TIMEOUT = 0.1
MAX_TIMEOUT = 3600.0
#: Attempts per request: the first and up to 3 retries (429, 5xx, a timeout, a refused,
#: reset or dropped connection). Never retried: a name that does not resolve, a certificate
#: that does not verify, a 4xx other than 429, too many redirects, a body over its cap.
ATTEMPTS = 4
#: Seconds before the first retry, doubled for each next one (with jitter).
BACKOFF = 0.5
#: Cap on any one wait between attempts, a registry's Retry-After included.
MAX_RETRY_WAIT = 20.0
#: Redirects followed for one request: Go's net/http stops at 10, and so do Docker and
#: containerd, which use it.
MAX_REDIRECTS = 10
#: How far past this machine's clock a build in a tag history may be dated (clocks disagree)
#: before the history is refused as untrustworthy: nanoseconds, one day.
MAX_FUTURE_SKEW_NS = 86400 * 1_000_000_000
#: Seconds a credential helper (docker-credential-NAME get) may take.
HELPER_TIMEOUT = 10.0

# -- concurrency -----------------------------------------------------------------------------
#: Lookups in flight at once for one registry (each a few small requests). Enough for a
#: monorepo's unique images to resolve in one wave of round trips; a cap per registry, so that
#: one slow registry does not hold up another.
CONCURRENCY = 64
#: Repositories one token request asks for at once (one ``scope=`` each, as the token spec
#: allows): after a registry's first challenge, one request covers the run's anonymous
#: repositories instead of one request each. Bounded so that the URL and the token stay small.
MAX_SCOPES_PER_TOKEN = 50
#: The offline --check reads and scans files in forked processes from this many files on
#: (at 1,000 forking saved nothing here, at 3,000 a fifth), one process per core, at most
#: PARALLEL_CHECK_MAX_PROCESSES.
PARALLEL_CHECK_MIN_FILES = 2000
PARALLEL_CHECK_MAX_PROCESSES = 8
#: The files are shared out in this many chunks a process (at most 255 in all), taken by
#: whichever process is free: the last to finish waits on one small chunk, not on a slice.
PARALLEL_CHECK_CHUNKS_PER_PROCESS = 32
#: Folders that discovery reads in one process before it shares out those left to read
#: between processes as above: a repository is walked before that (1,000 folders, ~20 ms here,
#: where forking and importing pickle cost ~7), a tree of 10,000 (~0.15 s) mostly on every core.
PARALLEL_WALK_MIN_FOLDERS = 1000
#: Files staged (written beside their originals) before they are fsynced together, their
#: descriptors open meanwhile: far below the usual limit of 1,024 open files.
STAGED_AT_ONCE = 256
#: Random names tried for one file's temporary file before the file is an error: only names
#: someone else made beside it can be taken (tempfile.mkstemp tries up to 10,000).
TEMPORARY_NAME_ATTEMPTS = 100
#: fsyncs in flight at once, each on a thread that does nothing else. The disk takes them
#: together (200 files here: 4 at once ~80 ms, 16 at once ~65 ms).
SYNCS_AT_ONCE = 16
#: Allocations between two runs of the cyclic garbage collector in the ``pin`` command (Python's
#: default is 700; pinner.cli.entry says why).
GC_ALLOCATIONS = 100_000

# -- sizes -----------------------------------------------------------------------------------
# Every body is read as it streams, counted after decompression, and refused past its cap.
#: A manifest or index read on the GET fallback: the limit the distribution spec suggests.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: One page of a tag history: 1,000 entries of ~110 bytes each compact (~230 pretty-printed)
#: are ~0.1-0.25 MB; 2 MiB leaves room for fields Chainguard may add.
MAX_HISTORY_PAGE_BYTES = 2 * 1024 * 1024
#: A token service's answer: a JWT is a few KiB (Docker Hub's ~1-4 KiB, GCR's and ECR's less).
MAX_TOKEN_BYTES = 64 * 1024
#: The status line and headers of a registry's answer to its ping (GET /v2/, asked while the
#: run starts; pinner.resolve.ping): h11's own bound on a head, which the other answers get.
MAX_PING_HEAD_BYTES = 16 * 1024
#: An error answer (4xx/5xx) is read only for its distribution error code; the rest is dropped.
MAX_ERROR_BODY_BYTES = 16 * 1024
#: An image's config blob, read to learn which platform a pinned manifest is for (--update of
#: a per-platform pin): a few KiB usually, more with a long build history in it.
MAX_IMAGE_CONFIG_BYTES = 4 * 1024 * 1024

# -- Chainguard's tag history ----------------------------------------------------------------
#: The history API's documented response limit: entries per answer.
HISTORY_PAGE_ENTRIES = 1000
#: Pages read for one window before giving up.
HISTORY_MAX_PAGES = 60
#: --verify of a per-platform pin on cgr.dev: the indexes of the tag's newest builds read to
#: find the one that lists it (two months of nightly builds), and how many at once.
VERIFY_MAX_INDEXES = 60
VERIFY_INDEXES_AT_ONCE = 8

# -- files -----------------------------------------------------------------------------------
#: A Dockerfile larger than this is an error naming it (real ones are a few KiB).
MAX_DOCKERFILE_BYTES = 4 * 1024 * 1024
#: A Docker config.json, a containers auth.json, DOCKER_AUTH_CONFIG, or a .pin.toml.
MAX_CONFIG_BYTES = 1024 * 1024
#: What a credential helper prints on stdout or on stderr (its answer is a small JSON object).
MAX_HELPER_OUTPUT_BYTES = 1024 * 1024

# -- YAML ------------------------------------------------------------------------------------
#: Collections nested in a YAML file before it is refused: the scanners walk the nodes
#: recursively (and libyaml's own composer, which pin does not use, crashes the interpreter
#: some 20,000 levels down). Real manifests, CRD schemas included, stay far below.
MAX_YAML_DEPTH = 300

# -- SBOMs (--changes) -----------------------------------------------------------------------
# A missing, oversized or malformed SBOM never fails a pin: it is reported and the pin goes on.
#: An attestation manifest (cosign's ``sha256-<hex>.att``) or a referrers index: a few KiB of
#: descriptors; the distribution spec's manifest limit.
MAX_ATTESTATION_MANIFEST_BYTES = 4 * 1024 * 1024
#: One attestation blob (a DSSE envelope around an SPDX or CycloneDX SBOM). The SBOM is base64
#: in the envelope (4/3 of its size): 64 MiB holds an SBOM of 48 MB, where a large image's is
#: tens of MB. Parsed in stages, each dropped before the next (``pinner.sbom``).
MAX_SBOM_BYTES = 64 * 1024 * 1024
#: Attestation layers read for one image while looking for an SBOM: those whose annotation
#: names an SBOM first; unannotated ones only up to this many.
MAX_ATTESTATION_LAYERS = 8
#: Packages kept from one SBOM; past it the SBOM is reported unreadable.
MAX_SBOM_PACKAGES = 200_000
