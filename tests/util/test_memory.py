"""Per-stage peak memory: the kernel's high-water mark, reset at the start of every stage."""

import sys

import pytest
import torch

from prunesweep.util.memory import stage_peak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
MIB = 1 << 20


def test_a_stage_peak_counts_what_the_stage_allocated_and_the_next_stage_starts_afresh():
    with stage_peak("before") as before:
        pass
    with stage_peak("big") as big:
        block = torch.ones(256 * MIB // 4)  # 256 MiB of float32, touched
        del block
    with stage_peak("after") as after:
        pass
    assert big["big_peak_rss_bytes"] >= before["before_peak_rss_bytes"] + 240 * MIB
    assert after["after_peak_rss_bytes"] < big["big_peak_rss_bytes"] - 200 * MIB  # the peak was reset
    assert not torch.cuda.is_available() or "big_peak_accelerator_bytes" in big
