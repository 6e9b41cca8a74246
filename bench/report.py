#!/usr/bin/env python3
"""Tables (Markdown, on stdout) and charts (SVG, into OUT) of bench/run's
measurements in WORK. Standard library only; the charts are hand-written SVG.

  report.py WORK OUT "MACHINE" "NOTE"
"""
import json, math, os, statistics, sys
from html import escape

work, outdir, machine, note = sys.argv[1:5]


def load(name):
    p = os.path.join(work, f"{name}.json")
    return json.load(open(p)) if os.path.exists(p) else None


def med(xs):
    return statistics.median(xs) * 1000


def mib(b):
    v, u = (b / 2**20, "MiB") if b >= 2**20 else (b / 1024, "KiB")
    return f"{v:,.0f} {u}" if v == int(v) else f"{v:,.1f} {u}"


summary = {"machine": machine}
out = []
p = out.append

# ---------------------------------------------------------------- SVG helpers
W, FONT = 640, 'font-family="sans-serif" font-size="11"'
COLORS = {"native": "#888", "cowl": "#2a7", "overlayfs": "#9cb", "fuse-overlayfs": "#c54", "unshare": "#999", "bwrap": "#48c"}
LABEL = {"overlayfs": "overlayfs alone"}
PALETTE = ["#2a7", "#48c", "#c54", "#a6c", "#d92", "#555"]


def svg(name, h, body):
    text = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" {FONT}>'
            f'<rect width="{W}" height="{h}" fill="#fff"/>' + "".join(body) + "</svg>\n")
    open(os.path.join(outdir, name), "w").write(text)


def t(x, y, s, anchor="start", extra=""):
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(str(s))}</text>'


def nice_step(v):
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e


def hbars(name, title, xlabel, groups, series, ref=None, ref_label=""):
    """Horizontal bars: groups is [(group label, [(series, bar value, text)])];
    one colour per series; ref draws a dashed line at that x value."""
    left, right, top, bar = 190, 70, 40, 14
    rows = sum(len(g[1]) for g in groups)
    h = top + rows * (bar + 3) + len(groups) * 8 + 50
    vtop = max([v for _, bars in groups for _, v, _ in bars] + [ref or 0])
    step = nice_step(vtop / 4)
    vmax = math.ceil(vtop / step) * step
    sx = (W - left - right) / vmax
    body = [t(W / 2, 18, title, "middle", 'font-size="13" font-weight="bold"')]
    y = top
    for label, bars in groups:
        body.append(t(left - 6, y + (len(bars) * (bar + 3)) / 2 + 4, label, "end"))
        for s, v, txt in bars:
            c = COLORS.get(s, PALETTE[series.index(s) % len(PALETTE)] if s in series else "#2a7")
            body.append(f'<rect x="{left}" y="{y:.1f}" width="{max(v * sx, 1):.1f}" height="{bar}" fill="{c}"/>')
            body.append(t(left + v * sx + 4, y + bar - 3, txt))
            y += bar + 3
        y += 8
    axis_y = y + 2
    body.append(f'<line x1="{left}" y1="{top - 4}" x2="{left}" y2="{axis_y}" stroke="#000"/>')
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{W - right}" y2="{axis_y}" stroke="#000"/>')
    for i in range(round(vmax / step) + 1):
        v = step * i
        x = left + v * sx
        body.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#000"/>')
        body.append(t(x, axis_y + 15, f"{v:g}", "middle"))
    body.append(t(left + (W - left - right) / 2, axis_y + 30, xlabel, "middle"))
    if ref is not None and ref <= vmax:
        x = left + ref * sx
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y}" stroke="#000" stroke-dasharray="4 3"/>')
        body.append(t(x, top - 8, ref_label, "middle", 'font-size="10"'))
    if len(series) > 1:
        lx = left
        for s in series:
            c = COLORS.get(s, PALETTE[series.index(s) % len(PALETTE)])
            body.append(f'<rect x="{lx}" y="{h - 12}" width="10" height="10" fill="{c}"/>' + t(lx + 14, h - 3, LABEL.get(s, s)))
            lx += 20 + 7 * len(LABEL.get(s, s))
    svg(name, h, body)


