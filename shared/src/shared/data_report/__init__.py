"""`data-report`: what is in a dataset, and what is wrong with it, before a model trains on it.

    rows.py      reading every row of a source, faults and all (`read_table`)
    checks.py    what can be wrong with a row or a split (`KINDS`, `check_table`)
    overlap.py   evaluation rows the training split already holds (`find_leaks`)
    tokens.py    the stage's tokens, lengths and unknown rate (`Tokens`, `Vocabulary`, `StageData`)
    summary.py   report.json and the one-screen summary
    figures.py   the length histograms
    clean.py     `--write-clean`: the rows that pass, the others counted by reason
    command.py   the verb: options, the run folder, the order of the steps

A stage offers the verb with a hook of a few lines (`packages/<stage>/src/<stage>/data_report.py`):

    from shared.data_report import StageData, data_report_command

    def data_report(argv: list[str]) -> None:
        data_report_command(StageData("mystage", "sst2", my_tokens), argv)

registered as `data-report = "<stage>.data_report:data_report"` under `shared.commands`.
"""

from shared.data_report.command import DataReportConfig, analyse, data_report_command
from shared.data_report.tokens import (
    StageData,
    Tokens,
    Vocabulary,
    characters,
    word_tokens,
    words,
)

__all__ = [
    "DataReportConfig",
    "StageData",
    "Tokens",
    "Vocabulary",
    "analyse",
    "characters",
    "data_report_command",
    "word_tokens",
    "words",
]
