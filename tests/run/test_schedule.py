import itertools
import math

import pytest

from prunesweep.config.schema import ScheduleConfig
from prunesweep.run.schedule import check_schedule, rates, target_at
from tests.compose import settings_error


def schedule(kind: str, steps: int = 4, initial: float = 0.0, target: float = 0.5, **kw) -> ScheduleConfig:
    return ScheduleConfig(kind=kind, steps=steps, initial=initial, target=target, **kw)


@pytest.mark.parametrize("kind", ["oneshot", "constant", "linear", "exponential", "cubic"])
def test_every_schedule_ends_at_target_and_rises(kind):
    values = rates(schedule(kind))
    assert math.isclose(values[-1], 0.5, rel_tol=1e-12)
    assert all(b > a for a, b in itertools.pairwise(values))


def test_oneshot_is_a_single_step():
    assert rates(schedule("oneshot", steps=5)) == [0.5]


def test_linear_values():
    assert [round(v, 6) for v in rates(schedule("linear", steps=4, initial=0.1, target=0.5))] == [0.2, 0.3, 0.4, 0.5]


def test_constant_prunes_same_fraction_of_remaining_each_step():
    values = [0.0, *rates(schedule("constant", steps=3, target=0.657))]
    kept = [1 - v for v in values]
    ratios = [b / a for a, b in itertools.pairwise(kept)]
    assert all(math.isclose(r, 0.7, rel_tol=1e-3) for r in ratios)


def test_exponential_doubles_from_dense():
    assert rates(schedule("exponential", steps=3, target=0.4)) == pytest.approx([0.1, 0.2, 0.4])


def test_cubic_matches_zhu_gupta_formula():
    cfg = schedule("cubic", steps=4, initial=0.0, target=0.8)
    for step in range(1, 5):
        assert target_at(cfg, step) == pytest.approx(0.8 * (1 - (1 - step / 4) ** 3))


def test_explicit_milestones_stop_at_the_target():
    cfg = schedule("explicit", milestones=[0.1, 0.3, 0.5])
    check_schedule(cfg)
    assert rates(cfg) == [0.1, 0.3, 0.5]
    assert rates(schedule("explicit", milestones=[0.1, 0.3, 0.5], target=0.3)) == [0.1, 0.3]
    assert rates(schedule("explicit", milestones=[0.1, 0.3, 0.5], target=0.2)) == [0.1, 0.2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["schedule.kind=bogus"], "Invalid value 'bogus', expected one of [oneshot, constant,"),
        (["schedule=linear", "schedule.steps=0"], "schedule.steps=0 must be >= 1"),
        (["schedule=linear", "pruner.rate=1.0"], "pruner.rate=1.0 must be in [0, 1)"),
        (["schedule=linear", "schedule.initial=0.6"], "schedule.initial=0.6 must be in [0, target=0.5]"),
        (["schedule.milestones=[0.3,0.1,0.5]"], "strictly increasing"),
        (["schedule.milestones=[]"], "must be non-empty"),
    ],
)
def test_bad_schedules_are_rejected_in_one_line(data_dir, overrides, message):
    assert message in settings_error(data_dir, *overrides)
