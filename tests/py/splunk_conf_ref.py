"""An independent, deliberately small reference reader of Splunk .conf files (CONTRACT 1.6),
used by the integration tests to compute the rows the worker must write.

It shares no code with the C parser and is written straight from the contract:
- lines end in \\n or \\r\\n; a UTF-8 BOM is ignored;
- a line ending in a backslash continues on the next line: the backslash is dropped, the
  line break kept, and the continued line is value text whatever it starts with;
  trailing spaces and tabs are stripped before looking for the backslash ("\\ " continues);
- a line whose first non-blank character is `#` is a comment (only at the start of a
  logical line); `#` elsewhere is value text;
- `[name]`: the name runs from the first `[` to the LAST `]`, trimmed; every header is a
  new stanza row (repeats included), `order_in_file` counts from 0;
- settings before any header belong to an implicit stanza `default` (emitted only when it
  has settings — the contract says settings "belong" to it; a file of comments has none);
- `key = value` splits at the first `=`; both trimmed; the last duplicate wins;
- a line with no `=` that is not a header/comment/blank carries no setting and is skipped.
"""

import os

CONF_TYPES = {
    "inputs": "inputs",
    "props": "props",
    "transforms": "transforms",
    "indexes": "indexes",
    "outputs": "outputs",
    "serverclass": "serverclasses",
}


def conf_type(path):
    base = os.path.basename(path)
    stem = base[:-5] if base.endswith(".conf") else base
    return CONF_TYPES.get(stem, "other")


def logical_lines(text):
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    cur = None
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        if cur is not None:
            line = cur + line
        stripped = line.rstrip(" \t")
        if stripped.endswith("\\"):
            cur = stripped[:-1] + "\n"
            continue
        cur = None
        out.append(line)
    if cur is not None:  # a file ending in a backslash
        out.append(cur)
    return out


def parse(text):
    """Return [(name, {key: value})] in file order."""
    stanzas = []
    name, kv = "default", {}
    implicit = True
    for line in logical_lines(text):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[") and "]" in s:
            if not implicit or kv:
                stanzas.append((name, kv))
            name, kv, implicit = s[1:s.rindex("]")].strip(), {}, False
            continue
        if "=" not in line:
            continue
        k, _, v = line.partition("=")
        kv[k.strip()] = v.strip()
    if not implicit or kv:
        stanzas.append((name, kv))
    return stanzas


def parse_file(path):
    with open(path, "rb") as f:
        return parse(f.read().decode("utf-8"))


def parse_tree(root, top=None):
    """Every *.conf under root as {archive path: [(name, kv)]}; paths as in the archive
    built by producer.build_upload(root, fmt, top=top)."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if not f.endswith(".conf"):
                continue
            full = os.path.join(d, f)
            rel = os.path.relpath(full, root)
            out[(top + "/" + rel) if top else rel] = parse_file(full)
    return out


def counts_by_type(tree):
    counts = {}
    for path, stanzas in tree.items():
        t = conf_type(path)
        counts[t] = counts.get(t, 0) + len(stanzas)
    return counts
