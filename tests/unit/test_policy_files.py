"""Policies from data: every key of a policy and of a policy file read into its field, and the
errors of a bad one (written against `make mutants` survivors; see docs/mutants.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.models import BounceClass, Category, Scope
from pipeline.core.policies import (
    Policy,
    PolicyBook,
    book_from_mapping,
    load_book,
    load_preset,
    policy_from_mapping,
    preset_text,
    read_policy_file,
)


def test_every_policy_key_is_read() -> None:
    policy = policy_from_mapping(
        {
            "name": "p",
            "scope": "list",
            "bounce_classes": ["hard"],
            "bounce_categories": ["mailbox_full"],
            "source": "here",
            "delivered_log": 1,
            "rules": {
                "r1": {"kind": "immediate", "categories": ["complaint"], "reset_on_engagement": 1},
                "r2": {"kind": "immediate", "enabled": False},
            },
        }
    )
    assert (policy.name, policy.scope, policy.source, policy.keep_delivered_log) == (
        "p",
        Scope.LIST,
        "here",
        True,
    )
    assert policy.bounce_classes == frozenset({BounceClass.HARD})
    assert policy.bounce_categories == frozenset({Category.MAILBOX_FULL})
    assert [r.id for r in policy.rules] == ["r1"]
    assert policy.rules[0].reset_on_engagement is True


def test_policy_defaults() -> None:
    policy = policy_from_mapping({"name": "bare"})
    assert policy == Policy(
        name="bare",
        scope=Scope.TENANT,
        rules=(),
        bounce_classes=frozenset(),
        bounce_categories=frozenset(),
        source="",
        keep_delivered_log=False,
    )
    rule = policy_from_mapping({"name": "x", "rules": {"r": {"kind": "immediate"}}}).rules[0]
    assert rule.reset_on_engagement is False


def test_bad_policy_data_says_what() -> None:
    with pytest.raises(ValueError, match=r"^bad policy data: KeyError\('name'\)$"):
        policy_from_mapping({"rules": {}})


@pytest.mark.parametrize("name", ["../default", "de fault", "no_such_preset"])
def test_unknown_presets(name: str) -> None:
    with pytest.raises(FileNotFoundError, match=f"^no preset {name!r}$"):
        preset_text(name)


def test_preset_text_is_the_packaged_file() -> None:
    here = Path(__file__).resolve().parents[2] / "pipeline" / "core" / "presets" / "bsd.toml"
    assert preset_text("bsd") == here.read_text(encoding="utf-8")


def test_overrides_merge_tables_and_replace_values() -> None:
    policy = load_preset("default", {"rules": {"consecutive_soft": {"threshold": 12}}})
    assert policy.rule("consecutive_soft").threshold == 12
    assert policy.rule("consecutive_soft").engaged_threshold == 20  # merged, not replaced
    assert [r.id for r in policy.rules] == [r.id for r in load_preset("default").rules]
    replaced = load_preset("default", {"source": {"a": 1}})
    assert replaced.source == "{'a': 1}"


def test_a_book_from_a_mapping() -> None:
    book = book_from_mapping(
        {
            "preset": "listrak",
            "default": {"source": "ours"},
            "tenants": {
                "acme": {"preset": "engagement", "rules": {"consecutive_soft": {"threshold": 12}}},
                "beta": {"source": "beta's"},
            },
        },
        default_preset="bsd",
    )
    assert (book.default.name, book.default.source) == ("listrak", "ours")
    acme = book.for_tenant("acme")
    assert (acme.name, acme.rule("consecutive_soft").threshold) == ("engagement", 12)
    beta = book.for_tenant("beta")
    assert (beta.name, beta.source) == ("listrak", "beta's")
    assert book_from_mapping({}, default_preset="bsd").default.name == "bsd"
    assert book_from_mapping({}).default.name == "default"


def test_policy_files_toml_and_yaml(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('[tenants.acme]\npreset = "bsd"\n', encoding="utf-8")
    yml = tmp_path / "p.yml"
    yml.write_text("tenants:\n  acme:\n    preset: ecomail\n", encoding="utf-8")
    yaml_ = tmp_path / "p.YAML"
    yaml_.write_text("preset: listrak\n", encoding="utf-8")
    assert read_policy_file(toml, "engagement").default.name == "engagement"
    assert read_policy_file(toml).for_tenant("acme").name == "bsd"
    assert read_policy_file(yml).for_tenant("acme").name == "ecomail"
    assert read_policy_file(str(yaml_)).default.name == "listrak"
    bad = tmp_path / "bad.yml"
    bad.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{bad}: a policy file must be a table$"):
        read_policy_file(bad)


def test_a_policy_file_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes('[default]\nsource = "Zürich"\n'.encode())
    assert read_policy_file(path).default.source == "Zürich"


def test_load_book_uses_the_file_with_the_preset_as_its_default(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[tenants.acme]\npreset = "bsd"\n', encoding="utf-8")
    book = load_book("ecomail", path)
    assert (book.default.name, book.for_tenant("acme").name) == ("ecomail", "bsd")
    assert load_book("listrak") == PolicyBook(default=load_preset("listrak"))
    assert load_book("listrak", "") == PolicyBook(default=load_preset("listrak"))
