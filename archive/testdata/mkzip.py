#!/usr/bin/env python3
"""Write ZIP archives the way Pioreactor does, for the archive package tests.

Usage: python3 mkzip.py OUTDIR

unit.zip          a per-unit export: sorted tree, STORED directory entries,
                  DEFLATE files with modes and mtimes, a ZIP64 member, and the
                  duplicate pioreactor_export_metadata.json quirk.
aggregate.zip     the leader's $broadcast layout: entries of unit.zip re-added
                  with writestr under "leader1/" (all DEFLATE, 0600 / 040775).
streamed.zip      written to a non-seekable stream: DEFLATE entries with data
                  descriptors, one with 64-bit (ZIP64) descriptor sizes.
streamed_stored.zip  a STORED entry with a data descriptor (cannot be streamed).

Everything is deterministic (fixed content, modes and times) so the listings
can be compared with golden files.
"""
import json
import os
import random
import sys
import tempfile
import zipfile

MTIME = 1785862492  # 2026-08-04T16:54:52Z
DATE_TIME = (2026, 8, 4, 16, 54, 52)


class Unseekable:
    def __init__(self, f):
        self.f = f

    def write(self, b):
        return self.f.write(b)

    def flush(self):
        self.f.flush()


def sqlite_like(n):
    rng = random.Random(42)
    rows = []
    size = 0
    i = 0
    while size < n:
        row = "%d|od_reading|worker1|%.6f|2026-08-04T16:%02d:%02d.%03dZ\n" % (
            i, 0.05 + rng.random() / 100, (i // 60) % 60, i % 60, i % 1000)
        rows.append(row)
        size += len(row)
        i += 1
    return "".join(rows).encode()[:n]


def make_tree(root):
    files = {
        ".image_metadata": (b"IMAGE_VERSION=26.7.2\n", 0o644),
        "config.ini": (b"[cluster.topology]\nleader_hostname=leader1\n\n[leds]\nA=IR\n", 0o664),
        "unit_config.ini": (b"[pioreactor]\nversion=1.1\n", 0o664),
        "storage/calibrations/od90/c1.yaml": (b"calibration_name: c1\ncurve_data_: [1.0, 0.0]\n", 0o644),
        "storage/pioreactor.sqlite-shm": (bytes(range(256)) * 8, 0o644),
        # The stale copy an earlier import left behind.
        "pioreactor_export_metadata.json": (b'{"metadata_version": 1, "name": "old"}', 0o600),
        "ui/caf\u00e9.txt": ("non-ASCII name\n".encode(), 0o640),
    }
    dirs = ["plugins", "storage", "storage/calibrations", "storage/calibrations/od90", "ui"]
    for d in dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for name, (data, mode) in files.items():
        p = os.path.join(root, name)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
    for d in dirs:
        os.chmod(os.path.join(root, d), 0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME))


def write_unit(path, root):
    from pathlib import Path
    base = Path(root)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(base.rglob("*")):
            arc = str(p.relative_to(base))
            if p.name == "pioreactor.sqlite-shm":
                zf.write(str(p), arcname=arc, compress_type=zipfile.ZIP_STORED)
            else:
                zf.write(str(p), arcname=arc)
        # The leader database: big members get ZIP64 headers; force it here.
        zi = zipfile.ZipInfo("storage/pioreactor.sqlite", DATE_TIME)
        zi.compress_type = zipfile.ZIP_DEFLATED
        zi.external_attr = 0o644 << 16
        with zf.open(zi, "w", force_zip64=True) as w:
            w.write(sqlite_like(300_000))
        meta = {"metadata_version": 1, "name": "leader1", "leader_hostname": "leader1",
                "is_leader": True, "app_version": "26.7.2",
                "exported_at_utc": "2026-08-04T16:54:52.123Z"}
        zi = zipfile.ZipInfo("pioreactor_export_metadata.json", DATE_TIME)
        zi.compress_type = zipfile.ZIP_DEFLATED
        zi.external_attr = 0o600 << 16
        zf.writestr(zi, json.dumps(meta))


def write_aggregate(path, unit_path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as agg, zipfile.ZipFile(unit_path) as unit:
        for info in unit.infolist():
            with unit.open(info) as f:
                data = f.read()
            zi = zipfile.ZipInfo("leader1/" + info.filename, DATE_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            if zi.filename.endswith("/"):
                zi.external_attr = (0o40775 << 16) | 0x10
            else:
                zi.external_attr = 0o600 << 16
            agg.writestr(zi, data)


def write_streamed(path, stored):
    with open(path, "wb") as f:
        with zipfile.ZipFile(Unseekable(f), "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data, z64 in [("a.txt", b"hello, stream\n" * 100, False),
                                    ("big.bin", sqlite_like(70_000), True),
                                    ("empty", b"", False)]:
                zi = zipfile.ZipInfo(name, DATE_TIME)
                zi.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                zi.external_attr = 0o644 << 16
                with zf.open(zi, "w", force_zip64=z64) as w:
                    w.write(data)


def main():
    out = sys.argv[1]
    with tempfile.TemporaryDirectory() as root:
        make_tree(root)
        write_unit(os.path.join(out, "unit.zip"), root)
    write_aggregate(os.path.join(out, "aggregate.zip"), os.path.join(out, "unit.zip"))
    write_streamed(os.path.join(out, "streamed.zip"), False)
    write_streamed(os.path.join(out, "streamed_stored.zip"), True)


if __name__ == "__main__":
    main()
