"""The ngrams router: n-grams, counts a node sends, naive Bayes scores, router.json round trip."""

import json
import math

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError, RouterConfig
from fedmoe_flwr.routing.centroids import ROUTER_FILE, CentroidBook, load_ngram_counts
from fedmoe_flwr.routing.ngrams import SMOOTHING, NgramModel, check_counts, ngram_counts, ngrams
from fedmoe_flwr.routing.router import Router, RouterSources


def test_ngrams_of_words_with_boundaries():
    # "<ab>" has no 5-gram: the whole padded word stands for it
    assert ngrams("Ab") == ["<ab", "ab>", "<ab>", "<ab>"]
    assert "<sel" in ngrams("SELECT *") and "<*>" in ngrams("SELECT *")


def test_naive_bayes_scores_hand_computed():
    # two buckets; specialty a saw bucket 0 three times, b saw bucket 1 once
    model = NgramModel({"a": np.array([3.0, 0.0]), "b": np.array([0.0, 1.0])})
    log_p = model.log_p
    assert log_p[0, 0] == pytest.approx(math.log((3 + SMOOTHING) / (3 + 2 * SMOOTHING)))
    assert log_p[1, 0] == pytest.approx(math.log(SMOOTHING / (1 + 2 * SMOOTHING)))


def test_router_sends_each_domain_to_its_counts():
    buckets = 4096
    counts = {"sql_expert": ngram_counts(["select the rows of a table with a join",
                                          "group by column having count"], buckets),
              "python_expert": ngram_counts(["write a python function that returns a list",
                                             "a class with a method and a dict"], buckets)}
    router = Router(RouterConfig(method="ngrams"), list(counts),
                    RouterSources(ngram_counts=lambda: counts))
    assert router.route("how do I join two tables").best == "sql_expert"
    assert router.route("a function returning a dict").best == "python_expert"
    with pytest.raises(ConfigError, match="no n-gram counts"):
        Router(RouterConfig(method="ngrams"), ["sql_expert", "docs_expert"],
               RouterSources(ngram_counts=lambda: counts))


@pytest.mark.parametrize("vec, match", [
    (np.array([1.0, -1.0], np.float32), "non-negative"),
    (np.array([1.0, np.nan], np.float32), "finite"),
    (np.zeros((2, 2), np.float32), "not a vector"),
    (np.zeros(3, np.float32), "buckets"),
])
def test_bad_counts_are_refused(vec, match):
    assert match in check_counts(vec, 2)


def test_router_json_round_trip_and_damage(tmp_path):
    book = CentroidBook(0)
    assert book.add_ngrams(1, "sql_expert", np.array([0, 2, 0, 1], np.float32)) is None
    assert book.add_ngrams(2, "sql_expert", np.array([1, 0, 0, 0], np.float32)) is None
    assert "buckets" in book.add_ngrams(3, "docs_expert", np.zeros(5, np.float32))
    (tmp_path / ROUTER_FILE).write_text(json.dumps(book.to_json()))
    got = load_ngram_counts(tmp_path)
    np.testing.assert_array_equal(got["sql_expert"], [1, 2, 0, 1])  # summed over nodes
    doc = book.to_json()
    doc["ngrams"]["specialties"]["sql_expert"] = {"-1": 3.0}
    (tmp_path / ROUTER_FILE).write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="is damaged: field 'ngrams.specialties.sql_expert'"):
        load_ngram_counts(tmp_path)
