"""PEFT's Arrow routes over every LoRA adapter a model holds: the assistant keeps it to the
experts alone, whatever was used before (the gateway, a mix), and answers the same."""

import pytest

from fedmoe_flwr.routing.router import Route
from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.tools.inference import Assistant, run_app_config
from fedmoe_flwr.tools.untrained_run import EXPERTS, untrained_run

pytestmark = pytest.mark.slow
PROMPT = "Write a SQL query that counts the orders per customer"


def _task_adapters(assistant):
    for module in assistant.model.modules():
        arrow = getattr(module, "lora_arrow", None)
        if arrow and "arrow_router" in arrow:
            return sorted(arrow["arrow_router"].task_adapter_names)
    raise AssertionError("no Arrow layer")


def test_arrow_mixes_only_the_experts_before_and_after_the_gateway_and_a_mix(tmp_path):
    run = RunView(untrained_run(tmp_path))
    assistant = Assistant(run, run_app_config(run))
    arrow = Route(sorted(EXPERTS), {}, {}, "arrow")
    first = assistant.ask(PROMPT, max_new_tokens=8, route=arrow).text
    assert _task_adapters(assistant) == sorted(f"x:{n}" for n in EXPERTS)
    assistant.ask(PROMPT, max_new_tokens=4, route=Route([], {}, {}, "gateway"))
    names = sorted(EXPERTS)[:2]
    assistant.ask(PROMPT, max_new_tokens=4, route=Route(names, dict.fromkeys(names, 0.5),
                                                        {}, "top2"))
    again = assistant.ask(PROMPT, max_new_tokens=8, route=arrow).text
    assert _task_adapters(assistant) == sorted(f"x:{n}" for n in EXPERTS)
    assert again == first
