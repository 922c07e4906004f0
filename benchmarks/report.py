"""results.json → results.md (tables, ratios) and PNG plots. `python -m benchmarks.report DIR`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.stats import ratio

__all__ = ["render", "write"]

REFERENCES = ("floor", "websockets", "starlette")
PEERS = ("pysio", "node")


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _pct(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return out + [""]


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    return [f"Machine: {m['nproc']} cores, {m['cpu_model']}, kernel {m['kernel']}, {m['mem_gib']} GiB, "
            f"Python {m['python']}, Node {m['node']}; load average at start {m['loadavg_at_start']}. "
            f"Placement: {results['placement']}. Valkey appendfsync={results['valkey_fsync']}"
            f"{'; Redis Cluster of %d primaries' % results['cluster_primaries'] if results.get('cluster_primaries') else ''}. "
            f"Command: `{' '.join(results['argv'])}` (started {results['started']}).", ""]


def _throughput(data: dict[str, Any]) -> list[str]:
    raw, matched = data["raw"], data.get("raw_matched")
    rows = []
    if raw:
        r0 = raw["runs"][0]
        rows.append([f"raw send_gift.lua ({r0['connections']} conns × {r0['depth']} pipelined)", raw["gifts_per_s"],
                     None, None, None, None, ratio(raw["gifts_per_s"], data.get("raw_capacity")), None, raw["reconciled"],
             None, None])
    if raw and matched:
        m0 = matched["runs"][0]
        rows.append([f"raw send_gift.lua ({m0['connections']} conns × {m0['depth']} pipelined)",
                     matched["gifts_per_s"], None, None, None, None, ratio(matched["gifts_per_s"], data.get("raw_capacity")),
                     1.0, matched["reconciled"], None, None])
    for c in data["targets"]:
        rows.append([c["target"], c["gifts_per_s"], c["ack_p50_ms"], c["ack_p99_ms"], c["server_cpu_us_per_gift"],
                     c["valkey_cpu_us_per_gift"], c["ratio_to_raw"], c.get("ratio_to_raw_matched"), c["reconciled"],
                     _pct(c.get("server_core_busy")), _pct(c.get("generator_core_busy"))])
    return [f"### Scenario 1: gift throughput ({data['senders']} senders × {data['depth']} in flight)", "",
            *_table(["target", "gifts/s", "ack p50 ms", "ack p99 ms", "server µs/gift", "Valkey µs/gift",
                     "× raw Lua capacity (best raw row)", "× raw Lua, same concurrency", "balances reconcile", "server core busy %",
                     "Valkey + generator core busy %"],
                    [[r[0], *[round(x, 2) if isinstance(x, float) else x for x in r[1:]]] for r in rows])]


def _fanout(cells: list[dict[str, Any]]) -> list[str]:
    rows = []
    for c in cells:
        if "skipped" in c:
            rows.append([c["target"], c["viewers"], c["rate"], "skipped: " + c["skipped"]] + [""] * 9)
            continue
        flag = "generator saturated" if c["generator_saturated"] else f"{c['runs_used']} runs"
        # no latencies when no ack came back in time to pair with an event (an overwhelmed server)
        rows.append([c["target"], c["viewers"], c["rate"], c["deliveries_per_s"], c.get("p50_ms"), c.get("p99_ms"),
                     c.get("max_ms"), None if c["loss"] is None else 100 * c["loss"], c["server_cpu_us_per_delivery"],
                     c["server_cpu_pct"], c.get("server_core_busy_pct"), 100 * c["generator_busy"], flag])
    out = ["### Scenario 2: fan-out, one room", "",
           *_table(["target", "viewers", "gifts/s", "deliveries/s", "p50 ms", "p99 ms", "max ms", "loss %",
                    "server µs/delivery", "server CPU %", "server core busy %", "generator %", "runs"],
                   [[r[0], str(r[1]), _f(r[2], 0), *[_f(x, 2) if isinstance(x, float) else x for x in r[3:]]]
                    for r in rows])]
    out += ["#### giftcast's server CPU per delivery as a ratio (giftcast ÷ other; < 1: giftcast cheaper)", ""]
    by = {(c["target"], c["viewers"], c["rate"]): c for c in cells if "skipped" not in c}
    gifts = sorted({t for t, _, _ in by if t.startswith("giftcast") and "-before" not in t})
    others = [t for t in (*REFERENCES, *PEERS) if any(k[0] == t for k in by)]
    rows = []
    for g in gifts:
        for (t, n, rate), c in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if t != g:
                continue
            mine = c["server_cpu_us_per_delivery"]
            rows.append([g, str(n), _f(rate, 0), _f(mine, 2),
                         *[_f(ratio(mine, by[(o, n, rate)]["server_cpu_us_per_delivery"]), 2)
                           if (o, n, rate) in by else "–" for o in others]])
    out += _table(["giftcast", "viewers", "gifts/s", "µs/delivery", *[f"÷ {o}" for o in others]], rows)
    before = [[t, str(n), _f(rate, 0), _f(b["server_cpu_us_per_delivery"], 2), _f(c["server_cpu_us_per_delivery"], 2),
               _f(ratio(c["server_cpu_us_per_delivery"], b["server_cpu_us_per_delivery"]), 2), _f(b.get("p99_ms"), 1),
               _f(c.get("p99_ms"), 1)]
              for (t, n, rate), c in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))
              if t.startswith("giftcast") and "-before" not in t
              and (b := by.get((t.replace("giftcast", "giftcast-before", 1), n, rate))) is not None]
    if before:
        out += ["", "#### Before and after this branch's server changes (giftcast-before = `--before` revision)", "",
                *_table(["giftcast", "viewers", "gifts/s", "before µs/delivery", "after µs/delivery", "after ÷ before",
                         "before p99 ms", "after p99 ms"], before)]
    return out


def _connections(cells: list[dict[str, Any]]) -> list[str]:
    seen = {}
    for c in cells:
        if "connect" in c:
            seen.setdefault((c["target"], c["viewers"]), c["connect"])
    rows = [[t, str(n), s["handshakes_per_s"], s["rss_per_conn_kib"], s["server_cpu_us_per_handshake"]]
            for (t, n), s in sorted(seen.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    return ["### Scenario 3: connections (measured while the fan-out room connects)", "",
            *_table(["target", "connections", "handshakes/s (incl. join)", "RSS KiB per connection",
                     "server CPU µs per handshake"], rows)]


def _extra(name: str, data: Any) -> list[str]:
    if isinstance(data, dict) and "table" in data:
        return [f"### {data['title']}", "", *_table(data["table"][0], data["table"][1:]), *data.get("notes", []), ""]
    return [f"### {name}", "", "```", json.dumps(data, indent=1, default=str)[:4000], "```", ""]


def render(results: dict[str, Any]) -> str:
    out = ["# giftcast benchmark results", "", *_machine(results)]
    scenarios = results["scenarios"]
    if "throughput" in scenarios:
        out += _throughput(scenarios["throughput"])
    if "fanout" in scenarios:
        out += _fanout(scenarios["fanout"]) + _connections(scenarios["fanout"])
    for name, data in scenarios.items():
        if name not in ("throughput", "fanout"):
            out += _extra(name, data)
    if "audit" in results:
        out += ["### Audit", "", "```", results["audit"].strip(), "```", ""]
    return "\n".join(out)


def plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG plots of the fan-out cells; none without matplotlib (it is in the `bench` extras)."""
    try:
        import matplotlib
    except ImportError:
        return []

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in results["scenarios"].get("fanout", []) if "skipped" not in c]
    if not cells:
        return []
    made = []
    targets = sorted({c["target"] for c in cells})
    # One panel per room size: cells of different sizes offering the same deliveries/s are not
    # the same load (5,000 writes per event cost more than 1,000).
    sizes = sorted({c["viewers"] for c in cells})
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.5), squeeze=False, sharey=True)
    for ax, size in zip(axes[0], sizes, strict=True):
        for t in targets:
            pts = sorted((c["rate"], c["p99_ms"]) for c in cells
                         if c["target"] == t and c["viewers"] == size and c.get("p99_ms"))
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=t)
        ax.set(xscale="log", yscale="log", xlabel="gifts/s into the room", title=f"{size:,} viewers")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("gift-to-viewer p99 (ms; 2,000 = off the histogram)")
    axes[0][0].legend()
    made.append(out_dir / "latency_vs_load.png")
    fig.savefig(made[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    rates = sorted({c["rate"] for c in cells})
    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4.5), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for t in targets:
            pts = sorted((c["viewers"], c["server_cpu_us_per_delivery"]) for c in cells
                         if c["target"] == t and c["rate"] == rate and c["server_cpu_us_per_delivery"])
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=t)
        ax.set(xlabel="viewers in the room", ylabel="server CPU µs per delivery", title=f"{rate:g} gifts/s",
               yscale="log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    made.append(out_dir / "cpu_per_delivery_vs_room_size.png")
    fig.savefig(made[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return made


def write(out_dir: Path) -> Path:
    results = json.loads((out_dir / "results.json").read_text())
    md = render(results)
    made = plots(results, out_dir)
    if made:
        md += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in made) + "\n"
    path = out_dir / "results.md"
    path.write_text(md)
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1])))
