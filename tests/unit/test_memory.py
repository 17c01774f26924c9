"""The memory guard's policy: shrink under pressure, never below the floor, grow back to configured."""

from __future__ import annotations

import itertools
import platform
import subprocess
import sys

import pytest

from bqhold.tasks.core.memory import (
    PLENTIFUL,
    BatchPeak,
    LoadAllowance,
    MemoryPolicy,
    MemoryReading,
    cgroup_memory,
    critical_share,
    decide,
    load_allowance,
    read_memory,
    tune_heap,
)

LIMIT = 1000 * 2**20
POLICY = MemoryPolicy(configured=10_000, minimum=1_000)


def at(share: float) -> MemoryReading:
    """A reading with RSS at `share` of a 1000 MB limit."""
    return MemoryReading(int(LIMIT * share), LIMIT, "explicit")


@pytest.mark.parametrize("share", [0.90, 0.95, 1.2])
def test_above_critical_drops_to_the_floor_and_collects(share):
    decision = decide(POLICY, 8_000, at(share))

    assert decision.size == 1_000
    assert decision.collect
    assert "critical" in decision.reason


@pytest.mark.parametrize(("current", "expected"), [(10_000, 5_000), (3_000, 1_500), (1_500, 1_000), (1_000, 1_000)])
def test_above_warning_halves_but_never_below_the_floor(current, expected):
    decision = decide(POLICY, current, at(0.85))

    assert decision.size == expected
    assert not decision.collect
    assert "halved" in decision.reason


def test_repeated_warnings_settle_at_the_floor():
    size = 10_000
    for _ in range(10):
        size = decide(POLICY, size, at(0.85)).size

    assert size == 1_000


def test_comfortable_memory_grows_additively():
    decision = decide(POLICY, 1_000, at(0.30))

    assert decision.size == 3_500  # + 25% of configured
    assert "grows" in decision.reason


def test_growth_is_capped_at_the_configured_size():
    size = 1_000
    sizes = []
    for _ in range(6):
        size = decide(POLICY, size, at(0.30)).size
        sizes.append(size)

    assert sizes == [3_500, 6_000, 8_500, 10_000, 10_000, 10_000]


def test_just_below_warning_holds_the_size():
    decision = decide(POLICY, 4_000, at(0.75))

    assert decision.size == 4_000
    assert decision.reason == ""


def test_configured_size_is_never_exceeded():
    assert decide(POLICY, 50_000, at(0.10)).size == 10_000


def test_floor_is_the_configured_size_when_that_is_smaller_than_the_minimum():
    small = MemoryPolicy(configured=200, minimum=1_000)

    assert decide(small, 200, at(0.99)).size == 200


def test_reason_states_usage_limit_and_its_source():
    reason = decide(POLICY, 8_000, MemoryReading(900 * 2**20, LIMIT, "cgroup v2")).reason

    assert "900 MB" in reason and "90%" in reason and "1,000 MB" in reason and "cgroup v2" in reason


def test_custom_thresholds_are_honoured():
    policy = MemoryPolicy(configured=10_000, warn=0.5, critical=0.6)

    assert decide(policy, 10_000, at(0.55)).size == 5_000
    assert decide(policy, 10_000, at(0.65)).collect


def test_used_is_rss_over_limit():
    assert at(0.25).used == pytest.approx(0.25)


def test_explicit_limit_is_used_when_given():
    reading = read_memory(explicit_limit_mb=512)

    assert reading.limit_source == "explicit"
    assert reading.limit_bytes == 512 * 2**20
    assert reading.rss_bytes > 0


# -- the limit that really applies: cgroups, from /proc/self/cgroup ----------------------------


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_and_working_set_of_a_container(tmp_path):
    _write(tmp_path / "cgroup.controllers", "cpu memory\n")
    _write(tmp_path / "memory.max", f"{512 * 2**20}\n")
    _write(tmp_path / "memory.current", f"{300 * 2**20}\n")
    _write(tmp_path / "memory.stat", f"anon 1\ninactive_file {100 * 2**20}\n")

    found = cgroup_memory("0::/\n", root=tmp_path)

    assert (found.limit_bytes, found.working_set_bytes, found.source) == (512 * 2**20, 200 * 2**20, "cgroup v2")