def loglines(name, title, panels):
    """Log-log line charts side by side: panels is [(x label, [x values],
    [x tick labels], {series: [y ms]})]."""
    h, top, bottom, pw = 300, 40, 70, (W - 60) / len(panels)
    ys = [y for _, _, _, ser in panels for v in ser.values() for y in v if y > 0]
    lo, hi = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
    body = [t(W / 2, 18, title, "middle", 'font-size="13" font-weight="bold"')]
    names = list(panels[0][3])
    for k, (xlabel, xs, xt, ser) in enumerate(panels):
        x0, x1 = 60 + k * pw + 10 + 20 * (k > 0), 60 + (k + 1) * pw - 30
        y0, y1 = h - bottom, top
        lx = [math.log10(x) for x in xs]
        X = lambda v: x0 + (math.log10(v) - lx[0]) / ((lx[-1] - lx[0]) or 1) * (x1 - x0)
        Y = lambda v: y0 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (y0 - y1)
        body.append(f'<path d="M{x0},{y1} V{y0} H{x1}" fill="none" stroke="#000"/>')
        e = lo
        while e <= hi:
            body.append(f'<line x1="{x0}" y1="{Y(e):.1f}" x2="{x1}" y2="{Y(e):.1f}" stroke="#ddd"/>')
            if k == 0:
                body.append(t(x0 - 4, Y(e) + 4, f"{e:g}", "end"))
            e *= 10
        for x, lab in zip(xs, xt):
            body.append(t(X(x), y0 + 14, lab, "middle"))
        body.append(t((x0 + x1) / 2, y0 + 30, xlabel, "middle"))
        for i, (s, vals) in enumerate(ser.items()):
            pts = " ".join(f"{X(x):.1f},{Y(max(v, lo)):.1f}" for x, v in zip(xs, vals))
            c = PALETTE[i % len(PALETTE)]
            body.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
            body += [f'<circle cx="{pt.split(",")[0]}" cy="{pt.split(",")[1]}" r="2.5" fill="{c}"/>' for pt in pts.split()]
    body.append(t(14, (h - bottom + top) / 2, "ms (log)", "middle", f'transform="rotate(-90 14 {(h - bottom + top) / 2})"'))
    lx = 60
    for i, s in enumerate(names):
        body.append(f'<rect x="{lx}" y="{h - 16}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>' + t(lx + 14, h - 7, s))
        lx += 24 + 6.5 * len(s)
    svg(name, h, body)


# ---------------------------------------------------------------- start-up
p(f"Measured on {machine}; medians, all rows of a table in the same run, round-robin. {note}\n")
s = load("startup")
if s:
    s = {x["command"]: x["median"] * 1000 for x in s["results"]}
    bw = s["bwrap --ro-bind / / --unshare-all true"]
    one = s["cowl run (1 version) -- true"]
    p("Start-up:\n")
    p("| command | median ms | vs bwrap | vs cowl (1 version) |")
    p("|---|---:|---:|---:|")
    for k, v in s.items():
        p(f"| `{k}` | {v:.2f} | {v / bw:.2f}x | {v / one:.2f}x |")
    p("")
    p(f"Targets: cowl / bwrap = {one / bw:.2f} (issue: <= 1.2); 50 versions / 1 = "
      f"{s['cowl run (50 versions) -- true'] / one:.2f} (<= 1.2); 400 versions / 1 = "
      f"{s['cowl run (400 versions) -- true'] / one:.2f} (<= 1.3)\n")
    floor = next((v for k, v in s.items() if k.startswith("kernel floor")), None)
    if floor:
        p(f"The kernel floor (bench/floor.c: the same namespaces and overlays, mounted and torn down "
          f"by a few lines of C, nothing of cowl's own) is {floor / bw:.2f}x bwrap; cowl takes "
          f"{one / floor:.2f}x the floor, {one - floor:.2f} ms of its own.\n")
    summary["startup_ms"] = s
    short = lambda k: "kernel floor" if k.startswith("kernel floor") else k.replace(" --ro-bind / / --unshare-all", "").replace(" -- true", "").replace("native: ", "native ").replace(" true", "")
    hbars("startup.svg", "Start-up of `true` (median ms)", "ms", [
        (short(k), [("bwrap" if "bwrap" in k else "native" if "native" in k else "unshare" if "unshare" in k or "floor" in k else "cowl", v, f"{v:.1f} ms")])
        for k, v in s.items()], [], ref=1.2 * bw, ref_label="1.2 x bwrap")

