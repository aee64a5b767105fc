"""Turns bench/out/results.json into a Markdown table, a PNG of write
availability around the power loss, and (full runs) docs/benchmarks.md.
Standard library only, except the plot (matplotlib, skipped if absent)."""

import argparse
import json
import os
import statistics
import subprocess
import sys

METRICS = [
    ("failover_s", "power loss → first acknowledged write via HAProxy (s)"),
    ("promoted_s", "power loss → survivor answers /primary 200 (s)"),
    ("switchover_gap_s", "planned switchover: longest write gap (s)"),
    ("rejoin_s", "old primary restarted → streaming again (s)"),
    ("lost_writes", "acknowledged writes lost per power loss"),
]


def values(setup, key):
    return [r[key] for r in setup["reps"] if r.get(key) is not None]


def fmt(vs, unit=""):
    if not vs:
        return "—"
    med = statistics.median(vs)
    if isinstance(vs[0], int) and all(isinstance(v, int) for v in vs):
        m = f"{med:g}"
        rng = f"{min(vs)}–{max(vs)}"
    else:
        m = f"{med:.2f}"
        rng = f"{min(vs):.2f}–{max(vs):.2f}"
    return m if len(vs) == 1 else f"{m} ({rng})"


def ratio(a, b):
    if not a or not b:
        return "—"
    ma, mb = statistics.median(a), statistics.median(b)
    if mb == 0:
        return "—" if ma == 0 else "∞"
    return f"{ma / mb:.2f}"


def settings(s):
    st = s["setup"]
    t = f"ttl {st['ttl_s']} s, loop_wait {st['loop_wait_s']:g} s"
    if st.get("retry_timeout_s") is not None:
        t += f", retry_timeout {st['retry_timeout_s']} s"
    t += ", sync" if st["synchronous_mode"] else ", async"
    return t


PAIR_ORDER = ["defaults", "fastest", "async"]


def pairs_of(res):
    by_pair = {}
    for label, s in res["setups"].items():
        by_pair.setdefault(s["pair"], {})[s["setup"]["system"]] = s
    order = {p: i for i, p in enumerate(PAIR_ORDER)}
    return sorted(by_pair.items(), key=lambda kv: order.get(kv[0], len(order)))


def settings_list(res):
    out = []
    for pair, systems in pairs_of(res):
        parts = [f"{name} {settings(systems[sys_])}" for sys_, name in (("pgbox", "pgbox"), ("patroni", "Patroni"))
                 if sys_ in systems]
        out.append(f"- **{pair}**: " + "; ".join(parts))
    return "\n".join(out) + "\n"


