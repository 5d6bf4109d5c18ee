"""pinner: pin container image references to immutable digests."""

# Read by `pin --version`, the User-Agent and the package metadata (pyproject's dynamic
# version): importlib.metadata would cost ~40 ms of every run's start-up to look it up.
__version__ = "0.1.0"
