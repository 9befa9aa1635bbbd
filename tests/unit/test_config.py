"""Settings are read from BOUNCEGUARD_* variables with the right types."""

from __future__ import annotations

import pytest

from pipeline.config import Settings, Topics
from pipeline.core.dsn import DEFAULT_JOIN_HEADER


def test_defaults_bind_to_loopback_and_the_standard_ports() -> None:
    s = Settings.from_env({})
    assert (s.kafka, s.redis_url, s.web_bind, s.web_port) == (
        "127.0.0.1:9092",
        "redis://127.0.0.1:6379/0",
        "127.0.0.1",
        6066,
    )
    assert s.topics == Topics()


def test_variables_are_converted_to_each_field_type() -> None:
    s = Settings.from_env(
        {
            "BOUNCEGUARD_WEB_PORT": "7001",
            "BOUNCEGUARD_BATCH_WITHIN": "0.5",
            "BOUNCEGUARD_POLICY_FILE": "/etc/bg/policies.toml",
            "BOUNCEGUARD_KAFKA": "a:1,b:2",
        }
    )
    assert (s.web_port, s.batch_within, s.policy_file) == (7001, 0.5, "/etc/bg/policies.toml")
    assert s.kafka_url == "kafka://a:1;b:2"


def test_overrides_win_and_suffix_renames_every_topic() -> None:
    s = Settings.from_env({"BOUNCEGUARD_WEB_PORT": "7001"}, web_port=7002, topic_suffix="-t1")
    assert s.web_port == 7002
    assert all(name.endswith("-t1") or name.endswith("-t1.deadletter") for name in s.topics.all())
    assert s.topics.deadletter(s.topics.attempts) == "delivery.attempts-t1.deadletter"


def test_a_number_that_is_not_one_is_an_error() -> None:
    with pytest.raises(ValueError):
        Settings.from_env({"BOUNCEGUARD_PARTITIONS": "four"})


def test_the_bounce_mail_topic_and_its_dead_letter_topic_are_created() -> None:
    """`bounceguard topics` and the worker's ensure_topics create settings.topics.all()."""
    names = Settings.from_env({}).topics.all()
    assert {"bounce.mail.raw", "bounce.mail.raw.deadletter"} <= set(names)


def test_the_dsn_join_header_is_a_setting_defaulting_to_the_parsers() -> None:
    assert Settings.from_env({}).dsn_join_header == DEFAULT_JOIN_HEADER == "X-Bounceguard-Event-Id"
    env = {"BOUNCEGUARD_DSN_JOIN_HEADER": "X-Send-Id"}
    assert Settings.from_env(env).dsn_join_header == "X-Send-Id"


def test_replay_s_gc_tuning_is_put_back_for_an_in_process_caller() -> None:
    """Catches: `main(["replay", ...])` called in-process (the tests do) leaving the whole
    process with the worker's collector settings and a frozen heap."""
    import gc

    from pipeline.cli.process import GC_THRESHOLD, tuned_gc

    before = gc.get_threshold()
    with tuned_gc():
        assert gc.get_threshold() == GC_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