def test_cgroup_v2_unlimited_is_no_limit(tmp_path):
    _write(tmp_path / "cgroup.controllers", "memory\n")
    _write(tmp_path / "memory.max", "max\n")

    assert cgroup_memory("0::/\n", root=tmp_path) is None


def test_cgroup_v1_nested_group_takes_the_tightest_ancestor(tmp_path):
    memory = tmp_path / "memory"
    _write(memory / "memory.limit_in_bytes", "9223372036854771712\n")
    _write(memory / "jobs" / "memory.limit_in_bytes", f"{256 * 2**20}\n")
    _write(memory / "jobs" / "memory.usage_in_bytes", f"{120 * 2**20}\n")
    _write(memory / "jobs" / "memory.stat", f"total_inactive_file {20 * 2**20}\n")
    _write(memory / "jobs" / "run-7" / "memory.limit_in_bytes", f"{1024 * 2**20}\n")
    _write(memory / "jobs" / "run-7" / "memory.usage_in_bytes", f"{90 * 2**20}\n")

    found = cgroup_memory("4:memory:/jobs/run-7\n1:cpu:/\n", root=tmp_path)

    assert (found.limit_bytes, found.working_set_bytes, found.source) == (256 * 2**20, 100 * 2**20, "cgroup v1")


def test_no_memory_controller_means_no_cgroup_limit(tmp_path):
    assert cgroup_memory("1:cpu:/\n", root=tmp_path) is None


# -- the pre-allocation check -------------------------------------------------------------------


def test_batch_is_shrunk_to_what_fits_below_critical():
    policy = MemoryPolicy(configured=100_000, expansion=10)
    reading = MemoryReading(rss_bytes=500 * 2**20, limit_bytes=1000 * 2**20, limit_source="cgroup v2")

    decision = decide(policy, 100_000, reading, bytes_per_row=1000)

    # 400 MB left below 90%; 10 KB per row -> 41,943 rows
    assert decision.size == 41_943
    assert "needs ~954 MB" in decision.reason and "cgroup v2" in decision.reason


def test_batch_that_fits_is_left_alone_and_unknown_row_size_skips_the_check():
    policy = MemoryPolicy(configured=10_000)
    reading = MemoryReading(rss_bytes=100 * 2**20, limit_bytes=1000 * 2**20, limit_source="machine")

    assert decide(policy, 10_000, reading, bytes_per_row=300).size == 10_000
    assert decide(policy, 10_000, reading, bytes_per_row=0).size == 10_000


def test_the_critical_level_is_ten_points_above_the_warning_threshold():
    assert critical_share(80) == pytest.approx(0.90)
    assert critical_share(95) == 0.99


MB = 2**20


@pytest.mark.parametrize(
    ("rss_mb", "limit_mb", "expected"),
    [
        (300, 8000, PLENTIFUL),  # the machine's memory: the load gets what it always had
        (300, 600, LoadAllowance(192, 2)),  # 540 - 300 - 8 = 232: room for the ceiling
        (250, 400, LoadAllowance(102, 1)),  # 360 - 250 - 8: the room left below critical, one thread
        (293, 400, LoadAllowance(64, 1)),  # 59 MB of room: the floor DuckDB needs to parse at all
        (390, 400, LoadAllowance(64, 1)),  # already over critical: still the floor, never zero
    ],
)
def test_the_warehouse_load_gets_the_room_left_below_critical(rss_mb, limit_mb, expected):
    reading = MemoryReading(rss_mb * MB, limit_mb * MB, "explicit")

    assert load_allowance(reading, critical=0.90) == expected


# -- convergence: sizing from the last batch's peak ---------------------------------------------

FOOTPRINT_MB = 180  # held before the first batch: imports, the flow engine, HOLD₂


