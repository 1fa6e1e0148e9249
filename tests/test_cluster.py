"""The Ray address in force and joining it: an unreachable head is refused at once, with the reason."""

from __future__ import annotations

import time

import pytest

from recsys import cluster


def test_no_address_means_no_cluster(db_url, monkeypatch):
    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    assert cluster.ray_address(db_url) is None


def test_the_setting_names_the_cluster_and_the_environment_wins(db_url, monkeypatch):
    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    cluster.set_ray_address("head.internal:6379", "admin", db_url)
    assert cluster.ray_address(db_url) == "head.internal:6379"
    monkeypatch.setenv(cluster.RAY_ADDRESS_ENV, "ray://other:10001")
    assert cluster.ray_address(db_url) == "ray://other:10001"
    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV)
    cluster.set_ray_address("", "admin", db_url)
    assert cluster.ray_address(db_url) is None


@pytest.mark.parametrize("bad", ["head:port", "head:0", "http://x/y:1", ":6379"])
def test_a_bad_address_is_refused_by_name(db_url, bad):
    with pytest.raises(ValueError, match="is not a Ray address"):
        cluster.set_ray_address(bad, "admin", db_url)


def test_an_unreachable_head_fails_at_once_with_the_reason():
    started = time.monotonic()
    with pytest.raises(cluster.ClusterUnavailable, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        cluster.connect("127.0.0.1:9")
    assert time.monotonic() - started < 10


def test_local_ray_runs_the_projects_code(ray_local):
    import ray

    status = cluster.check(ray_local)
    assert status.cpus == 2 and status.nodes == 1
    assert ray.get(ray.remote(cluster.parse_address).remote("a:1")) == ("a", 1)
