"""`fedmoe evaluate`: answers generated in batches, judged by running them; the table and the
JSON scorecard (the sandbox itself is tested in test_execution.py)."""

import json

import pytest

from fedmoe_flwr.execution import Verdict, load_tasks
from fedmoe_flwr.tools.cli import main
from fedmoe_flwr.tools.evaluate import GenerationSettings, Scorecard, evaluate_base, table_rows

pytestmark = pytest.mark.slow
TASKS = ["data/eval/exec/sql.jsonl", "data/eval/exec/python.jsonl"]


def test_a_scorecard_counts_per_specialty_and_writes_every_answer():
    tasks = load_tasks(TASKS)
    sql = [t for t in tasks if t.specialty == "sql_expert"][:2]
    py = [t for t in tasks if t.specialty == "python_expert"][:1]
    card = Scorecard(sql + py)
    card.answers["x"] = ["a", "b", "c"]
    card.verdicts["x"] = [Verdict(True, "ok"), Verdict(False, "wrong rows"), Verdict(True, "ok")]
    columns, rows = table_rows(card)
    assert columns == ["adapter", "sql_expert", "python_expert", "all"]
    assert rows == [["x", "50.0%", "100.0%", "66.7%"]]
    doc = card.to_json()
    assert doc["tasks"] == {"sql_expert": 2, "python_expert": 1}
    assert doc["per_task"][1]["answers"]["x"] == {"passed": False, "reason": "wrong rows",
                                                  "answer": "b"}


def test_the_base_model_alone_is_scored_with_model_and_no_run(tmp_path, capsys):
    # smollm2-135m is the real embedded model: a few tasks, short answers (the judge runs
    # whatever it writes; its pass rate is the benchmark's business, not this test's).
    tasks = load_tasks(TASKS)
    subset = [tasks[0], tasks[-1]]
    card = evaluate_base("smollm2-135m", subset, GenerationSettings(max_new_tokens=24))
    assert len(card.answers["base"]) == 2 and all(card.answers["base"])
    assert all(isinstance(v.reason, str) and v.reason for v in card.verdicts["base"])
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"specialty": "sql_expert", "prompt": "Return 1.",
                               "setup": "", "expected": [[1]]}) + "\n")
    out = tmp_path / "card.json"
    code = main(["evaluate", str(one), "--model", "smollm2-135m", "--max-new-tokens", "16",
                 "--out", str(out)])
    assert code == 0
    assert "execution pass rate on 1 tasks" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["pass_rates"]) == {"base"}


def test_bad_task_files_and_settings_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"specialty": "sql_expert", "prompt": "x"}\n')
    assert main(["evaluate", str(bad), "--model", "qwen2-tiny"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", TASKS[0], "--model", "qwen2-tiny", "--max-new-tokens", "0"]) == 2
    assert "--max-new-tokens" in capsys.readouterr().err
