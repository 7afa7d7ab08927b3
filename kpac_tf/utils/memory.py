"""How much memory this process may still take: the machine's available memory, or
less where a container's cgroup sets a limit."""


_CGROUP_FILES = (  # (limit, usage): cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
     "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_bytes():
    """Bytes this process can still allocate before the kernel would kill it: the
    smaller of /proc/meminfo's MemAvailable and the cgroup's limit less its usage.
    None where neither can be read (not Linux)."""
    candidates = [_meminfo_available()]
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            candidates.append(max(limit - usage, 0))
            break
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def describe(nbytes):
    """Bytes as "1.5 GB" / "820 MB"."""
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.0f} MB"
