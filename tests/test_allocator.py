"""Freed tensors' memory is reused, not faulted in afresh: counted in page faults, in fresh processes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# 20 steps, each writing two tensors of 40 MiB (above glibc's largest adaptive mmap threshold) and freeing
# them, as a training step does with its activations
ALLOCATE = """
import resource, sys, torch
from intentrec.allocator import keep_freed_memory
kept = keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    first, second = torch.ones(10 * 2**20), torch.ones(10 * 2**20)
    del first, second
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(malloc: str) -> tuple[bool, int]:
    done = subprocess.run(
        [sys.executable, "-c", ALLOCATE],
        env={**os.environ, "INTENTREC_MALLOC": malloc},
        capture_output=True,
        text=True,
        check=True,
    )
    kept, faults = done.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="sets glibc's malloc")
def test_freed_memory_is_reused_unless_asked_not_to() -> None:
    kept, faults_kept = page_faults("keep")
    system, faults_system = page_faults("system")
    assert kept and not system
    # each fresh 40 MiB block faults in 10,240 pages; kept, about a third as many faults remain
    assert faults_system > 20 * 2 * 9_000
    assert faults_kept < faults_system / 2
