"""An independent oracle for Debian findings: what a correct scanner reports
for a root file system's dpkg status and a Debian Security Tracker JSON feed.

It shares no code with wharf and follows the rules written down in
docs/scanning.md, with version order decided by
`dpkg --compare-versions` itself:

- the release comes from the major of etc/debian_version (12 -> bookworm);
- every installed binary package is matched by its source package (the
  `Source:` field, else its own name) and source version (`Source: name
  (version)`, else its own Version);
- tracker entry for the release: `resolved` with fixed_version "0" -> not
  affected; `resolved` with V -> affected iff source version < V, status
  `fixed`, fix V; `open` -> affected, no fix (nodsa_reason "ignored" ->
  `will_not_fix`, "postponed" -> `fix_deferred`, urgency "end-of-life" ->
  `end_of_life`, else `affected`); `undetermined` -> skipped;
- severity: Debian urgency without `*` (unimportant -> Negligible, low, medium,
  high); otherwise the NVD CVSS v3 base score (>= 9.0 Critical, >= 7.0 High,
  >= 4.0 Medium, > 0 Low), else Unknown;
- one finding per installed binary package.

Anything it has no rule for (a dpkg state other than installed or gone, a
tracker status it does not know) raises OracleError rather than guessing.

Run as a script to print the findings for a root file system:
    python3 tests/e2e/debian_oracle.py ROOTFS [TRACKER.json [NVD_DIR]]
"""

import functools
import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TRACKER = REPO_ROOT / "tests" / "data" / "vulndb" / "debian" / "tracker-bookworm-fixture.json"
FIXTURE_NVD = REPO_ROOT / "tests" / "data" / "vulndb" / "nvd"

CODENAMES = {"9": "stretch", "10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}
URGENCY = {"unimportant": "Negligible", "low": "Low", "medium": "Medium", "high": "High"}

Package = namedtuple("Package", "name version source source_version arch")
Finding = namedtuple("Finding", "id package version source_package source_version status severity fix_version")


class OracleError(Exception):
    pass


@functools.lru_cache(maxsize=None)
def dpkg_lt(a: str, b: str) -> bool:
    """a < b in dpkg's order, as dpkg itself says."""
    r = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], capture_output=True, text=True)
    if r.returncode not in (0, 1) or r.stderr.strip():
        raise OracleError(f"dpkg --compare-versions {a!r} lt {b!r}: {r.stderr.strip()}")
    return r.returncode == 0


def stanzas(text: str):
    """The paragraphs of a dpkg status file as {field: value} (continuation lines dropped)."""
    cur = {}
    for line in text.split("\n"):
        if not line.strip():
            if cur:
                yield cur
            cur = {}
        elif line[0] in " \t":
            continue
        else:
            key, sep, value = line.partition(":")
            if not sep:
                raise OracleError(f"dpkg status line without a colon: {line!r}")
            cur[key] = value.strip()
    if cur:
        yield cur


def installed_packages(status_text: str) -> list:
    """Installed binary packages of a dpkg status file."""
    out = []
    for st in stanzas(status_text):
        want, _flag, state = (st.get("Status", "") + "  ").split(" ")[:3]
        if state in ("not-installed", "config-files"):
            continue  # no files of the package are on disk
        if state != "installed" or want not in ("install", "hold"):
            raise OracleError(f"{st.get('Package')}: no rule for Status {st.get('Status')!r}")
        version = st["Version"]
        source, source_version = st["Package"], version
        if "Source" in st:
            src = st["Source"]
            if "(" in src:
                name, _, rest = src.partition("(")
                source, source_version = name.strip(), rest.rstrip(")").strip()
            else:
                source = src
        out.append(Package(st["Package"], version, source, source_version, st.get("Architecture", "")))
    return out


def release_codename(debian_version: str) -> str:
    first = debian_version.split("\n", 1)[0].strip()
    major = first.split(".", 1)[0]
    if major not in CODENAMES:
        raise OracleError(f"no rule for etc/debian_version {first!r}")
    return CODENAMES[major]


def nvd_scores(nvd_dir) -> dict:
    """CVE id -> NVD's primary CVSS v3 base score, from NVD API 2.0 records."""
    scores = {}
    for p in sorted(Path(nvd_dir).glob("*.json")):
        doc = json.loads(p.read_text())
        recs = [v["cve"] for v in doc["vulnerabilities"]] if "vulnerabilities" in doc else [doc.get("cve", doc)]
        for cve in recs:
            metrics = cve.get("metrics", {})
            for key in ("cvssMetricV31", "cvssMetricV30"):
                prim = [m for m in metrics.get(key, []) if m.get("type") == "Primary"]
                if prim:
                    scores[cve["id"]] = float(prim[0]["cvssData"]["baseScore"])
                    break
    return scores


def severity(urgency: str, score) -> str:
    u = (urgency or "").replace("*", "").strip()
    if u in URGENCY:
        return URGENCY[u]
    if u not in ("", "not yet assigned", "end-of-life"):
        raise OracleError(f"no rule for urgency {urgency!r}")
    if score is None:
        return "Unknown"
    if score >= 9.0:
        return "Critical"
    if score >= 7.0:
        return "High"
    if score >= 4.0:
        return "Medium"
    return "Low" if score > 0 else "Unknown"


def findings(status_text: str, debian_version: str, tracker: dict, scores: dict) -> set:
    """The set of findings for one image."""
    release = release_codename(debian_version)
    out = set()
    for pkg in installed_packages(status_text):
        for cve, rec in tracker.get(pkg.source, {}).items():
            rel = rec.get("releases", {}).get(release)
            if rel is None:
                continue
            st = rel.get("status")
            fix = ""
            if st == "resolved":
                v = rel.get("fixed_version", "")
                if v == "0" or not dpkg_lt(pkg.source_version, v):
                    continue
                status, fix = "fixed", v
            elif st == "open":
                reason = rel.get("nodsa_reason") or ""
                if reason == "ignored":
                    status = "will_not_fix"
                elif reason == "postponed":
                    status = "fix_deferred"
                elif (rel.get("urgency") or "").replace("*", "").strip() == "end-of-life":
                    status = "end_of_life"
                else:
                    status = "affected"
            elif st == "undetermined":
                continue
            else:
                raise OracleError(f"{pkg.source} {cve}: no rule for tracker status {st!r}")
            out.add(Finding(cve, pkg.name, pkg.version, pkg.source, pkg.source_version, status,
                            severity(rel.get("urgency"), scores.get(cve)), fix))
    return out


def rootfs_findings(root, tracker_path=FIXTURE_TRACKER, nvd_dir=FIXTURE_NVD) -> set:
    """Findings for an unpacked root file system (only the files a scanner reads)."""
    root = Path(root)
    status = (root / "var" / "lib" / "dpkg" / "status").read_text()
    version = (root / "etc" / "debian_version").read_text()
    tracker = json.loads(Path(tracker_path).read_text())
    return findings(status, version, tracker, nvd_scores(nvd_dir))


def report_findings(report: dict) -> set:
    """The same tuples taken from a wharf JSON vulnerability report."""
    return {
        Finding(v["id"], v["package"], v["version"], v["source_package"], v["source_version"],
                v["status"], v["severity"], v["fix_version"])
        for v in report["vulnerabilities"]
    }


def main(argv) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    got = rootfs_findings(*argv[1:4])
    for f in sorted(got):
        print("\t".join(f))
    print(f"{len(got)} findings, {len({f.id for f in got})} vulnerabilities", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
