"""The memory figure the loaders and the full-resolution volume trust: the system's available
memory, capped by the room left under a cgroup's limit (containers, systemd slices)."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.io.common import available_memory, cgroup_room

GiB = 1 << 30


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


@pytest.mark.parametrize("membership, files, expected", [
    # cgroup v2, the process's own cgroup has a 4 GiB limit and uses 1 GiB
    ("0::/app.slice/job\n", {"app.slice/job/memory.max": f"{4 * GiB}\n", "app.slice/job/memory.current": f"{GiB}\n"},
     3 * GiB),
    # cgroup v2 without a limit
    ("0::/app.slice/job\n", {"app.slice/job/memory.max": "max\n", "app.slice/job/memory.current": "5\n"}, None),
    # a container: its own cgroup is the root of the mount
    ("0::/\n", {"memory.max": f"{2 * GiB}\n", "memory.current": f"{GiB // 2}\n"}, GiB + GiB // 2),
    # cgroup v1 (memory controller on its own hierarchy), a limit
    ("4:memory:/process_api/abc\n0::/\n",
     {"memory/process_api/abc/memory.limit_in_bytes": f"{8 * GiB}", "memory/process_api/abc/memory.usage_in_bytes": f"{2 * GiB}"},
     6 * GiB),
    # cgroup v1's "no limit" (a page-rounded 2^63)
    ("4:memory:/process_api/abc\n0::/\n",
     {"memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712", "memory/process_api/abc/memory.usage_in_bytes": "1"},
     None),
    # usage above the limit (reclaim pending): no room, never negative
    ("0::/x\n", {"x/memory.max": "100", "x/memory.current": "150"}, 0),
    # nothing readable: no cgroup figure
    ("", {}, None),
    # garbage in the files: ignored
    ("0::/x\n", {"x/memory.max": "lots", "x/memory.current": "1"}, None),
])
def test_cgroup_room(tmp_path, membership, files, expected):
    root = tmp_path / "cgroup"
    root.mkdir()
    _write(root, files)
    member = tmp_path / "self_cgroup"
    member.write_text(membership)
    assert cgroup_room(root, member) == expected


def test_available_memory_is_capped_by_the_cgroup(monkeypatch):
    import viewer.io.common as common

    assert available_memory() > 1 << 20  # this machine has more than a MiB free
    monkeypatch.setattr(common, "cgroup_room", lambda: 12345)
    assert common.available_memory() == 12345
