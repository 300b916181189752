"""bench/phrasebook_suites.py's variants: the settings that differ from the generator's defaults are
named in the dataset names (so two variants never share a dataset) and passed to the generator."""

from __future__ import annotations

import argparse
from types import ModuleType

from bench_import import bench_module

from tooltune.data.generate_config import GenerateConfig


def _module() -> ModuleType:
    return bench_module("phrasebook_suites")


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"max_tools": None, "phrasebook_share": None, "mix": None, **kw})


def test_default_settings_keep_the_committed_dataset_names() -> None:
    assert _module().data_variant(_args()) == ({}, "")


def test_each_changed_setting_is_named_and_reaches_the_generator() -> None:
    mod = _module()
    mix = '{"single": 1, "no_call": 0}'
    changed, suffix = mod.data_variant(_args(max_tools=8, phrasebook_share=1.0, mix=mix))
    assert changed == {"max_tools": 8, "phrasebook_share": 1.0, "mix": {"single": 1, "no_call": 0}}
    assert suffix.startswith("-t8-pb1-mix") and len(suffix) == len("-t8-pb1-mix") + 6
    GenerateConfig(n=10, **changed)  # every name is a generator setting
    other = mod.data_variant(_args(max_tools=8, phrasebook_share=1.0, mix='{"single": 1, "no_call": 0.1}'))[1]
    assert other != suffix  # another mix, another dataset


def test_books_per_suite() -> None:
    mod = _module()
    assert mod.books("schema", ["issue-tracker"]) == []
    assert len(mod.books("hand", ["issue-tracker"])) == 1 and len(mod.books("hand", list(mod.SUITES))) == 2
