"""Turns `bench/run`'s results into the Markdown tables of BENCHMARKS.md and
checks the issue's goals against them, so the table and the verdicts always
come from the same numbers."""

import statistics
from pathlib import Path

BEGIN = "<!-- bench:results:begin (written by bench/run --write) -->"
END = "<!-- bench:results:end -->"
TOOLS = ("kiln", "buildkit", "classic")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def fmt_ms(x):
    if x != x:  # nan
        return "–"
    return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def cell(rows):
    t = [r["ms"] for r in rows]
    if not t:
        return "–"
    if len(t) == 1:
        return fmt_ms(t[0])
    return f"{fmt_ms(med(t))} ({fmt_ms(min(t))}–{fmt_ms(max(t))})"


def ran(rows):
    vals = sorted({r["ran"] for r in rows})
    return "/".join(str(v) for v in vals) if vals else "–"


def ratio(a, b):
    return a / b if b and b == b and a == a else float("nan")


def render(out):
    m, res, a = out["machine"], out["results"], out["args"]
    lines = []
    lines.append(f"Run {m['date']} on kiln `{m['kiln_commit']}`; {m['minutes']:.1f} minutes in all.\n")
    lines.append(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']:.1f} GiB, Linux {m['kernel']}")
    lines.append(f"- Engine: Docker Engine {m['engine']} (API {m['api']}), storage driver `{m['driver']}`; "
                 f"builds driven by `{m['cli']}` (BuildKit through `DOCKER_BUILDKIT=1`, classic through `DOCKER_BUILDKIT=0`)")
    la, lb = m["load"], m["load_after"]
    lines.append(f"- Load average (1/5/15 min): before {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f}, "
                 f"after {lb[0]:.2f}/{lb[1]:.2f}/{lb[2]:.2f}")
    lines.append(f"- Runs per tool: {a['runs']} for S1–S6, {a['big_runs']} for S7 and S8; "
                 f"S8 tree: {a['big_files']} files, {a['big_mib']} MiB\n")

    lines.append("Times are wall-clock of the whole command (the CLI a user types), median (min–max). "
                 "Ratio = kiln median / Docker median. \"Steps run\" counts kiln phases built, and Docker "
                 "instructions not served from cache (FROM excluded); several values mean they varied between runs.\n")
    lines.append("| scenario | kiln | BuildKit | classic | kiln/BuildKit | kiln/classic | steps run kiln · BK · classic | fresh |")
    lines.append("|---|---|---|---|---|---|---|---|")
    order = ["S1", "S2", "S3", "S4", "S5", "S6", "S7a", "S7b", "S7c", "S8a", "S8b", "S8c", "S9"]
    for k in order:
        if k not in res:
            continue
        r = res[k]
        rows = r["rows"]
        mk, mb, mc = (med([x["ms"] for x in rows[t]]) for t in TOOLS)
        fresh = ""
        if any("check" in x for t in TOOLS for x in rows[t]):
            fresh = " · ".join(("yes" if all(x.get("check") for x in rows[t]) else "**STALE**") for t in TOOLS)
        speed = k not in ("S8c", "S9")
        lines.append(f"| {k} {r['label']} ({r['runs']}×) | {cell(rows['kiln'])} | {cell(rows['buildkit'])} | "
                     f"{cell(rows['classic'])} | {f'{ratio(mk, mb):.2f}x' if speed else '–'} | "
                     f"{f'{ratio(mk, mc):.2f}x' if speed else '–'} | "
                     f"{ran(rows['kiln'])} · {ran(rows['buildkit'])} · {ran(rows['classic'])} | {fresh} |")
    if "S9" in res:
        s9 = res["S9"]["rows"]
        lines.append(f"\nS9: the branch moved to `{res['S9']['commit']}`; HEAD in each image: "
                     + ", ".join(f"{t} `{s9[t][0].get('head') or '?'}`" for t in TOOLS)
                     + ". Docker's `RUN git clone` line did not change, so both builders serve the old clone "
                       "from cache unless the commit matches.")

    f = res.get("floor")
    if f:
        lines.append("\n**The engine's floor** (Engine API over the unix socket, no CLI; median (min–max) of "
                     f"{len(f['create'])}):\n")
        lines.append("| operation | time |")
        lines.append("|---|---|")
        for key, label in [("create", "create a container"), ("start_wait", "start it and wait for `true` to exit"),
                           ("commit_after_run", "commit it (an image)"),
                           ("commit_unchanged", "commit an unchanged, never-started container"),
                           ("load_config_only", "one image without a container: `docker load` of a new config over the base's layers"),
                           ("load_one_layer", "the same with one new layer holding one small file"),
                           ("commit_unchanged_busybox", "the same from `kiln-test/busybox` (2 MB) instead of the base"),
                           ("remove", "remove the container")]:
            rows = [{"ms": x} for x in f.get(key, [])]
            lines.append(f"| {label} | {cell(rows)} |")
        lines.append(f"| **least a tool can spend per phase snapshot that runs a command, with `docker commit`** (sum of medians) | "
                     f"**{fmt_ms(f['phase_floor_ms'])}** |")
        lines.append(f"| least for one image without running anything | "
                     f"{fmt_ms(one_image_floor(f))} |")
        if "run_and_load_config_ms" in f:
            lines.append(f"| **least per phase that runs a command, without commit**: create + start/wait + load "
                         f"(config-only, for a command that changes no file; with one layer) | "
                         f"**{fmt_ms(f['run_and_load_config_ms'])}**; {fmt_ms(f['run_and_load_layer_ms'])} |")
    o = res.get("overhead")
    h = res.get("hash")
    lines.append("\n**kiln itself**:\n")
    if o:
        lines.append(f"- engine overhead per phase (a setup phase whose command is `true`, new each run, its "
                     f"`duration_ms`): {cell([{'ms': x} for x in o['setup_true_ms']])}")
        lines.append(f"- peak memory (max RSS), rebuild of that phase: {o['peak_rss_kib_rebuild']} KiB")
    if h:
        lines.append(f"- hashing throughput of copied inputs: {h['mb_s']:.0f} MB/s (`kiln plan` of the S8 tree "
                     f"with no digest cache, {h['bytes'] / 1e6:.0f} MB, median {fmt_ms(med(h['plan_ms']))})")
        lines.append(f"- peak memory (max RSS), no-op build of the S8 tree: {h['peak_rss_kib_noop_big']} KiB")

    for n in out.get("notes", []):
        lines.append(f"\n- note: {n}")
    lines.append("\n**Goals** (checked by `bench/report.py` from the numbers above):\n")
    lines.append("| goal | measured | met |")
    lines.append("|---|---|---|")
    for g, meas, ok in goals(res):
        lines.append(f"| {g} | {meas} | {'yes' if ok else '**no**'} |")
    return "\n".join(lines) + "\n"


def one_image_floor(f):
    """The cheaper of committing an unchanged container and loading a config-only image."""
    commit = med(f["create"]) + med(f["commit_unchanged"])
    load = med(f.get("load_config_only", []))
    return min(commit, load) if load == load else commit


def goals(res):
    out = []

    def m(k, t):
        return med([x["ms"] for x in res[k]["rows"][t]])

    f = res.get("floor")
    if "S2" in res:
        k, fd = m("S2", "kiln"), min(m("S2", "buildkit"), m("S2", "classic"))
        out.append(("S2 no-op under 15 ms", fmt_ms(k), k < 15))
        out.append(("S2 ≥5x faster than the faster Docker builder", f"{fd / k:.1f}x", fd / k >= 5))
    if "S3" in res:
        k, b = m("S3", "kiln"), m("S3", "buildkit")
        out.append(("S3 ≤0.8x BuildKit", f"{k / b:.2f}x", k / b <= 0.8))
        if f:
            fl = one_image_floor(f)
            out.append(("S3 within 15 ms of the engine's floor for one image",
                        f"{fmt_ms(k)} vs floor {fmt_ms(fl)} ({k - fl:+.0f} ms)", k - fl <= 15))
    for s in ("S1", "S4"):
        if s in res:
            k, b = m(s, "kiln"), m(s, "buildkit")
            out.append((f"{s} no slower than BuildKit", f"{k / b:.2f}x", k <= b))
    o = res.get("overhead")
    if o:
        x = med(o["setup_true_ms"])
        extra = ""
        if f and "run_and_load_config_ms" in f:
            fl = f["run_and_load_config_ms"]
            extra = (f" (the engine's own floor for such a phase, create + start/wait + load: {fmt_ms(fl)}; "
                     f"kiln's share {x - fl:+.0f} ms)")
        out.append(("engine overhead per phase under 150 ms", fmt_ms(x) + extra, x < 150))
    if "S5" in res:
        n = max(x["ran"] for x in res["S5"]["rows"]["kiln"])
        out.append(("S5 no phase runs", f"{n} phases built", n == 0))
    if "S6" in res:
        k, d = m("S6", "kiln"), min(m("S6", "buildkit"), m("S6", "classic"))
        out.append(("S6 at most half of Docker's closest equivalent (faster builder)", f"{k / d:.2f}x", k <= d / 2))
    if "S7c" in res:
        n = max(x["ran"] for x in res["S7c"]["rows"]["kiln"])
        out.append(("S7 reorder: no phase runs", f"{n} phases built", n == 0))
    if "S8a" in res:
        k, d = m("S8a", "kiln"), min(m("S8a", "buildkit"), m("S8a", "classic"))
        out.append(("S8 no-op under 100 ms", fmt_ms(k), k < 100))
        out.append(("S8 no-op ≥10x faster than Docker (faster builder)", f"{d / k:.1f}x", d / k >= 10))
    if "S8b" in res:
        ok = all(x.get("check") for x in res["S8b"]["rows"]["kiln"])
        ok2 = all(x.get("check") for x in res.get("S8c", {}).get("rows", {}).get("kiln", []))
        out.append(("S8 a change to one file never serves stale content",
                    "fresh" if ok and ok2 else "stale", ok and ok2))
    if "S9" in res:
        r = res["S9"]["rows"]["kiln"][0]
        out.append(("S9 kiln rebuilds from repos when the branch moves",
                    f"{r['ran']} phases built, fresh={r['check']}", bool(r["check"])))
    return out


def write_into(path: Path, md: str):
    """Replaces the results block of BENCHMARKS.md, leaving every other section alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n## Results\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN not in text:
        text = text.rstrip() + "\n\n## Results\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + "\n" + md + END + tail)
