"""Heads and FFN units pruned together: measured speed-up against the FLOPs ideal, and the PyTorch peer.

Each level removes that fraction of the heads *and* of the feed-forward units of BERT-base shapes
(fixed, seeded, uneven across layers: lower layers keep more, the top layers of the 75% level keep
none), so about that fraction of the encoder's multiply-adds. The library's pruned BertModel
(``prune_heads`` then ``prune_ffn``) and HF's BertModel pruned the same way (``prune_heads`` and
``prune_linear_layer`` on the FFN) are timed against their unpruned originals, all interleaved in
one process (``sections.latency``), so the figures to read are ratios measured in one run:

- measured speed-up: median unpruned time / median pruned time (MindSpore);
- FLOPs-ideal speed-up: MACs unpruned / MACs pruned (``benchmarks/flops.py``);
- realisation: measured / ideal (1.0: time falls as fast as arithmetic).

Usage::

    GLOG_v=3 .venv/bin/python benchmarks/ffn.py            # 12 layers, seq 128, batch 1/8/32
    GLOG_v=3 .venv/bin/python benchmarks/ffn.py --smoke    # tiny shapes, 1 repeat: checks the script

Writes ``benchmarks/results/ffn.json`` and ``benchmarks/results/ffn.md`` (``--out``/``--md``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, atomic_write_json, atomic_write_text, machine_info, tests_on_path, utc_now, versions

tests_on_path()

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, seq_length=128)
TINY = dict(vocab_size=512, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
            seq_length=16, max_position_embeddings=64)
LEVELS = (0.25, 0.5, 0.75)


class _Context:
    def __init__(self, quiet: bool, torch_threads: int | None) -> None:
        self.quiet, self.torch_threads, self.started = quiet, torch_threads, time.perf_counter()

    def progress(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", flush=True)


def plan_for(smoke: bool, layers: int | None) -> dict[str, Any]:
    from sections import bert_config

    if smoke:
        return {"config": bert_config(**TINY), "seq_length": 16, "batch_sizes": (1, 2), "repeats": {1: 1, 2: 1},
                "levels": LEVELS, "structures": ("heads", "ffn")}
    fields = dict(BERT_BASE, num_hidden_layers=layers or BERT_BASE["num_hidden_layers"])
    return {"config": bert_config(**fields), "seq_length": 128, "batch_sizes": (1, 8, 32),
            "repeats": {1: 20, 8: 10, 32: 6}, "levels": LEVELS, "structures": ("heads", "ffn")}


def render(doc: dict[str, Any]) -> str:
    speed, peer = doc["speedup"], doc.get("peer")
    sh = speed["shapes"]
    lines = ["# Heads + FFN pruned together: measured speed-up / FLOPs ideal", "",
             f"- date {doc['finished_at']}; {doc['machine'].get('cpu_model', '?')}, {doc['machine'].get('logical_cores', '?')} "
             f"CPUs; mindspore {doc['versions'].get('mindspore')}; GRAPH_MODE, CPU; torch threads {doc.get('torch_threads')}",
             f"- shapes: {sh['num_hidden_layers']} layers, hidden {sh['hidden_size']}, {sh['num_attention_heads']} heads, "
             f"FFN {sh['intermediate_size']}, seq {sh['seq_length']}; each level removes that fraction of the heads "
             "and of the FFN units (uneven across layers, seeded)", "",
             "| removed | batch | heads kept | FFN units kept | encoder MACs removed | ideal | measured | realisation "
             "| torch measured | torch realisation |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    patterns = {p["fraction_removed"]: p for p in speed["patterns"]}
    torch_rows = {(r["batch_size"], r["fraction_removed"]): r for r in (peer or {}).get("rows", [])}
    for row in speed["rows"]:
        p = patterns[row["fraction_removed"]]
        t = torch_rows.get((row["batch_size"], row["fraction_removed"]), {})
        lines.append(f"| {row['fraction_removed']:.0%} | {row['batch_size']} | {p['heads_kept']} | {p['units_kept']} | "
                     f"{p['encoder_flops_removed']:.1%} | {row['ideal_speedup']:.2f}x | {row['measured_speedup']:.2f}x | "
                     f"{row['realisation']:.2f} | "
                     + (f"{t['torch_measured_speedup']:.2f}x | {t['torch_realisation']:.2f} |" if t else "- | - |"))
    lines += ["", "Realisation below 1 is time that does not fall with the arithmetic: embeddings, LayerNorms, "
              "softmax and GELU, the pooler, and matmuls at narrower, odd widths. The speed-up of heads alone is "
              "in RESULTS.md (same harness).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 1 repeat: checks the script")
    p.add_argument("--layers", type=int, default=None, help="encoder layers (default 12, BERT-base)")
    p.add_argument("--no-peer", action="store_true", help="MindSpore only")
    p.add_argument("--out", default=None)
    p.add_argument("--md", default=None)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    results = REPO / "benchmarks" / "results" / ("smoke" if args.smoke else "")
    out = Path(args.out or results / "ffn.json")
    md = Path(args.md or results / "ffn.md")
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    import hf_peer
    import sections as S

    peer = not args.no_peer and hf_peer.available() is None
    torch_threads = hf_peer.set_threads(ms.get_context("runtime_num_threads") or 2)["torch_threads"] if peer else None
    ctx = _Context(args.quiet, torch_threads)
    started = utc_now()
    measured = S.latency(plan_for(args.smoke, args.layers), ctx, peer=peer)
    doc = {"started_at": started, "finished_at": utc_now(), "machine": machine_info(), "versions": versions(),
           "torch_threads": torch_threads, "argv": sys.argv[1:] if argv is None else list(argv), **measured}
    atomic_write_json(out, doc)
    atomic_write_text(md, render(doc))
    ctx.progress(f"wrote {out} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
