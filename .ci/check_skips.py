"""Fails when a pytest run (its JUnit XML report) skipped a test it should have run.

usage: python .ci/check_skips.py REPORT.xml [REPORT.xml ...]

Allowed skips:
  * the GPU tests (tests/test_cuda*.py skipped for want of a usable GPU: CI has none);
  * those whose "module::test: reason" matches the regular expression in the environment
    variable LAMINA_CI_ALLOWED_SKIPS (see tests/README.md), e.g. "could not import 'torch'"
    for a run whose parity tests another step repeats with torch installed.
Any other skip (a broken optional dependency such as matplotlib, a missing MPI, a missing
build feature) is printed and the exit status is 1. A report without any test is an error too.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

GPU = re.compile(r"^tests\.test_cuda\w*$")
GPU_REASON = re.compile(r"\bno usable GPU\b|\ba GPU is usable here\b")


def skips(report):
    """(test id, reason) of every skipped test of a JUnit XML report, and the number of tests."""
    root = ET.parse(report).getroot()
    cases = list(root.iter("testcase"))
    out = []
    for case in cases:
        for sk in case.findall("skipped"):
            reason = (sk.get("message") or "") + " " + (sk.text or "")
            out.append((f"{case.get('classname')}::{case.get('name')}", " ".join(reason.split())))
    return out, len(cases)


def allowed(test_id, reason, extra):
    module = test_id.split("::")[0]
    if GPU.match(module) and GPU_REASON.search(reason):
        return True
    return bool(extra) and re.search(extra, f"{test_id}: {reason}") is not None


def main(reports):
    if not reports:
        print(__doc__)
        return 2
    extra = os.environ.get("LAMINA_CI_ALLOWED_SKIPS", "")
    bad, total, n_skipped = [], 0, 0
    for report in reports:
        found, n = skips(report)
        total += n
        n_skipped += len(found)
        bad += [(t, r) for t, r in found if not allowed(t, r, extra)]
    if total == 0:
        print(f"check_skips: no test in {reports}")
        return 1
    for t, r in bad:
        print(f"SKIPPED (not allowed in CI): {t}: {r}")
    print(f"check_skips: {total} tests, {n_skipped} skipped, {len(bad)} of them not allowed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
