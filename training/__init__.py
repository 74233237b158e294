"""LabelLoop training engine: pure PyTorch + Ray, no Django.

    .venv/bin/python -m pytest tests/training -p no:django -q

Entry points take and return the frozen dataclasses in `training.contracts`:
`training.train.run_training`, `training.score.run_scoring`,
`training.acquisition.rank` and `training.acquisition.cold_start_order`.
Importing this package imports nothing heavy; each module imports what it needs.
"""

from __future__ import annotations
