"""Judge a model's answers by running the code in them (SQL and Python tasks).

``tasks`` loads hand-written task files (JSONL, ``docs/evaluation.md``),
``answers`` finds the code in an answer, ``sandbox`` runs untrusted code in a
fenced-in child process and ``checks`` turns runs into verdicts and pass
rates.  Standard library only: importing this package is fast and pulls in no
torch, transformers or flwr.
"""

from .answers import extract_code, first_statement, python_from_answer, sql_from_answer
from .checks import Verdict, check_answer, check_answers, compare_rows, pass_rates
from .sandbox import Limits, RunResult, SqlResult, run_python, run_sql, sandbox_layers
from .tasks import PythonTask, SqlTask, Task, TaskError, load_tasks

__all__ = ["Limits", "PythonTask", "RunResult", "SqlResult", "SqlTask", "Task", "TaskError",
           "Verdict", "check_answer", "check_answers", "compare_rows", "extract_code",
           "first_statement", "load_tasks", "pass_rates", "python_from_answer", "run_python",
           "run_sql", "sandbox_layers", "sql_from_answer"]
