"""On a Kafka cluster every write is on two brokers before it counts: the worker produces with
acks=all, and the topics it creates (its own and faust's) get the configured replication."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.stream.app import create_app
from pipeline.stream.topics import new_topic


def test_worker_produces_with_acks_all_and_replicates_faust_topics() -> None:
    conf = create_app(Settings(replication=3)).app.conf
    assert conf.producer_acks == -1  # -1 is acks=all
    assert conf.topic_replication_factor == 3


def test_replicated_topics_need_two_in_sync_replicas() -> None:
    spec = new_topic("t", Settings(replication=3, partitions=6))
    assert (spec.num_partitions, spec.replication_factor) == (6, 3)
    assert spec.topic_configs == {"min.insync.replicas": "2"}


def test_single_broker_topics_keep_the_broker_default() -> None:
    assert new_topic("t", Settings()).topic_configs == {}
