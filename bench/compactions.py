#!/usr/bin/env python3
"""What RocksDB's compactions cost, by column family, in a data directory: read from the
`compaction_finished` events of its LOG (the CPU each compaction took and the bytes it wrote),
and the files it moved down a level without rewriting them ("trivial moves").

    ops/omniroute serve --http 127.0.0.1:18181 --data /tmp/load-data &
    bench/serve_load.py --port 18181 --events 10000000 --pid $!
    bench/compactions.py /tmp/load-data

The ingest benchmark's runs end before RocksDB's first compaction; a server under sustained
load (serve_load.py) shows what they cost. Only the current LOG is read: RocksDB starts a new
one (keeping the old as LOG.old.*) each time the database is opened.
"""
import collections
import json
import os
import re
import sys


def main():
    if len(sys.argv) != 2:
        print("usage: bench/compactions.py DATA_DIR", file=sys.stderr)
        return 2
    log_path = os.path.join(sys.argv[1], "LOG")
    if not os.path.isfile(log_path):
        print(f"bench/compactions.py: no RocksDB LOG in {sys.argv[1]}", file=sys.stderr)
        return 2
    family_of_job = {}
    count = collections.Counter()
    cpu_s = collections.Counter()
    written_mb = collections.Counter()
    moved = collections.Counter()
    with open(log_path, errors="replace") as log:
        for line in log:
            started = re.search(r"\[([^\]]+)\] \[JOB (\d+)\] Compacting", line)
            if started:
                family_of_job[int(started.group(2))] = started.group(1)
            trivial = re.search(r"\[([^\]]+)\] Moved #(\d+) files", line)
            if trivial:
                moved[trivial.group(1)] += int(trivial.group(2))
            if '"compaction_finished"' in line:
                event = json.loads(line[line.index("{"):])
                family = family_of_job.get(event["job"], "?")
                count[family] += 1
                cpu_s[family] += event["compaction_time_cpu_micros"] / 1e6
                written_mb[family] += event["total_output_size"] / 1e6
    for family in sorted(set(count) | set(moved), key=lambda f: (-cpu_s[f], f)):
        print(f"{family:16s} compactions {count[family]:4d}  CPU {cpu_s[family]:8.2f} s  "
              f"written {written_mb[family]:9.0f} MB  files moved as they were {moved[family]}")
    print(f"all: CPU {sum(cpu_s.values()):.2f} s, written {sum(written_mb.values()):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