def _run_guard(limit_mb: int, peak_mb, batches: int = 40, configured: int = 50_000) -> list[int]:
    """The sizes the guard picks over `batches` batches of a made-up process whose batch of n rows
    peaks at `peak_mb(n, largest)`, `largest` being the largest batch since memory was last freed
    (the guard asking for a collection), whose memory the allocators keep between batches."""
    policy = MemoryPolicy(configured=configured, footprint=FOOTPRINT_MB * MB)
    limit = limit_mb * MB
    size, largest, sizes, last = configured, 0, [], None
    for _ in range(batches):
        reading = MemoryReading(int((FOOTPRINT_MB + 0.8 * (largest * 4.3 / 1000)) * MB), limit, "explicit")
        decision = decide(policy, size, reading, bytes_per_row=360, last=last)
        size = decision.size
        sizes.append(size)
        largest = max(0 if decision.collect else largest, size)
        last = BatchPeak(size, int(peak_mb(size, largest) * MB))
    return sizes


def linear(per_row_kb: float, above_mb: float = 0.0):
    """A batch's peak: the footprint, `above_mb` that does not scale, and `per_row_kb` per row."""
    return lambda rows, _largest: FOOTPRINT_MB + above_mb + rows * per_row_kb / 1000


def test_under_a_tight_limit_the_size_settles_at_one_that_fits_not_at_the_floor():
    sizes = _run_guard(400, linear(4.3, above_mb=20))

    settled = sizes[-1]
    assert sizes[-20:] == [settled] * 20, sizes  # it stops moving
    assert 30_000 <= settled < 50_000  # (360 - 180 - 20) MB / 4.3 KB = 37,209 rows fit below critical
    assert FOOTPRINT_MB + 20 + settled * 4.3 / 1000 <= 360  # and its peak stays below critical


def test_memory_kept_by_the_allocators_after_a_large_batch_does_not_collapse_the_size():
    # Allocators keep most of the largest batch's memory until it is freed; a later batch reuses
    # it, so its peak is the larger of that and its own need. Readings between batches stay high.
    sizes = _run_guard(400, lambda rows, largest: FOOTPRINT_MB + max(0.9 * largest, rows) * 4.3 / 1000)

    assert sizes[-20:] == [sizes[-1]] * 20, sizes
    assert sizes[-1] >= 20_000


def test_noisy_peaks_do_not_make_the_size_oscillate():
    noise = [0.0, 0.03, -0.02, 0.04, -0.03, 0.01, -0.04, 0.02]  # ±4% on the batch's rise
    count = iter(range(1000))

    def noisy(rows, _largest):
        return FOOTPRINT_MB + rows * 4.3 / 1000 * (1 + noise[next(count) % len(noise)])

    sizes = _run_guard(400, noisy, batches=60)

    changes = sum(1 for before, after in itertools.pairwise(sizes[10:]) if before != after)
    assert changes <= 3, sizes  # after settling, at most a few small corrections
    assert min(sizes[10:]) >= 30_000


@pytest.mark.parametrize("limit_mb", [400, 600, 2000])
def test_the_size_grows_back_to_what_fits_from_a_small_start(limit_mb):
    policy = MemoryPolicy(configured=50_000, footprint=FOOTPRINT_MB * MB)
    size, reading = 1_000, MemoryReading(FOOTPRINT_MB * MB, limit_mb * MB, "explicit")
    for _ in range(15):
        peak = BatchPeak(size, int((FOOTPRINT_MB + size * 4.3 / 1000) * MB))
        size = decide(policy, size, reading, last=peak).size

    fits = min(50_000, (0.9 * limit_mb - FOOTPRINT_MB) / 4.3 * 1000)
    assert 0.8 * fits <= size <= fits


