"""One dispatcher for the commands every stage offers: `train`, `sample`, `eval`, ...

Why: all workspace members share one virtual environment and one `bin/` folder, so if two stages
each declared a console script called `train`, whichever was installed last would win, and
`uv run --package alpha train` could run beta's code. So only `shared` declares those scripts,
and a stage registers what it offers as an entry point in the group `shared.commands`:

    [project.entry-points."shared.commands"]
    train = "gpt.cli:train"          # a function taking argv: list[str]

When `train` runs, the stage is chosen by the first rule that gives an answer:
  1. `--stage NAME` on the command line;
  2. the `uv run --package NAME` that started us (read from the parent processes' arguments);
  3. the current directory, when it lies inside a stage's source folder;
  4. the only installed stage that offers the command;
otherwise it stops and lists the choices. A stage can also be named in the command itself,
`train gpt` style, through `stage-commands gpt train`.

Expected failures (`UsageError`) become one line on stderr and exit code 2.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from shared.errors import UsageError

GROUP = "shared.commands"


def _normalize(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def available(command: str | None = None) -> dict[str, dict[str, EntryPoint]]:
    """{stage: {command: entry point}} for every installed stage (optionally one command)."""
    table: dict[str, dict[str, EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        if command is not None and ep.name != command:
            continue
        stage = _normalize(ep.dist.name) if ep.dist is not None else ep.module.split(".")[0]
        table.setdefault(stage, {})[ep.name] = ep
    return table


# ----------------------------------------------------------------------------------------------
# Where the stage comes from


def _process_args(pid: int) -> tuple[list[str], int] | None:
    """(argv, parent pid) of a process, or None where the OS will not tell us."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():  # Linux
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            return None
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in () may contain spaces
        return [a.decode(errors="replace") for a in argv if a], ppid
    try:  # macOS and other Unixes
        out = subprocess.run(
            ["ps", "-o", "ppid=", "-o", "args=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        ppid, _, args = out.partition(" ")
        return args.split(), int(ppid)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _uv_package(argv: list[str]) -> str | None:
    """The NAME of `uv run --package NAME ...`, if argv is such a command line."""
    if not argv or Path(argv[0]).name not in ("uv", "uv.exe") or "run" not in argv:
        return None
    for i, arg in enumerate(argv):
        if arg == "--package" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--package="):
            return arg.split("=", 1)[1]
    return None


def stage_from_parent_processes(max_depth: int = 4) -> str | None:
    """The package named by the `uv run --package X` among our nearest ancestors, if any."""
    pid = os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            return None
        info = _process_args(pid)
        if info is None:
            return None
        argv, parent = info
        package = _uv_package(argv)
        if package is not None:
            return _normalize(package)
        pid = parent
    return None


def _source_folder(ep: EntryPoint) -> Path | None:
    """The project folder of an editable (workspace) install, from its direct_url.json."""
    import json
    from urllib.parse import unquote, urlparse

    if ep.dist is None:
        return None
    text = ep.dist.read_text("direct_url.json")
    if not text:
        return None
    url = json.loads(text).get("url", "")
    if not url.startswith("file://"):
        return None
    return Path(unquote(urlparse(url).path)).resolve()


def stage_from_directory(stages: dict[str, dict[str, EntryPoint]]) -> str | None:
    """The stage whose project folder contains the current directory."""
    cwd = Path.cwd().resolve()
    for stage, commands in stages.items():
        folder = _source_folder(next(iter(commands.values())))
        if folder is not None and (cwd == folder or folder in cwd.parents):
            return stage
    return None


def choose_stage(command: str, argv: list[str]) -> tuple[str, list[str]]:
    """Pick the stage for `command`; returns it and argv without any `--stage` option."""
    stages = available(command)
    if not stages:
        raise UsageError(
            f"no installed stage offers '{command}'; run `uv sync --all-packages` from the "
            "repository root, or see `uv run stage-commands`"
        )
    rest, explicit = [], None
    i = 0
    while i < len(argv):
        if argv[i] == "--stage" and i + 1 < len(argv):
            explicit, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--stage="):
            explicit = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1

    choices = ", ".join(sorted(stages))
    if explicit is not None:
        stage = _normalize(explicit)
        if stage not in stages:
            raise UsageError(
                f"stage {explicit!r} has no '{command}' command; choose from {choices}"
            )
        return stage, rest
    stage = stage_from_parent_processes()
    if stage is not None:
        if stage not in stages:
            raise UsageError(
                f"package {stage!r} has no '{command}' command; stages offering it: {choices}"
            )
        return stage, rest
    stage = stage_from_directory(stages)
    if stage is not None:
        return stage, rest
    if len(stages) == 1:
        return next(iter(stages)), rest
    raise UsageError(
        f"'{command}' is offered by several stages ({choices}); say which: "
        f"`uv run --package STAGE {command}` or `{command} --stage STAGE`"
    )


# ----------------------------------------------------------------------------------------------
# Running


def report_errors(action: Callable[[], int | None]) -> int:
    """Run `action`; an expected failure becomes one line on stderr and exit code 2."""
    try:
        return action() or 0
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run_command(command: str, argv: list[str] | None = None) -> int:
    """Dispatch `command` to its stage's handler, with `report_errors` around it."""
    argv = sys.argv[1:] if argv is None else argv

    def dispatch() -> int | None:
        stage, rest = choose_stage(command, argv)
        handler: Callable[[list[str]], int | None] = available(command)[stage][command].load()
        return handler(rest)

    return report_errors(dispatch)


def train() -> None:
    sys.exit(run_command("train"))


def sample() -> None:
    sys.exit(run_command("sample"))


def evaluate() -> None:
    sys.exit(run_command("eval"))


def translate() -> None:
    sys.exit(run_command("translate"))


def encode() -> None:
    sys.exit(run_command("encode"))


def pretrain() -> None:
    sys.exit(run_command("pretrain"))


def finetune() -> None:
    sys.exit(run_command("finetune"))


def embed() -> None:
    sys.exit(run_command("embed"))


def generate() -> None:
    sys.exit(run_command("generate"))


def sweep() -> None:
    sys.exit(run_command("sweep"))


def compare() -> None:
    sys.exit(run_command("compare"))


def make_chat_data() -> None:
    sys.exit(run_command("make-chat-data"))


def sft() -> None:
    sys.exit(run_command("sft"))


def make_pref_data() -> None:
    sys.exit(run_command("make-pref-data"))


def dpo() -> None:
    sys.exit(run_command("dpo"))


def rl() -> None:
    sys.exit(run_command("rl"))


def chat_eval() -> None:
    sys.exit(run_command("chat-eval"))


def chat() -> None:
    sys.exit(run_command("chat"))


def serve() -> None:
    sys.exit(run_command("serve"))


def quantize() -> None:
    sys.exit(run_command("quantize"))


def export() -> None:
    sys.exit(run_command("export"))


def exercise() -> None:
    sys.exit(run_command("exercise"))


def data_report() -> None:
    sys.exit(run_command("data-report"))


def list_commands() -> None:
    """`stage-commands` lists each stage's commands; `stage-commands STAGE COMMAND ...` runs one."""
    args = sys.argv[1:]
    if len(args) >= 2 and not args[0].startswith("-"):
        sys.exit(run_command(args[1], ["--stage", args[0], *args[2:]]))
    table = available()
    if not table:
        print("no stage commands are installed; run `uv sync --all-packages`")
        return
    for stage in sorted(table):
        for name, ep in sorted(table[stage].items()):
            print(f"uv run --package {stage} {name:<10} -> {ep.value}")
