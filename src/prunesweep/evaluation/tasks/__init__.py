"""lm-eval task YAMLs over the offline data files, and their dataset loaders.

The folder works with stock lm-eval: `lm_eval --include_path $(prunesweep-tasks-path) --tasks piqa ...`, the data
read from `$PRUNESWEEP_DATA_DIR`. Importing this package is cheap (no torch, no lm-eval).
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
# Our task name -> lm-eval's hub task name, where they differ.
NO_OFFLINE_DATA = {"triviaqa"}  # tasks whose data is not in the offline data dir (hub only)
HUB_NAMES = {"lambada": "lambada_openai", "storycloze": "storycloze_2016", "webquestions": "webqs"}


def main() -> None:
    """`prunesweep-tasks-path`: print this folder (for `lm_eval --include_path`)."""
    print(TASKS_DIR)