def test_a_peak_over_critical_shrinks_in_proportion_and_says_why():
    policy = MemoryPolicy(configured=50_000, footprint=FOOTPRINT_MB * MB)
    reading = MemoryReading(347 * MB, 400 * MB, "explicit")

    decision = decide(policy, 50_000, reading, last=BatchPeak(50_000, 397 * MB))

    # 180 MB allowed above the footprint, the batch rose 217 MB: 90% of 50,000 × 180 / 217
    assert decision.size == 37_327
    assert decision.collect
    assert "peaked at 397 MB" in decision.reason and "over critical (90% of 400 MB" in decision.reason


def test_a_short_batch_at_the_end_of_a_file_does_not_make_the_next_one_grow_or_shrink():
    policy = MemoryPolicy(configured=50_000, footprint=FOOTPRINT_MB * MB)
    reading = MemoryReading(250 * MB, 400 * MB, "explicit")

    assert decide(policy, 30_000, reading, last=BatchPeak(2_000, (FOOTPRINT_MB + 30) * MB)).size == 30_000


def test_a_footprint_above_critical_leaves_only_the_floor():
    policy = MemoryPolicy(configured=50_000, footprint=380 * MB)
    reading = MemoryReading(385 * MB, 400 * MB, "explicit")

    assert decide(policy, 20_000, reading, last=BatchPeak(20_000, 390 * MB)).size == 1_000


# -- read ahead: two batches in memory only where there is room for them -----------------------


@pytest.mark.parametrize(
    ("share", "current", "last", "expected"),
    [
        (0.30, 10_000, None, True),  # full size, steady, well below the limit
        (0.55, 10_000, None, False),  # above half the limit
        (0.30, 5_000, None, False),  # the guard had cut the batch (it grows back first)
        (0.30, 10_000, BatchPeak(10_000, int(0.95 * LIMIT)), False),  # it shrinks the next one
    ],
    ids=["room", "over half", "cut", "shrinking"],
)
def test_the_next_batch_is_read_ahead_only_at_full_size_steady_and_below_half_the_limit(share, current, last, expected):
    assert decide(POLICY, current, at(share), last=last).read_ahead is expected


# A process frees a large block after smaller blocks were allocated above it (the heap cannot
# shrink below them) and reports how many MB of RSS the free handed back.
_FREED_MB = """
import sys
import psutil
from bqhold.tasks.core.memory import tune_heap

if sys.argv[1] == "mapped":
    assert "MALLOC_MMAP_THRESHOLD_" in tune_heap({})
rss = lambda: psutil.Process().memory_info().rss / 2**20
first = bytearray(30 * 2**20)  # mapped (above 128 KB), and freed: glibc's threshold rises to 30 MB
del first
block = bytearray(20 * 2**20)  # written through: resident
above = [bytearray(64) for _ in range(1000)]
before = rss()
del block
print(round(before - rss()))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc")
def test_with_large_blocks_mapped_a_freed_batch_buffer_leaves_the_process():
    def freed_mb(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FREED_MB, mode], capture_output=True, text=True, check=True)
        return int(done.stdout)

    assert freed_mb("heap") < 5  # glibc's default: the 20 MB stay, as a free fragment of the heap
    assert freed_mb("mapped") >= 19


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc")
def test_heap_settings_the_user_made_are_left_alone():
    assert tune_heap({"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_ARENA_MAX": "8"}) == []
    assert tune_heap({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}) == ["MALLOC_ARENA_MAX"]


# A process holding 300 MB starts another, which prints its own peak as bqhold reads it and as
# getrusage gives it, in MB.
_CHILD_PEAK = """
import subprocess, sys
held = bytearray(300 * 2**20)
child = "import resource; from bqhold.tasks.core.memory import peak_rss_bytes; "
child += "print(peak_rss_bytes() >> 20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10)"
print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="Linux carries ru_maxrss over exec")
def test_a_run_started_by_a_large_process_reports_its_own_peak_not_its_parents():
    done = subprocess.run([sys.executable, "-c", _CHILD_PEAK], capture_output=True, text=True, check=True)
    own, rusage = map(int, done.stdout.split())

    assert rusage >= 300, "getrusage gives the parent's RSS at exec"
    assert own < 200
