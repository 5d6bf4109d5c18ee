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

# -- YAML ------------------------------------------------------------------------------------
#: Collections nested in a YAML file before it is refused: the scanners walk the nodes
#: recursively (and libyaml's own composer, which pin does not use, crashes the interpreter
#: some 20,000 levels down). Real manifests, CRD schemas included, stay far below.
MAX_YAML_DEPTH = 300
