"""Every agent of the worker runs with concurrency=1 (faust-streaming #606: with more, faust
commits offsets past events still in flight, which are lost after a crash; and two actors on
one partition would apply an address's events out of order).

The app is built as `pipeline.stream.app.create_app` builds it for `bounceguard worker`, but
never started (no I/O: faust connects on start, the Store on first use)."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from pipeline.config import Settings
from pipeline.core.policies import PolicyBook, load_preset
from pipeline.stream import agents, esp, mail, normalize
from pipeline.stream.app import create_app

POLICY_AGENTS = {"count", "engagement", "feedback"}
NORMALIZE = "pipeline.stream.normalize.normalize"
BOUNCE_MAIL = "pipeline.stream.mail.bounce_mail"
ESP_EVENTS = "pipeline.stream.esp.esp_events"


def test_every_agent_the_app_defines_has_concurrency_1() -> None:
    """Catches: `concurrency=1` dropped (or changed) in pipeline/stream/agents.py `_agent` or
    in normalize.attach, mail.attach or esp.attach, and a new agent added without it."""
    runtime = create_app(Settings.from_env({}))
    agents = dict(runtime.app.agents.items())

    assert set(agents) == {*POLICY_AGENTS, NORMALIZE, BOUNCE_MAIL, ESP_EVENTS}
    assert {name: agent.concurrency for name, agent in agents.items()} == dict.fromkeys(agents, 1)


def test_each_agent_reads_its_own_input_topic() -> None:
    """Catches: two agents attached to one topic (each message handled twice, concurrently)
    or an agent on the wrong topic."""
    runtime = create_app(Settings.from_env({}))
    topics = {name: agent.channel.get_topic_name() for name, agent in runtime.app.agents.items()}
    assert topics == {
        "count": "delivery.attempts",
        "engagement": "engagement.events",
        "feedback": "feedback.events",
        NORMALIZE: "mta.log.raw",
        BOUNCE_MAIL: "bounce.mail.raw",
        ESP_EVENTS: "esp.events.raw",
    }


class RecordingApp:
    """Records the keyword arguments of every `app.agent(...)` call."""

    def __init__(self) -> None:
        self.agent_calls: list[tuple[Any, dict[str, Any]]] = []

    def agent(self, channel: Any, **options: Any) -> Callable[[Any], Any]:
        self.agent_calls.append((channel, options))
        return lambda fun: fun

    def timer(self, **options: Any) -> Callable[[Any], Any]:
        return lambda fun: fun


def test_every_agent_asks_for_concurrency_1_explicitly() -> None:
    """Catches: `concurrency=1` removed from agents._agent, normalize.attach or mail.attach.
    faust's own default is 1 today, so the built app alone cannot tell; the explicit argument
    is what keeps the guarantee through a faust upgrade or an app-level default."""
    app = RecordingApp()
    settings = Settings.from_env({})
    names = ["attempts", "engagement", "feedback", "raw", "mail", "esp"]
    topics: Any = types.SimpleNamespace(
        **{n: n for n in names}, **{f"{n}_deadletter": f"{n}.dl" for n in names}
    )
    store: Any = types.SimpleNamespace(book=PolicyBook(load_preset("default")))
    agents.attach(app, settings, topics, store, emitter=None)  # type: ignore[arg-type]
    normalize.attach(app, settings, topics)
    mail.attach(app, settings, topics)
    esp.attach(app, settings, topics)

    assert [channel for channel, _ in app.agent_calls] == names
    assert [options.get("concurrency") for _, options in app.agent_calls] == [1] * len(names)
