"""The top-level `seed` seeds calibration and recovery unless they are set, and every row records all three."""

from pathlib import Path

from prunesweep.run.cell import cell_fields
from prunesweep.run.validate import validate
from prunesweep.store.results import identity_hash
from tests.compose import compose_config


def fields(data_dir: str, *overrides: str) -> tuple[dict, str]:
    """The record fields and store key of a smoke cell with Wanda and LoRA recovery."""
    cfg = compose_config(
        ["experiment=smoke", "pruner=wanda", "recovery=lora", f"paths.data_dir={data_dir}", *overrides]
    )
    plan = validate(cfg)
    return cell_fields(plan.cfg, plan, Path("cell"), "h"), identity_hash(plan.cfg, plan.inputs)


def test_seed_drives_calibration_and_recovery_seeds_unless_they_are_set(data_dir) -> None:
    default, default_key = fields(data_dir)
    assert (default["seed"], default["calibration_seed"], default["recovery_seed"]) == (0, 0, 0)
    three, three_key = fields(data_dir, "seed=3")
    assert (three["seed"], three["calibration_seed"], three["recovery_seed"]) == (3, 3, 3)
    assert three_key != default_key
    pinned, _ = fields(data_dir, "seed=3", "pruner.calibration.seed=7", "recovery.seed=5")
    assert (pinned["seed"], pinned["calibration_seed"], pinned["recovery_seed"]) == (3, 7, 5)
