#!/usr/bin/env python3
"""Draw doc/bench/sync.svg from the rows scripts/bench-sync.sh kept (doc/bench/sync-N.tsv):
for each scenario (initial, no-change, 100 flags changed), the median time and the peak RSS
of each tool against mailbox size, on tmpfs, log-log. Hand-written SVG: no plotting
package needed. With KIND small it draws the small messages' rows (doc/bench/small-N.tsv,
the only mailbox that reaches 1,000,000 on this machine) instead.

    scripts/bench-chart.py DIR OUT.svg [sync|small]
"""
import glob
import math
import os
import statistics
import sys
from collections import defaultdict

SCENARIOS = [("initial", "initial sync"), ("noop", "no-change pass"), ("flags100", "100 flags changed")]
TOOLS = [
    ("syncmail", "syncmail", "#d62728"),
    ("syncmail-base", "syncmail (before)", "#ff9896"),
    ("mbsync", "mbsync (FSync yes)", "#1f77b4"),
    ("mbsync-nofsync", "mbsync (FSync no)", "#aec7e8"),
    ("offlineimap", "OfflineIMAP", "#2ca02c"),
    # No files and no state: the initial sync's floor (TOOLS=raw), not a tool.
    ("raw", "raw fetch limit", "#7f7f7f"),
]
STORAGE = "tmpfs"
KINDS = {
    "sync": "realistic sizes",
    "small": "small messages (1.5-3 KiB)",
}


def load(directory, kind):
    times, rss = defaultdict(list), defaultdict(list)
    for path in glob.glob(os.path.join(directory, f"{kind}-*.tsv")):
        size = int(os.path.basename(path)[len(kind) + 1:-len(".tsv")])
        for line in open(path):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5 or parts[2] != STORAGE:
                continue
            tool, scen, _, secs, kib = parts
            times[(tool, scen, size)].append(float(secs))
            rss[(tool, scen, size)].append(int(kib) / 1024)
    return times, rss


def ticks(lo, hi):
    out = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo / 1.0001 <= v <= hi * 1.0001:
                out.append(v)
        e += 1
    return out


def fmt(v):
    if v >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def panel(svg, x0, y0, w, h, title, series, unit):
    """One log-log panel: series is [(label, colour, [(size, value)])]."""
    points = [p for _, _, pts in series for p in pts]
    svg.append(f'<text x="{x0 + w / 2}" y="{y0 - 8}" text-anchor="middle" font-weight="bold">{title}</text>')
    svg.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>')
    if not points:
        return
    xs = [p[0] for p in points]
    ys = [max(p[1], 1e-3) for p in points]
    xlo, xhi = min(xs) / 1.5, max(xs) * 1.5
    ylo, yhi = min(ys) / 2, max(ys) * 2
    lx = lambda v: x0 + (math.log(v) - math.log(xlo)) / (math.log(xhi) - math.log(xlo)) * w
    ly = lambda v: y0 + h - (math.log(max(v, 1e-3)) - math.log(ylo)) / (math.log(yhi) - math.log(ylo)) * h
    for v in sorted(set(xs)):
        svg.append(f'<text x="{lx(v):.1f}" y="{y0 + h + 14}" text-anchor="middle" font-size="10">{fmt(v)}</text>')
    for v in ticks(ylo, yhi):
        y = ly(v)
        svg.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        svg.append(f'<text x="{x0 - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="10">{fmt(v)}</text>')
    svg.append(f'<text x="{x0 - 34}" y="{y0 + h / 2}" font-size="10" transform="rotate(-90 {x0 - 34} {y0 + h / 2})" text-anchor="middle">{unit}</text>')
    for _, colour, pts in series:
        pts = sorted(pts)
        if len(pts) > 1:
            d = " ".join(f"{lx(s):.1f},{ly(v):.1f}" for s, v in pts)
            svg.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for s, v in pts:
            svg.append(f'<circle cx="{lx(s):.1f}" cy="{ly(v):.1f}" r="3" fill="{colour}"/>')


def main():
    directory, out = sys.argv[1], sys.argv[2]
    kind = sys.argv[3] if len(sys.argv) > 3 else "sync"
    if kind not in KINDS:
        sys.exit(f"bench-chart.py: unknown kind {kind!r} (sync or small)")
    times, rss = load(directory, kind)
    w, h, gap, left, top = 260, 180, 70, 60, 50
    width = left + 3 * (w + gap)
    height = top + 2 * (h + gap) + 40
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">IMAP to Maildir on {STORAGE}, loopback Dovecot: median time and peak RSS against messages (log-log)</text>',
        f'<text x="{left}" y="38">messages of {KINDS[kind]}</text>',
    ]
    for col, (scen, title) in enumerate(SCENARIOS):
        x0 = left + col * (w + gap)
        for row, (data, unit, agg) in enumerate(
            [(times, "seconds", statistics.median), (rss, "peak RSS (MiB)", max)]
        ):
            series = []
            for tool, _, colour in TOOLS:
                if tool == "raw" and row == 1:
                    continue  # openssl's memory says nothing about a sync's
                pts = [(size, agg(v)) for (t, s, size), v in data.items() if t == tool and s == scen]
                if pts:
                    series.append((tool, colour, pts))
            panel(svg, x0, top + 20 + row * (h + gap), w, h, f"{title}: {'time' if row == 0 else 'memory'}", series, unit)
    y = height - 20
    x = left
    for tool, label, colour in TOOLS:
        if any(t == tool for (t, _, _) in times):
            svg.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
            svg.append(f'<text x="{x + 16}" y="{y}">{label}</text>')
            x += 30 + 8 * len(label)
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
