"""The core every stage uses: configs, datasets, checkpoints, runs, devices, command dispatch.

Import the submodule you need (`from shared import datasets`); importing `shared` itself loads
nothing heavy, and nothing here imports torch at import time.
"""

from shared.errors import CheckpointError, ConfigError, DatasetError, UsageError

__all__ = ["CheckpointError", "ConfigError", "DatasetError", "UsageError"]
__version__ = "0.1.0"
