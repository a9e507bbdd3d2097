"""The configuration reference and the program agree: every key the parser
knows (src/config/) is documented in docs/configuration.md with its
environment variable, in the table and in the example file, and every key
the docs name is one the program accepts (checked against the binary too)."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parser_keys():
    keys = {}
    cfg_dir = os.path.join(ROOT, "src", "config")
    for name in sorted(os.listdir(cfg_dir)):
        if name.endswith(".c"):
            text = open(os.path.join(cfg_dir, name)).read()
            for key, env in re.findall(r'"([a-z_]+(?:\.[a-z_]+)*)",\s*"(WHARF_[A-Z0-9_]+)"', text):
                keys[key] = env
    assert len(keys) > 20, keys
    return keys


def doc_text():
    return open(os.path.join(ROOT, "docs", "configuration.md")).read()


def test_every_parser_key_is_documented_and_vice_versa():
    keys = parser_keys()
    table = dict(re.findall(r"^\| `([a-z_.]+)` \| `(WHARF_[A-Z0-9_]+)` \|", doc_text(), re.M))
    assert table == keys, {"undocumented": sorted(set(keys) - set(table)),
                           "documented but unknown": sorted(set(table) - set(keys)),
                           "wrong variable": sorted(k for k in keys if k in table and table[k] != keys[k])}


def test_the_example_file_names_every_key():
    text = doc_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    stack, seen = [], set()  # (indent, name) of the mappings enclosing the line
    for line in block.splitlines():
        m = re.match(r"^(\s*)([a-z_]+):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        seen.add(".".join(name for _, name in stack))
    missing = sorted(k for k in parser_keys() if k not in seen)
    assert not missing, f"keys missing from the example wharf.yaml: {missing}"


def test_every_documented_variable_is_accepted_by_the_binary(wharf_bin, tmp_path):
    """A bad value for each documented variable is refused naming it, so
    each one is really read (an unknown variable would be silently ignored)."""
    for key, env in parser_keys().items():
        if key in ("data_dir",):
            continue
        # paths are free text: a file that cannot exist is their bad value
        path = key in ("tls.cert", "tls.key", "log.file")
        e = dict(os.environ)
        e.update({env: "/nonexistent-dir/x" if path else "\x01not-a-valid-value",
                  "WHARF_DATA_DIR": str(tmp_path / "data")})
        p = subprocess.run([wharf_bin, "serve"], env=e, capture_output=True, text=True, timeout=30)
        if key in ("tls.cert", "tls.key"):
            assert p.returncode != 0, (key, p.stderr)
            continue
        assert p.returncode != 0 and (key in p.stderr or env in p.stderr), (key, p.returncode,
                                                                          p.stderr[-500:])


def test_documented_ranges_are_the_binarys(wharf_bin, tmp_path):
    """Each range in docs/configuration.md's `accepted` column ("1-1024", "2K-1M",
    "0 (no cap)-1000000", "0 (...) to 64") is the one the binary enforces: a value just
    outside it is refused with "use LO to HI"."""
    rows = re.findall(r"^\| `([a-z_.]+)` \| `(WHARF_[A-Z0-9_]+)` \| [^|]* \| ([^|]*) \|$",
                      doc_text(), re.M)
    assert len(rows) == len(parser_keys()), "one table row per key"
    checked = 0
    for key, env, accepted in rows:
        m = re.match(r"(\d+[KMGT]?)(?: \([^)]*\))?(?:-| to )(\d+[KMGT]?)\b", accepted.strip())
        if not m:
            continue
        lo, hi = m.groups()
        value = "0" if lo != "0" else str(int(hi) + 1)
        e = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
        e.update({env: value, "WHARF_DATA_DIR": str(tmp_path / "data")})
        p = subprocess.run([wharf_bin, "config", "check"], env=e, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 1 and f"use {lo} to {hi}" in p.stderr, (key, accepted, p.stderr)
        checked += 1
    assert checked >= 25, checked
