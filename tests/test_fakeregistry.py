"""Tests of the fake Chainguard registry itself, driven with plain httpx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.fakeregistry import FakeRegistry, parse_rfc3339_ns, running_registry

PYTHON = "chainguard/python"
EPOCH_2023 = datetime(2023, 1, 1, tzinfo=UTC)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with running_registry() as registry:
        registry.load_fixture("python-latest.json")
        yield registry


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[httpx.Client]:
    # Plain http on loopback: verify=False skips loading the CA bundle, ~50 ms per client.
    with httpx.Client(base_url=registry.url, timeout=5, verify=False) as client:
        yield client


def challenge(response: httpx.Response) -> dict[str, str]:
    scheme, _, params = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer"
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def pull_token(client: httpx.Client, repo: str, auth: tuple[str, str] | None = None) -> str:
    response = client.get("/token", params={"scope": f"repository:{repo}:pull"}, auth=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def history(client: httpx.Client, repo: str, tag: str, token: str, **params: str) -> httpx.Response:
    return client.get(
        f"/v2/{repo}/_chainguard/history/{tag}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_token_flow_round_trip(registry: FakeRegistry, client: httpx.Client) -> None:
    ping = client.get("/v2/")
    assert ping.status_code == 401
    assert challenge(ping) == {"realm": f"{registry.url}/token", "service": registry.host}

    anonymous = client.get(f"/v2/{PYTHON}/_chainguard/history/latest")
    assert anonymous.status_code == 401
    params = challenge(anonymous)
    token = client.get(
        params["realm"], params={"service": params["service"], "scope": params["scope"]}
    )
    assert token.status_code == 200

    response = history(client, PYTHON, "latest", token.json()["token"])
    assert response.status_code == 200
    assert response.json() == {
        "history": [
            {
                "updateTimestamp": "2023-05-12T13:46:10.555Z",
                "digest": "sha256:81c334de6dd4583897f9e8d0691cbb75ad41613474360740824d8a7fa6a8fecb",
            },
            {
                "updateTimestamp": "2023-05-12T20:50:19.702Z",
                "digest": "sha256:a8724b7a80cae14263a3b55f7acb5d195fcbb24afbc8067aa5198aa2a9131cde",
            },
        ]
    }
    assert registry.requests[-1].authorization == f"Bearer {token.json()['token']}"


def test_a_token_for_one_repository_is_refused_on_another(
    registry: FakeRegistry, client: httpx.Client
) -> None:
    registry.add_nightly("chainguard/go", "latest", 2, EPOCH_2023)
    response = history(client, "chainguard/go", "latest", pull_token(client, PYTHON))
    assert response.status_code == 401
    assert challenge(response)["scope"] == "repository:chainguard/go:pull"


def test_history_is_capped_at_the_oldest_1000(registry: FakeRegistry, client: httpx.Client) -> None:
    builds = registry.add_nightly("chainguard/go", "latest", 2500, EPOCH_2023, order="shuffled")
    token = pull_token(client, "chainguard/go")

    def pairs(response: httpx.Response) -> list[tuple[str, str]]:
        return [(e["updateTimestamp"], e["digest"]) for e in response.json()["history"]]

    capped = pairs(history(client, "chainguard/go", "latest", token))
    assert capped != builds[:1000]  # shuffled after the cap, so the same 1000 in another order
    assert sorted(capped) == builds[:1000]
    narrowed = pairs(history(client, "chainguard/go", "latest", token, start=builds[1500][0]))
    assert sorted(narrowed) == builds[1500:]


@pytest.mark.parametrize(
    ("end", "count"),
    [
        ("2023-05-12T13:46:10.555Z", 1),  # inclusive
        ("2023-05-12T15:46:10.555000000+02:00", 1),
        ("2023-05-12T13:46:10.554999999Z", 0),
        ("2023-05-12T13:46:10Z", 0),
        ("2023-05-13T00:00:00Z", 2),
    ],
)
def test_end_filters_inclusively(client: httpx.Client, end: str, count: int) -> None:
    response = history(client, PYTHON, "latest", pull_token(client, PYTHON), end=end)
    assert len(response.json()["history"]) == count


@pytest.mark.parametrize("bound", ["yesterday", "2023-05-12T13:46:10", "2023-05-12 13:46:10Z"])
def test_an_unparseable_bound_is_a_400(client: httpx.Client, bound: str) -> None:
    response = history(client, PYTHON, "latest", pull_token(client, PYTHON), start=bound)
    assert response.status_code == 400


def test_parser_keeps_nanoseconds() -> None:
    assert parse_rfc3339_ns("1970-01-01T00:00:01.000000001Z") == 1_000_000_001
    assert parse_rfc3339_ns("1970-01-01T01:00:00+01:00") == 0


def test_legacy_keys(registry: FakeRegistry, client: httpx.Client) -> None:
    registry.add_history(
        "chainguard/go", "1.21", [("2023-05-12T13:46:10Z", "sha256:XYZ")], legacy_keys=True
    )
    response = history(client, "chainguard/go", "1.21", pull_token(client, "chainguard/go"))
    assert response.json() == {
        "history": [{"UpdateTimestamp": "2023-05-12T13:46:10Z", "Digest": "sha256:XYZ"}]
    }


@pytest.mark.parametrize(
    ("repo", "tag", "code"),
    [("chainguard/nope", "latest", "NAME_UNKNOWN"), (PYTHON, "nope", "MANIFEST_UNKNOWN")],
)
def test_unknown_repository_or_tag_is_a_404(
    client: httpx.Client, repo: str, tag: str, code: str
) -> None:
    response = history(client, repo, tag, pull_token(client, repo))
    assert response.status_code == 404
    assert [e["code"] for e in response.json()["errors"]] == [code]


def test_manifest_head_names_the_newest_digest(client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {pull_token(client, PYTHON)}"}
    response = client.head(f"/v2/{PYTHON}/manifests/latest", headers=headers)
    assert response.status_code == 200
    newest = "sha256:a8724b7a80cae14263a3b55f7acb5d195fcbb24afbc8067aa5198aa2a9131cde"
    assert response.headers["Docker-Content-Digest"] == newest
    assert client.get(f"/v2/{PYTHON}/manifests/{newest}", headers=headers).status_code == 200
    assert (
        client.get(f"/v2/{PYTHON}/manifests/sha256:{'0' * 64}", headers=headers).status_code == 404
    )


def test_a_fault_fires_exactly_times(registry: FakeRegistry, client: httpx.Client) -> None:
    token = pull_token(client, PYTHON)
    registry.clear_log()
    registry.fail(2, 429, headers={"Retry-After": "1"}, path_contains="/_chainguard/")
    statuses = [history(client, PYTHON, "latest", token).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert [r.status for r in registry.requests_to("/_chainguard/history/")] == statuses


def test_a_delay_outlasts_a_client_timeout(registry: FakeRegistry, client: httpx.Client) -> None:
    registry.delay(30, path_contains="/_chainguard/")  # stop() must not wait for it
    with pytest.raises(httpx.ReadTimeout):
        client.get(f"/v2/{PYTHON}/_chainguard/history/latest", timeout=0.1)


def test_private_repository_basic_auth(registry: FakeRegistry, client: httpx.Client) -> None:
    registry.add_private("acme.com", "robot", "s3cret", refresh_token="identity")
    registry.add_nightly("acme.com/python", "latest", 3, EPOCH_2023)
    scope = {"scope": "repository:acme.com/python:pull", "service": registry.host}

    assert client.get("/token", params=scope).status_code == 401
    assert client.get("/token", params=scope, auth=("robot", "wrong")).status_code == 401
    token = pull_token(client, "acme.com/python", auth=("robot", "s3cret"))
    assert history(client, "acme.com/python", "latest", token).status_code == 200

    grant = {"grant_type": "refresh_token", "refresh_token": "identity", "client_id": "pinner"}
    assert client.post("/token", data={**scope, **grant}).json()["access_token"]
    refused = client.post("/token", data={**scope, **grant, "refresh_token": "stale"})
    assert refused.status_code == 401


def test_gzip_bomb_inflates_a_thousandfold_to_zeros() -> None:
    import zlib

    from tests.fakeregistry import gzip_bomb

    bomb = gzip_bomb(64)
    assert bomb[:2] == b"\x1f\x8b"  # gzip's magic; then a 10-byte header, deflate, a trailer
    # Raw deflate: the trailer's CRC is wrong on purpose (see gzip_bomb).
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(bomb[10:])
    assert inflated == bytes(64 * 1024 * 1024)
    assert len(bomb) * 500 < len(inflated)


def test_misbehave_fires_exactly_times_then_answers_normally(
    registry: FakeRegistry, client: httpx.Client
) -> None:
    token = pull_token(client, PYTHON)
    registry.misbehave("reset", times=1, path_contains="/_chainguard/")
    registry.misbehave("redirect-loop", times=1, path_contains="/_chainguard/", method="HEAD")
    with pytest.raises(httpx.TransportError):
        history(client, PYTHON, "latest", token)
    assert history(client, PYTHON, "latest", token).status_code == 200
    looped = client.head(f"/v2/{PYTHON}/_chainguard/history/latest?x=1")
    assert looped.status_code == 302
    assert looped.headers["Location"] == f"/v2/{PYTHON}/_chainguard/history/latest?x=1"


def test_endless_body_stops_when_the_client_hangs_up(
    registry: FakeRegistry, client: httpx.Client
) -> None:
    token = pull_token(client, PYTHON)
    registry.misbehave("endless", path_contains="/_chainguard/")
    path = f"/v2/{PYTHON}/_chainguard/history/latest"
    with client.stream("GET", path, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        received = 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > 1024 * 1024:
                break
    assert received > 1024 * 1024
    # The fake is free again at once: its writer saw the hang-up.
    assert history(client, PYTHON, "latest", token).status_code == 200


def test_stored_indexes_are_served_byte_for_byte_by_digest_and_as_the_newest_build(
    registry: FakeRegistry, client: httpx.Client
) -> None:
    import hashlib
    import json

    index, children = registry.put_index(PYTHON, ("linux/amd64", "linux/arm/v7"), seed="n1")
    registry.add_history(PYTHON, "next", [("2026-01-01T00:00:00Z", index)])
    headers = {"Authorization": f"Bearer {pull_token(client, PYTHON)}"}
    by_digest = client.get(f"/v2/{PYTHON}/manifests/{index}", headers=headers)
    assert "sha256:" + hashlib.sha256(by_digest.content).hexdigest() == index
    assert by_digest.headers["Docker-Content-Digest"] == index
    assert client.get(f"/v2/{PYTHON}/manifests/next", headers=headers).content == by_digest.content
    listed = {m["digest"]: m["platform"] for m in by_digest.json()["manifests"]}
    assert listed[children["linux/arm/v7"]] == {
        "os": "linux",
        "architecture": "arm",
        "variant": "v7",
    }
    manifest = client.get(f"/v2/{PYTHON}/manifests/{children['linux/arm/v7']}", headers=headers)
    config = client.get(
        f"/v2/{PYTHON}/blobs/{manifest.json()['config']['digest']}", headers=headers
    )
    assert json.loads(config.content)["variant"] == "v7"
    missing = client.get(f"/v2/{PYTHON}/blobs/sha256:{'0' * 64}", headers=headers)
    assert missing.status_code == 404
