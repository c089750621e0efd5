#!/usr/bin/env python3
"""Compares the units nix/module.nix declares (JSON from nix/tests/units.nix
on stdin: {"single": …, "workers": …}) with the unit files in systemd/, on
the keys that matter: every [Service] and [Socket] key, StartLimit*= and the
dependencies. Nix store paths of the binary are read as /usr/bin/handoff.

usage: nix-units.py SYSTEMD_DIR < units.json
"""
import json
import re
import sys

def parse_unit(path):
    """Returns {section: {key: [values]}}; repeated keys accumulate."""
    out, section = {}, None
    for line in open(path):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        k, _, v = line.partition("=")
        out[section].setdefault(k.strip(), []).append(v.strip())
    return out

def norm(v, pkg):
    """Nix values as systemd would read them, as a list of words."""
    if isinstance(v, bool):
        return ["yes" if v else "no"]
    if isinstance(v, list):
        return [w for x in v for w in norm(x, pkg)]
    s = str(v).replace(pkg + "/bin/handoff", "/usr/bin/handoff")
    return s.split() if s else [""]

def words(vals):
    return [w for v in vals for w in (v.split() or [""])]

def compare(name, file_sec, nix_sec, pkg, errors, skip=()):
    for k, vals in file_sec.items():
        if k in skip:
            continue
        if k not in nix_sec:
            errors.append(f"{name}: {k}= is in systemd/ but not in the module")
            continue
        a, b = words(vals), norm(nix_sec[k], pkg)
        if a != b:
            errors.append(f"{name}: {k}= systemd/ {a} != module {b}")
    for k in nix_sec:
        if k not in file_sec and k not in skip:
            errors.append(f"{name}: {k}= is in the module but not in systemd/")

def main():
    sysd = sys.argv[1]
    data = json.load(sys.stdin)
    errors = []
    single, workers = data["single"], data["workers"]
    pkg = single["package"]

    svc = parse_unit(f"{sysd}/handoff.service")
    m = single["services"]["handoff"]
    compare("handoff.service [Service]", svc["Service"], m["serviceConfig"], pkg, errors)
    compare("handoff.service [Unit]", {k: v for k, v in svc["Unit"].items() if k.startswith("StartLimit")},
            {k: v for k, v in m["unitConfig"].items() if k.startswith("StartLimit")}, pkg, errors)
    if m["after"] != words(svc["Unit"]["After"]):
        errors.append(f"handoff.service: After= {svc['Unit']['After']} != {m['after']}")

    for unit, nixname in [("handoff.socket", "handoff"), ("handoff-admin.socket", "handoff-admin")]:
        f = parse_unit(f"{sysd}/{unit}")
        n = single["sockets"][nixname]
        compare(f"{unit} [Socket]", f["Socket"], n["socketConfig"], pkg, errors)
        if n["wantedBy"] != words(f["Install"]["WantedBy"]):
            errors.append(f"{unit}: WantedBy= differs")

    tmpl = parse_unit(f"{sysd}/handoff@.service")
    w = workers["services"]["handoff@2"]
    t = {k: [v.replace("%i", "2") for v in vals] for k, vals in tmpl["Service"].items()}
    compare("handoff@.service [Service] (instance 2)", t, w["serviceConfig"], pkg, errors)
    if w["partOf"] != words(tmpl["Unit"]["PartOf"]):
        errors.append("handoff@.service: PartOf= differs")
    asock = parse_unit(f"{sysd}/handoff-admin@.socket")
    compare("handoff-admin@.socket [Socket] (instance 2)",
            {k: [v.replace("%i", "2") for v in vals] for k, vals in asock["Socket"].items()},
            workers["sockets"]["handoff-admin@2"]["socketConfig"], pkg, errors)
    if "handoff-admin" in workers["sockets"]:
        errors.append("workers mode still declares handoff-admin.socket")
    tgt = parse_unit(f"{sysd}/handoff-workers.target")
    if workers["targets"]["handoff-workers"]["wants"] != words(tgt["Unit"]["Wants"]):
        errors.append("handoff-workers.target: Wants= differs")
    if "handoff" not in single["users"]:
        errors.append("module declares no user handoff")

    if errors:
        print("\n".join(errors))
        print(f"nix-units: FAIL: {len(errors)} difference(s) between nix/module.nix and systemd/")
        return 1
    n = len(svc["Service"]) + len(tmpl["Service"])
    print(f"nix-units: ok: module matches systemd/ on {n} [Service] keys and every [Socket] key")
    return 0

sys.exit(main())