# ---------------------------------------------------------------- workloads
ENVS = ("native", "cowl", "overlayfs", "fuse-overlayfs")


def workload_table(name, title, steps, svgname, charttitle):
    d = load(name)
    if not d:
        return None
    r = d["results"]
    m = {e: {k: med(v) for k, v in r[e].items()} for e in ENVS}
    for e in ENVS:  # the workload's own steps, without start-up, mount or snapshot
        per_round = [sum(r[e][k][i] for k in steps) for i in range(d["runs"])]
        m[e]["steps"] = med(per_round)
    p(title + "\n")
    p("| step | native ms | cowl ms | overlayfs alone ms | fuse-overlayfs ms | cowl / native | overlayfs alone / native | fuse-overlayfs / cowl |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(k, k.replace("-", " ")) for k in steps] + [
        ("steps", "**all steps**"), ("total", "whole command (with start-up, mount or snapshot)")]
    for k, label in rows:
        n, c, o, f = (m[e][k] for e in ENVS)
        p(f"| {label} | {n:.0f} | {c:.0f} | {o:.0f} | {f:.0f} | {c / n:.2f}x | {o / n:.2f}x | {f / c:.2f}x |")
    p("")
    summary[name] = m
    hbars(svgname, charttitle, "time relative to native (1 = native)",
          [(label.strip("*"), [(e, m[e][k] / m["native"][k], f"{m[e][k]:.0f} ms") for e in ENVS]) for k, label in rows[:-1]],
          list(ENVS), ref=1, ref_label="native")
    return m


src = load("meta-src")
mm = workload_table("meta", f"Metadata-heavy workload: unpack a tarball of {src['files']:,} small files "
                    f"({mib(src['apparent'])}, with their git repository) into $HOME, then find, du, git status "
                    f"(medians of {load('meta')['runs']} rounds):" if src else "",
                    ["unpack", "find", "du", "git-status"], "metadata.svg",
                    f"{src['files']:,} small files: unpack, find, du, git status" if src else "")
if mm:
    p(f"Targets: cowl / native = {mm['cowl']['steps'] / mm['native']['steps']:.2f} (issue: <= 1.10); "
      f"fuse-overlayfs / cowl = {mm['fuse-overlayfs']['steps'] / mm['cowl']['steps']:.2f} (issue: >= 5)\n")
dd = load("data")
if dd:
    total = dd["app"]["apparent"]
    workload_table("data", f"Data-heavy workload: write {mib(total)} in {dd['app']['files']} files (then sync), "
                   f"read it back, rewrite it in place (then sync) (medians of {dd['runs']} rounds):",
                   ["write", "read", "rewrite"], "data.svg", f"{mib(total)} in {dd['app']['files']} files: write, read, rewrite")

