"""Every limit pin keeps, in one place: what the README's "Limits and guarantees" quotes.

Plain constants, no imports: the offline path reads some of them and must stay cheap. A
limit a user may change has a command-line option whose default is the value here.
"""

from __future__ import annotations

# -- time ------------------------------------------------------------------------------------
#: Default of --timeout: seconds one registry request may take.
REQUEST_TIMEOUT = 10.0
#: Attempts per request: the first and up to 3 retries (429, 5xx, a dropped connection).
ATTEMPTS = 4
#: Seconds before the first retry, doubled for each next one (with jitter).
BACKOFF = 0.5
#: Cap on any one wait between attempts, a registry's Retry-After included.
MAX_RETRY_WAIT = 20.0
#: Seconds a credential helper (docker-credential-NAME get) may take.
HELPER_TIMEOUT = 10.0

# -- concurrency -----------------------------------------------------------------------------
#: Resolutions in flight at once.
CONCURRENCY = 8

# -- sizes -----------------------------------------------------------------------------------
#: A manifest or index read on the GET fallback: the limit the distribution spec suggests.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

# -- Chainguard's tag history ----------------------------------------------------------------
#: The history API's documented response limit: entries per answer.
HISTORY_PAGE_ENTRIES = 1000
#: Pages read for one window before giving up.
HISTORY_MAX_PAGES = 60

# -- files -----------------------------------------------------------------------------------
#: A Dockerfile larger than this is an error naming it (real ones are a few KiB).
MAX_DOCKERFILE_BYTES = 4 * 1024 * 1024
#: A Docker config.json, a containers auth.json, DOCKER_AUTH_CONFIG, or a .pin.toml.
MAX_CONFIG_BYTES = 1024 * 1024
#: What a credential helper prints on stdout or on stderr (its answer is a small JSON object).
MAX_HELPER_OUTPUT_BYTES = 1024 * 1024
