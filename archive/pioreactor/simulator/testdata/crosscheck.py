"""Read simulator archives with Python's zipfile and report what it sees.

Usage: crosscheck.py UNIT_ZIP UNIT_DIR AGGREGATE_ZIP CONFIG_INI
Prints one JSON object on stdout.
"""
import configparser
import io
import json
import sys
import zipfile
from pathlib import Path


def entries(zf):
    return [
        {
            "name": i.filename,
            "method": i.compress_type,
            "mode": i.external_attr >> 16,
            "dos_dir": bool(i.external_attr & 0x10),
            "size": i.file_size,
            "is_dir": i.is_dir(),
            "create_system": i.create_system,
            "date_time": list(i.date_time),
        }
        for i in zf.infolist()
    ]


def expected_names(base_dir):
    # The loop of unit_api.get_zipped_dot_pioreactor, names only.
    base_dir = base_dir.resolve()
    skip_backup = base_dir / "storage" / "pioreactor.sqlite.backup"
    names = []
    for path in sorted(base_dir.rglob("*")):
        if not path.exists():
            continue
        if not path.resolve().is_relative_to(base_dir):
            continue
        if path == skip_backup:
            continue
        arcname = str(path.relative_to(base_dir))
        if path.is_dir():
            arcname += "/"
        names.append(arcname)
    return names


def rewrite(config_path):
    config = configparser.ConfigParser()
    config.read(config_path)
    if not config.has_section("storage"):
        config.add_section("storage")
    config.set("storage", "temporary_cache", "/run/pioreactor/cache/local_intermittent_pioreactor_metadata.sqlite")
    out = io.StringIO()
    config.write(out, space_around_delimiters=False)
    return out.getvalue()


def main():
    unit_zip, unit_dir, agg_zip, config_ini = sys.argv[1:5]
    with zipfile.ZipFile(unit_zip) as zf:
        unit = {
            "entries": entries(zf),
            "testzip": zf.testzip(),
            "metadata": json.loads(zf.read("pioreactor_export_metadata.json")),
        }
    with zipfile.ZipFile(agg_zip) as zf:
        agg = {"entries": entries(zf), "testzip": zf.testzip()}
    print(json.dumps({
        "unit": unit,
        "expected": expected_names(Path(unit_dir)),
        "aggregate": agg,
        "config": rewrite(config_ini),
    }))


main()
