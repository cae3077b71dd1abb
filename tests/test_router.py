"""Routers: keyword rules, softmax + top-k + threshold by hand, centroid geometry, errors."""

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError, RouterConfig
from fedmoe_flwr.routing.router import Router, RouterSources, choose, parse_keywords, softmax

EXPERTS = ["docs_expert", "python_expert", "sql_expert"]


def test_softmax_and_choose_hand_computed():
    # scores 0.2 / 0.1 / -0.5 at temperature 0.1: exp(2), exp(1), exp(-5) normalised.
    w = softmax({"a": 0.2, "b": 0.1, "c": -0.5}, 0.1)
    e = np.exp([2.0, 1.0, -5.0])
    assert w == pytest.approx(dict(zip("abc", e / e.sum(), strict=True)))  # 0.730, 0.269, 0.0007
    both = choose(w, {}, RouterConfig(top_k=2, threshold=0.25), "t")
    assert both.experts == ["a", "b"]
    assert both.weights["a"] == pytest.approx(0.730 / (0.730 + 0.2685), abs=1e-3)
    one = choose(w, {}, RouterConfig(top_k=2, threshold=0.3), "t")
    assert one.experts == ["a"] and one.weights == {"a": 1.0}
    # Nothing above the threshold: the best expert still answers.
    flat = choose({"a": 0.34, "b": 0.33, "c": 0.33}, {}, RouterConfig(threshold=0.9), "t")
    assert flat.experts == ["a"]


def test_keyword_router_single_multi_and_no_match():
    router = Router(RouterConfig(method="keywords", top_k=2, threshold=0.3), EXPERTS)
    assert router.route("Write a SQL query that counts rows per table").experts == ["sql_expert"]
    both = router.route("Write the SQL query and the Python function that runs it")
    assert set(both.experts) == {"sql_expert", "python_expert"}
    none = router.route("Hello there")
    assert none.experts == [] and set(none.scores) == set(EXPERTS)


@pytest.mark.parametrize(("spec", "message"), [
    ("sql_expert", "must look like 'specialty=regex'"),
    ("rust_expert=cargo", r"names \['rust_expert'\]"),
    ("sql_expert=(unclosed", "not a valid regex"),
])
def test_bad_keyword_rules_name_the_rule(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_keywords(spec, EXPERTS)


def test_custom_keyword_rules():
    rules = parse_keywords("sql_expert=\\bselect\\b;docs_expert=readme", EXPERTS)
    assert set(rules) == {"sql_expert", "docs_expert"}


def test_centroid_router_picks_nearest_after_centring():
    # Centroids share a large common component (like mean-pooled LM states do); centring on
    # their mean leaves the domain directions e0, e1, e2.
    common = np.array([0.0, 0.0, 0.0, 10.0])
    cents = {n: common + np.eye(4)[i] for i, n in enumerate(EXPERTS)}

    def embed(prompts):
        table = {"docs": [1, 0, 0], "py": [0, 1, 0], "sql": [0, 0, 1], "py+sql": [0, 1, 1]}
        return np.array([common + np.array(table[p] + [0.0]) for p in prompts])

    router = Router(RouterConfig(method="centroid", temperature=0.1), EXPERTS,
                    RouterSources(centroids=lambda: cents, embed=embed))
    assert [r.experts for r in router.route_many(["docs", "py", "sql"])] == [
        ["docs_expert"], ["python_expert"], ["sql_expert"]]
    mixed = router.route("py+sql")
    assert set(mixed.experts) == {"python_expert", "sql_expert"}
    assert mixed.weights["python_expert"] == pytest.approx(0.5)


def test_centroid_router_needs_every_centroid():
    with pytest.raises(ConfigError, match="no centroid for"):
        Router(RouterConfig(method="centroid"), EXPERTS, RouterSources(
            centroids=lambda: {"sql_expert": np.ones(3)}, embed=lambda p: p))


def test_loss_router_prefers_lowest_loss():
    losses = {"docs_expert": 3.0, "python_expert": 2.0, "sql_expert": 2.9}
    router = Router(RouterConfig(method="loss", threshold=0.3), EXPERTS,
                    RouterSources(prompt_losses=lambda p: losses))
    route = router.route("anything")
    assert route.experts == ["python_expert"]
    assert route.scores["python_expert"] == -2.0


def test_router_config_ranges():
    from fedmoe_flwr.config import parse_run_config

    with pytest.raises(ConfigError, match="router.threshold"):
        parse_run_config({"router.threshold": 0.0})
    with pytest.raises(ConfigError, match="router.method"):
        parse_run_config({"router.method": "random"})


def test_clauses_split_on_conjunctions_and_sentences():
    from fedmoe_flwr.routing.router import clauses

    assert clauses("Write the SQL query and the Python function that runs it") == [
        "Write the SQL query", "the Python function that runs it"]
    assert clauses("Write a SQL query that counts rows and sorts them") == [
        "Write a SQL query that counts rows"]  # "sorts them" is too short to be a request


def test_multi_clause_prompt_goes_to_both_experts_in_prompt_order():
    # The whole prompt's embedding leans to SQL (its words dominate); its clauses do not.
    common = np.array([0.0, 0.0, 0.0, 10.0])
    cents = {n: common + np.eye(4)[i] for i, n in enumerate(EXPERTS)}

    def embed(prompts):
        def one(p):
            p = p.lower()
            v = np.zeros(4)
            v[2] += 0.8 if "sql" in p else 0.0
            v[1] += (0.3 if "sql" in p else 1.0) if "python" in p else 0.0
            return common + v

        return np.array([one(p) for p in prompts])

    router = Router(RouterConfig(method="centroid", threshold=0.4), EXPERTS,
                    RouterSources(centroids=lambda: cents, embed=embed))
    whole = router._route_whole(["Write the SQL query and the Python function that runs it"])
    assert whole[0].experts == ["sql_expert"]
    route = router.route("Write the Python function and the SQL query that it runs")
    assert route.experts == ["python_expert", "sql_expert"] or route.experts == [
        "sql_expert", "python_expert"]
    assert route.best == "sql_expert" and route.method == "centroid+clauses"


def test_a_router_is_one_scorer_and_one_register_line():
    from fedmoe_flwr.config import parse_run_config
    from fedmoe_flwr.routing.router import Scorer, register_router, router_names

    class Longest(Scorer):
        """Routes to the specialty whose name is longest (a test method)."""

        name = "longest-name"

        def scores(self, prompts):
            return [{n: float(len(n)) for n in self.specialties} for _ in prompts]

    register_router(Longest)
    assert "longest-name" in router_names()
    cfg = parse_run_config({"router.method": "longest-name", "router.temperature": 0.1}).router
    assert Router(cfg, EXPERTS).route("anything").best == "python_expert"


def test_a_router_that_lacks_its_source_says_which():
    with pytest.raises(ConfigError, match="loss router needs prompt losses"):
        Router(RouterConfig(method="loss"), EXPERTS)