# ---------------------------------------------------------------- growth
g = load("growth")
if g:
    ops = [("snapshot", "snapshot 10 MiB change"), ("rollback", "rollback 1 version"), ("diff", "diff --stat"),
           ("verify", "verify"), ("squash", "squash")]
    reps = len(next(iter(g["ops"]["snapshot"].values())))
    p(f"Version operations as a box grows (the box holds N changed files or M MiB; medians of {reps}, ms; "
      "squash merges the whole history, two new small versions on top each time):\n")
    p("| box holds | first snapshot (whole change, once) | " + " | ".join(l for _, l in ops) + " |")
    p("|---|" + "---:|" * (len(ops) + 1))
    gm = {}
    for b in g["boxes"]:
        gm[b["box"]] = {k: med(g["ops"][k][b["box"]]) for k, _ in ops}
        p(f"| {b['label']} | {b['first_snapshot'] * 1000:.0f} | " + " | ".join(f"{gm[b['box']][k]:.0f}" for k, _ in ops) + " |")
    p("")
    panels, growth_lines = [], []
    for kind, xlabel in (("files", "changed files in the box"), ("bytes", "MiB in the box")):
        bs = [b for b in g["boxes"] if b["kind"] == kind]
        if len(bs) < 2:
            continue
        a, z = bs[0], bs[-1]
        growth_lines.append(f"{a['label']} -> {z['label']} ({z['size'] / a['size']:,.0f}x): " + ", ".join(
            f"{k} {gm[z['box']][k] / gm[a['box']][k]:.1f}x" for k, _ in ops))
        panels.append((xlabel, [b["size"] for b in bs], [f"{b['size']:,}" for b in bs],
                       {l: [gm[b["box"]][k] for b in bs] for k, l in ops}))
    p("Growth of each cost from the smallest box to the largest: " + "; ".join(growth_lines) + ".\n")
    summary["growth"] = gm
    loglines("growth.svg", "Version operations as the box grows (median ms)", panels)

# ---------------------------------------------------------------- footprint
rows = []
for name, label in (("meta", "metadata workload"), ("data", "data workload")):
    d = load(name)
    if d:
        rows.append((label, d["app"]["apparent"], d["box"], d["native"]["blocks"]))
if g:
    for b in g["boxes"]:
        rows.append((f"box of {b['label']}", b["app"], b["footprint"], None))
if rows:
    p("Footprint of a box against the bytes its app changed (apparent sizes of files; "
      "on disk: allocated blocks, hard links once):\n")
    p("| box | app changed | box layers | layers / app | manifests, digests, journal | box on disk | same files natively on disk | box / (native + manifests) on disk |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|")
    fp = []
    for label, app, box, nat in rows:
        ratio = box["layers"] / app
        disk = f"{box['blocks'] / (nat + box['meta']):.3f}" if nat else "–"
        p(f"| {label} | {mib(app)} | {mib(box['layers'])} | {ratio:.3f} | {mib(box['meta'])} | {mib(box['blocks'])} | "
          f"{mib(nat) if nat else '–'} | {disk} |")
        fp.append((label, [("layers", ratio, f"{ratio:.3f}"),
                           ("layers + manifests", (box["layers"] + box["meta"]) / app, f"{(box['layers'] + box['meta']) / app:.3f}")]))
    p("")
    summary["footprint"] = rows
    hbars("footprint.svg", "Bytes a box holds per byte its app changed", "ratio (1 = exactly what the app wrote)",
          fp, ["layers", "layers + manifests"], ref=1.05, ref_label="1.05")

rss = [("`cowl run -- true`", load("rss-true"))] + [
    (label, (load(n) or {}).get("rss")) for n, label in (("meta", "metadata workload"), ("data", "data workload"))]
rss = [(l, r) for l, r in rss if r]
if rss:
    p("Memory: peak resident set (VmHWM, sampled every few ms) of cowl's own processes during a run:\n")
    p("| run | supervisor | init in the box |")
    p("|---|---:|---:|")
    for l, r in rss:
        p(f"| {l} | {mib(r['supervisor'])} | {mib(r['init'])} |")
    p("")
    summary["rss"] = dict(rss)

print("\n".join(out))
json.dump(summary, open(os.path.join(outdir, "latest.json"), "w"), indent=1)
