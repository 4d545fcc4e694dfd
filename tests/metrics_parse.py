#!/usr/bin/python3
"""metrics_parse.py - check csession's Prometheus text with a real parser.

    /usr/bin/python3 tests/metrics_parse.py [--prefix P] FILE [NAME{LABELS}=VALUE ...]

Parses FILE with prometheus_client's text parser (Debian's
python3-prometheus-client: /usr/bin/python3, not a virtualenv's python3)
and checks, beyond what the parser enforces:
  - every family csession writes is there, with HELP and the right TYPE,
    and no other;
  - the text is well formed line by line: HELP then TYPE before a family's
    samples, no sample twice, a final newline;
  - each store_seconds histogram (per op): the le bounds of
    csn_metrics_bucket_ns() in order, cumulative counts never falling,
    le="+Inf" equal to _count, a finite non-negative _sum;
  - each NAME{LABELS}=VALUE given: that sample has exactly that value
    (e.g. csession_sessions_created_total=3,
    'csession_store_errors_total{op="get"}=1').
Exit status 0 when all hold, 1 with the reasons on stderr otherwise, 2 for
a usage error or a missing parser.
"""
import math
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:  # the test must fail, not skip, without it
    sys.stderr.write("metrics_parse.py: prometheus_client missing (%s); "
                     "install python3-prometheus-client and run "
                     "/usr/bin/python3\n" % e)
    sys.exit(2)

COUNTERS = ["sessions_created", "sessions_loaded", "sessions_saved",
            "sessions_touched", "sessions_touch_skipped",
            "sessions_destroyed", "sessions_expired", "sessions_rotated",
            "sessions_unreadable", "merge_conflicts_resolved",
            "merge_saves_dropped", "store_cas_conflicts", "store_errors"]
OPS = ["get", "set", "cas", "touch", "destroy"]
LE = ["5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
      "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
      "+Inf"]

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def key(name, labels):
    return name + "{" + ",".join('%s="%s"' % (k, labels[k])
                                 for k in sorted(labels)) + "}"


def parse_expect(arg):
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?=(.+)$', arg)
    if not m:
        raise ValueError("bad expectation %r" % arg)
    labels = {}
    if m.group(3):
        for part in m.group(3).split(","):
            k, v = part.split("=", 1)
            labels[k] = v.strip('"')
    return key(m.group(1), labels), float(m.group(4))


def check_lines(text, errs):
    """What the parser is lenient about: order of HELP/TYPE, duplicates."""
    if not text.endswith("\n"):
        errs.append("the text does not end with a newline")
    seen_help, seen_type, samples = set(), {}, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if name in seen_help:
                errs.append("line %d: second HELP for %s" % (n, name))
            seen_help.add(name)
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4:
                errs.append("line %d: bad TYPE line" % n)
                continue
            if parts[2] not in seen_help:
                errs.append("line %d: TYPE before HELP for %s" % (n, parts[2]))
            seen_type[parts[2]] = parts[3]
        elif line.startswith("#") or line == "":
            errs.append("line %d: unexpected line %r" % (n, line))
        else:
            m = SAMPLE_RE.match(line)
            if not m:
                errs.append("line %d: not a sample: %r" % (n, line))
                continue
            name = m.group(1)
            fam = re.sub(r'_(bucket|sum|count)$', "", name)
            if name not in seen_type and fam not in seen_type:
                errs.append("line %d: sample %s before its TYPE" % (n, name))
            s = name + (m.group(2) or "")
            if s in samples:
                errs.append("line %d: sample %s twice" % (n, s))
            samples.add(s)


def main(argv):
    prefix = "csession"
    args = argv[1:]
    if len(args) >= 2 and args[0] == "--prefix":
        prefix, args = args[1], args[2:]
    if not args:
        sys.stderr.write(__doc__)
        return 2
    with open(args[0], encoding="utf-8") as f:
        text = f.read()
    try:
        expect = [parse_expect(a) for a in args[1:]]
    except ValueError as e:
        sys.stderr.write("metrics_parse.py: %s\n" % e)
        return 2

    errs = []
    check_lines(text, errs)
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's verdict is the test's point
        sys.stderr.write("metrics_parse.py: the parser refused the text: "
                         "%s: %s\n" % (type(e).__name__, e))
        return 1

    values = {}
    byname = {}
    for fam in families:
        byname[fam.name] = fam
        if not fam.documentation:
            errs.append("%s: no HELP text" % fam.name)
        for s in fam.samples:
            values[key(s.name, s.labels)] = s.value

    want = {prefix + "_" + c: "counter" for c in COUNTERS}
    want[prefix + "_store_seconds"] = "histogram"
    for name, typ in want.items():
        if name not in byname:
            errs.append("family %s missing" % name)
        elif byname[name].type != typ:
            errs.append("%s: type %s, want %s" % (name, byname[name].type,
                                                  typ))
    for name in byname:
        if name not in want:
            errs.append("unexpected family %s" % name)

    for c in COUNTERS:
        name = prefix + "_" + c + "_total"
        for labels in ([{"op": op} for op in OPS] if c == "store_errors"
                       else [{}]):
            v = values.get(key(name, labels))
            if v is None:
                errs.append("sample %s missing" % key(name, labels))
            elif v < 0 or v != math.floor(v):
                errs.append("%s = %r: not a count" % (key(name, labels), v))

    h = prefix + "_store_seconds"
    if h in byname:
        for op in OPS:
            buckets = [(s.labels["le"], s.value) for s in byname[h].samples
                       if s.name == h + "_bucket" and s.labels.get("op") == op]
            les = [b[0] for b in buckets]
            if les != LE:
                errs.append("%s op=%s: le bounds %s" % (h, op, les))
                continue
            counts = [b[1] for b in buckets]
            if any(b < a for a, b in zip(counts, counts[1:])):
                errs.append("%s op=%s: buckets not cumulative %s"
                            % (h, op, counts))
            total = values.get(key(h + "_count", {"op": op}))
            ssum = values.get(key(h + "_sum", {"op": op}))
            if total != counts[-1]:
                errs.append("%s op=%s: +Inf %r != _count %r"
                            % (h, op, counts[-1], total))
            if ssum is None or not math.isfinite(ssum) or ssum < 0:
                errs.append("%s op=%s: bad _sum %r" % (h, op, ssum))
            if total == 0 and ssum != 0:
                errs.append("%s op=%s: _sum %r without calls" % (h, op, ssum))

    for k, v in expect:
        got = values.get(k)
        if got != v:
            errs.append("%s = %r, want %r" % (k, got, v))

    for e in errs:
        sys.stderr.write("metrics_parse.py: %s\n" % e)
    if errs:
        return 1
    print("metrics_parse.py: %d families, %d samples, %d expectations: ok"
          % (len(families), len(values), len(expect)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
