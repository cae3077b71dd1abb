"""`fedmoe serve` request checks without a model: bounded JSON, real text, the whole
conversation, the same value rules as `fedmoe ask`, and start-up refusals."""

import json

import pytest

from fedmoe_flwr.config import ConfigError
from fedmoe_flwr.tools.cli import main
from fedmoe_flwr.tools.limits import SettingError, check_generation, check_router, check_text
from fedmoe_flwr.tools.serve import (
    MAX_JSON_DEPTH,
    ApiError,
    ChatRequest,
    check_key,
    check_server_settings,
    parse_body,
)

MODELS = ["auto", "sql_expert", "gateway"]


def chat(**body):
    return ChatRequest({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                        **body}, MODELS)


def test_a_deeply_nested_body_is_a_400_never_a_crash():
    deep = "[" * 100_000 + "]" * 100_000
    for raw in (deep.encode(), json.dumps({"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]
                                                  ]]]]]]]]]]]]]]]]]]]}).encode()):
        with pytest.raises(ApiError) as err:
            parse_body(raw)
        assert err.value.status == 400 and "nests deeper" in str(err.value)
    assert parse_body(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    assert MAX_JSON_DEPTH >= 4
    with pytest.raises(ApiError, match="not JSON"):
        parse_body(b"\xff\xfe")


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "user", "content": "\ud800 lone surrogate"}], "messages[0].content"),
    ([{"role": "user", "content": "   "}], "messages[0].content"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "wizard", "content": "hi"}], "messages[0]"),
    ([{"role": "user", "content": "hi", "extra": 1}], "messages[0]"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "messages[1]"),
    ([], "messages"),
])
def test_bad_messages_are_400s_naming_the_field(messages, param):
    with pytest.raises(ApiError) as err:
        chat(messages=messages)
    assert err.value.status == 400 and err.value.param == param, str(err.value)


def test_the_whole_conversation_is_kept_and_the_last_question_routes():
    req = chat(messages=[{"role": "system", "content": "Answer in SQL."},
                         {"role": "user", "content": "first"},
                         {"role": "assistant", "content": ""},
                         {"role": "user", "content": "count the orders"}])
    assert [m["role"] for m in req.messages] == ["system", "user", "assistant", "user"]
    assert req.prompt == "count the orders"


@pytest.mark.parametrize(("body", "param"), [
    ({"temperature": -0.5}, "temperature"), ({"temperature": 3.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10**6}, "max_tokens"), ({"max_tokens": True}, "max_tokens"),
    ({"seed": -1}, "seed"), ({"max_completion_tokens": 2000}, "max_tokens"),
])
def test_generation_values_follow_the_shared_rules(body, param):
    with pytest.raises(ApiError) as err:
        chat(**body)
    assert err.value.param == param
    # ... which are exactly what `fedmoe ask` applies
    key = {"max_completion_tokens": "max_tokens"}.get(next(iter(body)), next(iter(body)))
    args = {"max_tokens": 128, "temperature": 0.0, "seed": 0, key: next(iter(body.values()))}
    with pytest.raises(SettingError):
        check_generation(args["max_tokens"], args["temperature"], args["seed"])


def test_shared_checks_of_text_and_router_overrides():
    from fedmoe_flwr.config import RouterConfig

    assert check_text("a question") == "a question"
    for bad in ("", "   ", "\udcff", "x" * 200_000, None):
        with pytest.raises(SettingError):
            check_text(bad)
    assert check_router(RouterConfig(), top_k=1).top_k == 1
    with pytest.raises(SettingError, match="router.threshold"):
        check_router(RouterConfig(), threshold=5.0)


def test_the_key_is_compared_exactly_and_a_spaced_key_is_refused_at_start():
    check_key("k3y", "Bearer k3y")
    for header in ("Bearer k3y ", "Bearer  k3y", "k3y", None):
        with pytest.raises(ApiError):
            check_key("k3y", header)
    for key in (" k3y", "k3y\n", "k 3y", ""):
        with pytest.raises(ConfigError, match="API key"):
            check_server_settings(8000, key)
    for port in (0, 70000, -1):
        with pytest.raises(ConfigError, match="--port"):
            check_server_settings(port, None)


def test_serve_refuses_a_bad_port_or_key_before_loading_anything(tmp_path, capsys,
                                                                  monkeypatch):
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be" in capsys.readouterr().err
    monkeypatch.setenv("FEDMOE_API_KEY", "secret\n")
    assert main(["serve", str(tmp_path)]) == 2
    assert "API key" in capsys.readouterr().err


def test_ask_refuses_what_serve_refuses(tmp_path, capsys):
    for argv in (["ask", str(tmp_path), "   "], ["ask", str(tmp_path), "q", "--temperature",
                                                    "-1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("fedmoe: error: ") and ("empty" in err or "temperature" in err)