def table(res):
    lines = [
        "| scenario | settings | pgbox median (range) | Patroni median (range) | pgbox / Patroni |",
        "|---|---|---|---|---|",
    ]
    for pair, systems in pairs_of(res):
        pg, pa = systems.get("pgbox"), systems.get("patroni")
        for key, title in METRICS:
            a = values(pg, key) if pg else []
            b = values(pa, key) if pa else []
            if not a and not b:
                continue
            if pair == "async" and key not in ("failover_s", "lost_writes"):
                continue
            lines.append(f"| {title} | {pair} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
        idle_a = pg.get("idle") if pg else None
        idle_b = pa.get("idle") if pa else None
        for key, title in (("rss_mib", "supervisor resident memory at idle (MiB)"),
                           ("cpu_percent", "supervisor CPU at idle (% of one core)")):
            if idle_a or idle_b:
                va = [idle_a[key]] if idle_a else []
                vb = [idle_b[key]] if idle_b else []
                lines.append(f"| {title} | {pair} | {fmt(va)} | {fmt(vb)} | {ratio(va, vb)} |")
    return "\n".join(lines) + "\n"


def breakdown(res):
    """Where pgbox's failover time goes, from the two instants measured."""
    out = []
    for pair, systems in pairs_of(res):
        pg = systems.get("pgbox")
        if not pg:
            continue
        f, p = values(pg, "failover_s"), values(pg, "promoted_s")
        if not f or not p:
            continue
        fm, pm = statistics.median(f), statistics.median(p)
        ttl = pg["setup"]["ttl_s"]
        out.append(
            f"- {pair} (ttl {ttl} s): the survivor answers `/primary` after {pm:.2f} s, of which "
            f"the dead leader's lease accounts for about {ttl - 1}–{ttl} s (renewed every second, "
            f"so it expires {ttl - 1}–{ttl} s after the last renewal) and the watch event, the "
            f"leader-key transaction and `pg_promote()` for the rest ({pm - ttl:+.2f} s against "
            f"the full TTL); HAProxy adds {fm - pm:.2f} s until the first write is acknowledged "
            f"(a down server is checked every second, `rise 1`)."
        )
    return "\n".join(out) + "\n" if out else ""


def plot(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available: no plot", file=sys.stderr)
        return False
    tl = res.get("timelines", {})
    pairs = {}
    for pair, systems in pairs_of(res):
        labels = [s["setup"]["label"] for s in systems.values() if s["setup"]["label"] in tl]
        if labels:
            pairs[pair] = labels
    if not pairs:
        return False
    fig, axes = plt.subplots(len(pairs), 1, figsize=(10, 3 * len(pairs)), squeeze=False)
    for ax, (pair, labels) in zip(axes[:, 0], pairs.items()):
        for label in labels:
            t = tl[label]
            acks = list(t["acks"])
            # The record ends when the old primary streams again, not the
            # writes: trailing empty bins are past its end.
            while acks and acks[-1] == 0:
                acks.pop()
            xs = [i * t["bin_s"] - t["before_s"] for i in range(len(acks))]
            ax.step(xs, [a / t["bin_s"] for a in acks], where="post", label=label)
        ax.axvline(0, color="black", linestyle=":", linewidth=1)
        ax.set_title(f"{pair}: acknowledged writes through HAProxy around the primary's power loss (t = 0)")
        ax.set_xlabel("seconds from power loss")
        ax.set_ylabel("writes/s")
        ax.set_xlim(-5, 35)
        ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    ap.add_argument("--doc")
    ap.add_argument("--command", default="bash bench/run.sh")
    ap.add_argument("--note", default="", help="a paragraph added to the document as is")
    a = ap.parse_args()
    with open(a.results) as f:
        res = json.load(f)
    md = settings_list(res) + "\n" + table(res)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(md)
    print(md)
    png = os.path.join(a.out, "availability.png")
    have_plot = plot(res, png)
    for fail in res.get("failures", []):
        print(f"failed: {fail}", file=sys.stderr)
    if a.doc:
        patroni = "(not run)"
        exe = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv", "bin", "patroni")
        try:
            patroni = subprocess.run([exe, "--version"], capture_output=True, text=True,
                                     timeout=30).stdout.strip() + " (PyPI)"
        except (OSError, subprocess.SubprocessError):
            pass
        m = res["machine"]
        ma = res.get("machine_after", m)
        doc = f"""# Benchmarks: pgbox against Patroni

Produced by `{a.command}` (bench/run.sh; the runner is bench/src/), started
{res['started']} (Unix time) and rewritten by every full run.

Both systems run on the same machine in the same run, on loopback: three
etcd members (Debian's etcd, v3 API), two PostgreSQL servers (Debian's
binaries) and HAProxy (port 5000 → the node whose API answers `GET /primary`
with 200; 5001 → `/replica`; checks `inter 1s fastinter 500ms rise 1 fall 2`,
every server starting down from a server-state file, as pgbox's own router).
The same write workload (one insert at a time, each id attempted once,
5 ms apart) runs through port 5000. Repetitions alternate between the two
systems (A B A B) so drift in the machine's load falls on both.

- **Power loss**: SIGKILL to the supervisor and every PostgreSQL process of
  the primary at once; measured to the first acknowledged write sent after
  the kill.
- **Switchover**: `pgboxctl switchover --candidate` / `patronictl switchover
  --force`; the longest gap between acknowledged writes around it.
- **Rejoin**: the powered-off node's supervisor restarted; measured until its
  API reports `replication_state: streaming`.
- **Lost writes**: acknowledged ids missing from the new primary after the
  rejoin.
- **Idle**: the supervisor processes only (pgboxd; Patroni's Python process),
  no workload, over {res['idle_window_s']} s; mean of both nodes.

Versions: {patroni}; PostgreSQL, etcd and HAProxy from Debian. Patroni's floor is ttl 20 s, loop_wait 1 s,
retry_timeout 3 s (lower values are raised to these), so "fastest" compares
pgbox at the same 20 s lease TTL. Synchronous mode is on except in the
"async" rows (both at the 20 s TTL, Patroni at its floor), which measure
only the power loss and what it loses.
`ha.watchdog: off` for pgbox (the benchmark SIGKILLs supervisors).

Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB; load average
{m['loadavg']} at the start and {ma['loadavg']} at the end. The machine is
shared with other work (a QEMU VM may be running), so absolute times carry
that noise; the ratios, from interleaved runs, less so.
Repetitions: {res['reps']} per scenario.
{a.note}

{md}
Where pgbox's failover time goes (medians):

{breakdown(res)}
{"![write availability around the power loss](../bench/out/availability.png) (bench/out/, not committed)" if have_plot else ""}
"""
        if res.get("failures"):
            doc += "\nFailed repetitions (not in the medians):\n\n" + "".join(
                f"- {f}\n" for f in res["failures"])
        with open(a.doc, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
