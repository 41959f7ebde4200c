"""The projection as `nasrepro cost` prints it: a text table, its totals, the claimed search costs
beside the projected ones, and the notes (each row's basis)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from nas_impl.cost.projection import Projection, search_hours


def _fmt_count(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= limit:
            return f"{x / limit:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def _fmt_h(h: float | None) -> str:
    if h is None:
        return "unknown"
    return f"{h:,.1f}" if h >= 10 else f"{h:.3g}"


def _projected(hours: float, missing: list[str]) -> str:
    if not missing:
        return f"{_fmt_h(hours)} device-h"
    unknown = f"unknown ({', '.join(missing)})"
    return unknown if not hours else f"{_fmt_h(hours)} device-h + {unknown}"


def render(projection: Projection) -> str:
    """The projection as a text table, its totals, the claimed search costs and the notes."""
    notes: dict[str, int] = {}
    header = ["rule", "paper", "job", "seeds", "work/job", "rate", "source", "device-h", "note"]
    body = []
    for r in projection.rows:
        j = r.job
        note = notes.setdefault(j.basis, len(notes) + 1)
        rule = j.rule if j.stage in ("", j.rule) else f"{j.rule}:{j.stage}"
        unit = {"images": " img", "tokens": " tok"}.get(j.network.unit, "")
        work = "-" if j.work is None else _fmt_count(j.work, unit)
        rate = "-" if r.rate.value is None else (
            f"{_fmt_count(r.rate.value, unit)}/s" if j.work is not None else f"{1 / r.rate.value:.3g} s/job")
        if r.rate.source == "unknown":
            rate = "-"
        body.append([rule, j.paper, j.name, str(j.seeds), work, rate, r.rate.source, _fmt_h(r.device_h), f"[{note}]"])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    right = {3, 4, 5, 7}
    out = io.StringIO()
    out.write(f"Projected device-hours, scale {projection.scale}, device '{projection.device}' "
              f"(work / rate; an unknown rate adds nothing to the totals)\n\n")

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    out.write(line(header) + "\n" + line(["-" * w for w in widths]) + "\n")
    for row in body:
        out.write(line(row) + "\n")
    out.write("\nPer paper (1 device):\n")
    for paper, t in projection.paper_totals().items():
        parts = ", ".join(f"{rule} {_fmt_h(h)}" for rule, h in sorted(t["by_rule"].items()))
        unknown = f"; {t['unknown_jobs']} job(s) of unknown rate not counted" if t["unknown_jobs"] else ""
        out.write(f"  {paper:<14} {_fmt_h(t['device_h']):>10} device-h ({parts or 'nothing known'}){unknown}\n")
    by_rule = ", ".join(f"{rule} {_fmt_h(h)}" for rule, h in sorted(projection.rule_totals().items()))
    out.write(f"\nPer rule (all papers, 1 device): {by_rule or 'nothing known'}\n")
    total = projection.total_h
    unknown = f" ({projection.unknown_jobs} job(s) of unknown rate not counted)" if projection.unknown_jobs else ""
    out.write(f"\nTotal: {_fmt_h(total)} device-h on 1 device{unknown}\n")
    out.write(f"       {_fmt_h(total / projection.gpus)} h on {projection.gpus} device(s), ideal scaling (total / "
              f"{projection.gpus}: no job waits; {projection.gpus_from})\n")
    out.write(f"       no fewer than {_fmt_h(projection.critical_path_h())} h whatever the devices (the longest chain "
              "of one seed: search -> KD teacher -> training -> evaluation)\n")
    if projection.others:
        out.write("\nOther rules (host bookkeeping, not device work; median seconds a job from earlier "
                  "benchmarks):\n  ")
        out.write(", ".join(f"{rule} {n}" + (f" x {s:.2g} s" if s is not None else " x ? s")
                            for rule, (n, s, _) in projection.others.items()) + "\n")
    out.write("\nClaimed search cost beside the projection (one search, one seed):\n")
    searches = search_hours(projection)
    if not searches:
        out.write("  (no search at this scale)\n")
    for paper in dict.fromkeys(paper for paper, _ in searches):
        mine = [(name, found) for (p, name), found in searches.items() if p == paper]
        unclaimed = [(name, found) for name, found in mine if found[2].value is None]
        for name, (hours, missing, claim) in mine:
            if claim.value is not None:
                out.write(f"  {paper}/{name}: claimed {claim.value:g} GPU-h; projected {_projected(hours, missing)} "
                          f"on '{projection.device}'\n      claim: {claim.text}\n")
        texts = list(dict.fromkeys(found[2].text for _, found in unclaimed))
        for text in texts:
            names = [(name, found) for name, found in unclaimed if found[2].text == text]
            listing = "; ".join(f"{name} {_projected(h, m)}" for name, (h, m, _) in names)
            out.write(f"  {paper}: {text}\n      projected on '{projection.device}': {listing}\n")
    out.write("\nNotes (the basis of each row's work):\n")
    for text, number in notes.items():
        out.write(f"  [{number}] {text}\n")
    return out.getvalue()
