"""Names are DNS-1123, readable, at most 63 characters, and never shared by two combinations."""
from __future__ import annotations

import pytest

from kube.naming import combination_hash, is_label_value, is_name, label_value, run_name, sanitize


@pytest.mark.parametrize("text, expected", [
    pytest.param("Average", "average", id="lowercase"),
    pytest.param("lr_1e-5", "lr-1e-5", id="underscore-folded"),
    pytest.param("--a..b--", "a-b", id="ends-stripped-runs-folded"),
    pytest.param("ÜBER/ß", "ber", id="non-ascii-dropped"),
])
def test_sanitize_folds_to_dns_characters(text, expected):
    assert sanitize(text) == expected


def test_name_reads_project_model_dataset_then_public_hparams():
    name = run_name("", "example", "average", "data1", {"lr": "0.1"}, {"lr": 0.1, "_fn": "x"})
    assert name.startswith("example-average-data1-lr-0-1-")
    assert is_name(name)


def test_prefix_comes_first():
    assert run_name("exp7", "example", "m", "d", {}, {}).startswith("exp7-example-m-d-")


def test_hidden_hparams_change_the_hash_not_the_readable_part():
    a = run_name("", "p", "m", "d", {}, {"_fn": "data/1.txt"})
    b = run_name("", "p", "m", "d", {}, {"_fn": "data/2.txt"})
    assert a != b and a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0]


def test_values_that_sanitize_alike_still_get_different_names():
    a = run_name("", "p", "m", "d", {"lr": "1e-5"}, {"lr": "1e-5"})
    b = run_name("", "p", "m", "d", {"lr": "1E_5"}, {"lr": "1E_5"})
    assert a != b


def test_hash_is_stable_and_ignores_key_order():
    assert combination_hash("p", "m", "d", {"a": 1, "b": 2}) == combination_hash("p", "m", "d", {"b": 2, "a": 1})
    assert combination_hash("p", "m", "d", {"a": 1}) != combination_hash("p", "m", "d", {"a": "1.0"})


def test_ten_thousand_long_names_are_unique_valid_and_short():
    model = "a-very-long-model-name-that-alone-would-fill-most-of-the-sixty-three-characters"
    names = set()
    for i in range(100):
        for j in range(100):
            hp = {"learning_rate": i / 1000, "hidden_dimension": j}
            name = run_name("", "example", model, "dataset-with-long-name", {k: str(v) for k, v in hp.items()}, hp)
            assert is_name(name), name
            assert len(name) <= 63
            names.add(name)
    assert len(names) == 10_000


@pytest.mark.parametrize("text", ["alice", "Model_A.v2", "x" * 80, "-weird-", "a b/c"])
def test_label_value_is_always_valid(text):
    assert is_label_value(label_value(text))
