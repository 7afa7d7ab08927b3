"""kpac_tf.utils.memory: available memory, the smaller of the machine's and a cgroup's."""

from kpac_tf.utils import memory


def test_the_smaller_of_the_machine_and_the_cgroup(tmp_path, monkeypatch):
    machine = memory.available_bytes()
    assert machine is not None and machine > 0  # Linux: /proc/meminfo
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(f"{3 * 2**30}\n")
    usage.write_text(f"{2**30}\n")
    monkeypatch.setattr(memory, "_CGROUP_FILES", ((str(limit), str(usage)),))
    assert memory.available_bytes() == min(2 * 2**30, memory._meminfo_available())
    limit.write_text("max\n")  # cgroup v2 without a limit
    assert abs(memory.available_bytes() - machine) < 2**30


def test_sizes_read_as_people_write_them():
    assert memory.describe(2.54e9) == "2.5 GB"
    assert memory.describe(820e6) == "820 MB"
