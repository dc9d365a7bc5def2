"""The burst benchmark's CPU floor counts busy time only (benchmarks/burst.py)."""

from benchmarks.burst import CLOCK_TICKS, busy_cpu_seconds

STAT = """cpu  1000 20 300 5000 400 10 30 40 900 0
cpu0 500 10 150 2500 200 5 15 20 450 0
intr 123
"""


def test_busy_time_is_everything_but_idle_and_iowait():
    # user + nice + system + irq + softirq + steal; guest is already inside user
    assert busy_cpu_seconds(STAT) == (1000 + 20 + 300 + 10 + 30 + 40) / CLOCK_TICKS


def test_a_spawn_costs_the_busy_time_between_two_readings():
    later = STAT.replace("cpu  1000 20 300 5000", "cpu  1100 20 350 9000", 1)
    assert busy_cpu_seconds(later) - busy_cpu_seconds(STAT) == 150 / CLOCK_TICKS
