"""Per-stage peak memory: each stage's own peak, without erasing the process's peak that outside tools read."""

import subprocess
import sys
import textwrap

import pytest
import torch

from prunesweep.util.memory import stage_peak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
MIB = 1 << 20


def test_a_stage_peak_counts_what_the_stage_allocated_and_the_next_stage_does_not():
    with stage_peak("before") as before:
        pass
    with stage_peak("big") as big:
        block = torch.ones(256 * MIB // 4)  # 256 MiB of float32, touched
        del block
    with stage_peak("after") as after:
        pass
    assert big["big_peak_rss_bytes"] >= before["before_peak_rss_bytes"] + 240 * MIB
    assert after["after_peak_rss_bytes"] < big["big_peak_rss_bytes"] - 200 * MIB
    assert not torch.cuda.is_available() or "big_peak_accelerator_bytes" in big


def test_a_stage_below_the_process_peak_still_sees_its_own_allocation():
    with stage_peak("first"):
        block = torch.ones(512 * MIB // 4)
        del block
    with stage_peak("baseline") as baseline:
        pass
    with stage_peak("smaller") as smaller:
        block = torch.ones(128 * MIB // 4)
        block.add_(1)  # held long enough for the sampler
        del block
    assert smaller["smaller_peak_rss_bytes"] >= baseline["baseline_peak_rss_bytes"] + 100 * MIB


def test_measuring_stages_keeps_the_process_peak_that_getrusage_reports():
    script = textwrap.dedent(
        """
        import torch
        from prunesweep.util.memory import stage_peak
        with stage_peak("big"):
            block = torch.ones(512 * (1 << 20) // 4)
            del block
        with stage_peak("small"):
            pass
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    done = subprocess.run([sys.executable, "-c", "import resource" + script], check=True, capture_output=True)
    assert int(done.stdout) * 1024 >= 512 * MIB  # KiB: the 512 MiB block is still the process's peak
