"""What a lookup of a tag asks a registry, known before httpx is imported.

:class:`DistributionResolver <pinner.resolve.distribution.DistributionResolver>` sends it;
the pipeline sends the first ones of a registry that needs no token at start-up already
(:class:`pinner.resolve.ping.Ahead`), and the run's transport takes their answers for the
same requests. One definition, so that the two cannot drift apart.
"""

from __future__ import annotations

from urllib.parse import quote

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# Index and manifest-list types first: a multi-platform tag gives its index digest, which is
# what ``docker pull`` of the tag resolves.
ACCEPT = ", ".join(MANIFEST_TYPES)


def manifest_path(repository: str, tag_or_digest: str) -> str:
    """The path of ``HEAD``/``GET`` of a manifest, by tag or digest."""
    return f"/v2/{repository}/manifests/{quote(tag_or_digest, safe=':')}"
