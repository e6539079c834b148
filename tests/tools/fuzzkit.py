"""What restorefuzz.py, protofuzz.py and argfuzz.py share: their common
options, the seeds, a ringkv/redis-server pair started and stopped as
difffuzz.py does it, and a process's peak RSS."""

import os
import random
import types

from difffuzz import ROOT, parse_seeds, start_servers, stop_servers


def common_args(ap, ringkv_port, redis_port):
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", help="e.g. 1-20 or 3,5,9")
    ap.add_argument("--ringkv", default=os.path.join(ROOT, "target", "release", "ringkv"))
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--ringkv-port", type=int, default=ringkv_port)
    ap.add_argument("--redis-port", type=int, default=redis_port)
    ap.add_argument("--stop-on-first", action="store_true")
    # difffuzz.start_servers reads it (added there after these tools).
    ap.add_argument("--shards", type=int, default=3)
    ap.set_defaults(no_start=False)


def seeds_of(opts):
    return parse_seeds(opts.seeds) if opts.seeds else [opts.seed if opts.seed is not None else random.randrange(1 << 30)]


def start_pair(opts, prefix, extra=()):
    """ringkv (--shards 3) and redis-server on opts' ports: (workdir, [ringkv, redis])."""
    return start_servers(opts, list(extra), prefix)


def stop_pair(procs, found, workdir):
    """Stops both; the work dir (server logs) is kept when something was found."""
    stop_servers(procs, types.SimpleNamespace(found=found), workdir)


def hwm_kb(pid):
    """The process's peak RSS (VmHWM) in kB, None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
