"""Starting N worker processes with torch's elastic launcher (what `torchrun` runs).

Why not `accelerate launch --cpu --num_processes 2`: on a CPU it silently starts ONE process
(world size 1, no error). torch's elastic agent starts the N processes itself, gives each its
RANK and WORLD_SIZE, hosts the rendezvous on 127.0.0.1, and watches them: when one dies, it
stops the others and raises `ChildFailedError`, which becomes one line here and a non-zero
exit, never a hang.

A worker killed by a signal leaves no Python traceback: what it said last is on its stderr
(a C++ library's `terminate called after throwing ...`, say). Ranks 1..N-1 print little else
there (a warning or two), so the launcher copies their stderr to a log file as well as to the
screen and puts the last line of the failed rank's into the error, unless SIGKILL or SIGTERM
ended it (those come from outside). Rank 0's stderr stays the terminal itself, so its progress
bar still draws; when rank 0 fails, its last words are just above the error.
"""

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

from shared.errors import UsageError
from training_kit.options import usable_cores


def free_port() -> int:
    """A port nothing listens on now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(port: int) -> int:
    """`port`, or a free one for 0; a port in use is the user's to change, so say so."""
    if port == 0:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(
                f"port {port} on 127.0.0.1 is in use (another run?); pick another with --port, "
                "or --port 0 for a free one"
            ) from None
    return port


def describe_exit(code: int) -> str:
    """`exit code 1`, or the signal's name for a process killed by one (`SIGKILL`)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkersFailed(Exception):
    """A worker died; the others were stopped. `exit_code` is what the command should return."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def last_words(log_dir: Path, rank: int) -> str:
    """The last non-blank line rank `rank` wrote to stderr, or '' (rank 0 or nothing kept)."""
    for path in log_dir.glob(f"**/attempt_*/{rank}/stderr.log"):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        said = [line.strip() for line in lines if line.strip()]
        if said:
            return said[-1]
    return ""


def launch_workers(
    num_processes: int, port: int, worker_argv: list[str], module: str = "training_kit.worker"
) -> float:
    """Run `python -m <module> *worker_argv` on `num_processes` processes; returns the wall
    seconds. Raises `WorkersFailed` when any worker fails."""
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    log_dir = Path(tempfile.mkdtemp(prefix="training_kit_logs_"))
    stderr_of_ranks_1_up = {rank: Std.ERR for rank in range(1, num_processes)}
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=num_processes,
        run_id=f"training_kit-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{port}",
        max_restarts=0,  # a failure is reported, not retried from scratch
        monitor_interval=0.5,
        logs_specs=DefaultLogsSpecs(
            log_dir=str(log_dir),
            redirects=stderr_of_ranks_1_up,  # to the log file...
            tee=stderr_of_ranks_1_up,  # ...and to the screen as well
        ),
    )
    # Each worker's share of the cores (Accelerate warns and picks 1 when this is unset).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // num_processes)))
    started = time.perf_counter()
    try:
        elastic_launch(config, sys.executable)("-u", "-m", module, *worker_argv)
    except SignalException as error:
        # Ctrl-C or SIGTERM: the agent forwarded it; the workers saved checkpoints/interrupted.
        name = signal.Signals(error.sigval).name
        raise WorkersFailed(f"{name}: the workers were asked to stop", 128 + error.sigval) from None
    except ChildFailedError as error:
        # The first to fail is the cause; the others were stopped (SIGTERM) by the agent.
        rank, first = error.get_first_failure()
        others = num_processes - 1
        # SIGKILL and SIGTERM come from outside (the OOM killer, a user): what the worker last
        # printed is not why it died, so it is not quoted.
        killed_from_outside = first.exitcode in (-signal.SIGKILL, -signal.SIGTERM)
        said = "" if killed_from_outside else last_words(log_dir, rank)
        raise WorkersFailed(
            f"worker rank {rank} {describe_exit(first.exitcode)}"
            + (f" (its last words: {said})" if said else "")
            + f"; the launcher stopped the other {others} worker{'s' if others != 1 else ''}",
            2 if first.exitcode == 2 else 1,  # 2: the worker said what was wrong (a usage error)
        ) from None
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    return time.perf_counter() - started
