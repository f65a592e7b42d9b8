"""What the attention layout costs: the library's BertModel against variants of its attention block.

The record behind the choice of layout in ``lrp_prune.network.bert.BertAttention`` (issue: "find where the
time goes ... fused QKV projection, attention matmul layouts, graph-kernel fusion, avoiding
transposes ... record what you tried and what each gave"). Every variant is the library's
BertModel with the same weights in which only the attention cell (Q/K/V projections, scores,
context) is swapped for a variant; its outputs are checked against the library's before timing,
and all variants are timed in alternation in one process (``common.interleaved``), so the figure
to read is each variant's time over the library's.

Variants:
    library     three Dense (Q, K, V), reshape + transpose to (B, n, S, d), ``q @ k.swapaxes``
    fused_qkv   one Dense of width 3*n*d (weights concatenated), one reshape/transpose, split
    k_transposed  K laid out as (B, n, d, S) by its own transpose: no swapaxes before the matmul
    batchmatmul_tb  ``ops.BatchMatMul(transpose_b=True)`` for the scores (the kernel transposes)
    heads_folded  (B*n, S, d) 3-D batched matmuls instead of 4-D
    jit_O1      the library's cell compiled with ``JitConfig(jit_level="O1")`` (graph-kernel fusion
                where the backend has it); an error is recorded if the backend refuses

Usage::

    GLOG_v=3 .venv/bin/python benchmarks/layouts.py            # 4 BERT-base layers, batch 8 and 32, seq 128
    GLOG_v=3 .venv/bin/python benchmarks/layouts.py --smoke    # tiny shapes, 1 repeat: checks the script

Writes ``benchmarks/results/layouts.json`` and ``benchmarks/results/layouts.md`` (``--out``/``--md``).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common import (REPO, atomic_write_json, atomic_write_text, free, interleaved, machine_info, stats,
                    tests_on_path, utc_now, versions)

tests_on_path()


def _variant_cells():
    """The variant attention cells (defined lazily: MindSpore is imported by ``main``)."""
    import mindspore as ms
    from mindspore import Tensor, nn, ops

    class _Base(nn.Cell):
        def __init__(self, lib: Any) -> None:  # lib: the library's BertAttention (weights copied)
            super().__init__()
            self.num_heads, self.head_size, self.width = lib.num_heads, lib.head_size, lib.width
            self.scale = lib.scale
            self.softmax = nn.Softmax(axis=-1)

        @staticmethod
        def dense_like(layer: nn.Dense, weight: np.ndarray | None = None, bias: np.ndarray | None = None) -> nn.Dense:
            w = layer.weight.asnumpy() if weight is None else weight
            b = layer.bias.asnumpy() if bias is None else bias
            return nn.Dense(w.shape[1], w.shape[0], weight_init=Tensor(w), bias_init=Tensor(b))

        def finish(self, probs: Tensor, v: Tensor, b: int, s: int) -> Tensor:
            context = ops.matmul(probs, v)  # (B, n, S, d)
            return context.transpose(0, 2, 1, 3).reshape(b, s, self.width)  # (B, S, n*d)

    class FusedQKV(_Base):
        def __init__(self, lib: Any) -> None:
            super().__init__(lib)
            layers = (lib.query_layer, lib.key_layer, lib.value_layer)
            self.qkv = self.dense_like(lib.query_layer, np.concatenate([x.weight.asnumpy() for x in layers]),
                                       np.concatenate([x.bias.asnumpy() for x in layers]))

        def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
            b, s, _ = x.shape
            qkv = self.qkv(x).reshape(b, s, 3, self.num_heads, self.head_size).transpose(2, 0, 3, 1, 4)  # (3, B, n, S, d)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = ops.matmul(q, k.swapaxes(-1, -2)) * self.scale  # (B, n, S, S)
            return self.finish(self.softmax(scores + mask_adder), v, b, s)

    class _Separate(_Base):
        def __init__(self, lib: Any) -> None:
            super().__init__(lib)
            self.query_layer = self.dense_like(lib.query_layer)
            self.key_layer = self.dense_like(lib.key_layer)
            self.value_layer = self.dense_like(lib.value_layer)

        def heads(self, t: Tensor, b: int, s: int) -> Tensor:
            return t.reshape(b, s, self.num_heads, self.head_size).transpose(0, 2, 1, 3)  # (B, n, S, d)

    class KTransposed(_Separate):
        def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
            b, s, _ = x.shape
            q = self.heads(self.query_layer(x), b, s)  # (B, n, S, d)
            k_t = self.key_layer(x).reshape(b, s, self.num_heads, self.head_size).transpose(0, 2, 3, 1)  # (B, n, d, S)
            v = self.heads(self.value_layer(x), b, s)  # (B, n, S, d)
            scores = ops.matmul(q, k_t) * self.scale  # (B, n, S, S)
            return self.finish(self.softmax(scores + mask_adder), v, b, s)

    class BatchMatMulTB(_Separate):
        def __init__(self, lib: Any) -> None:
            super().__init__(lib)
            self.qk = ops.BatchMatMul(transpose_b=True)

        def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
            b, s, _ = x.shape
            q = self.heads(self.query_layer(x), b, s)  # (B, n, S, d)
            k = self.heads(self.key_layer(x), b, s)  # (B, n, S, d)
            v = self.heads(self.value_layer(x), b, s)  # (B, n, S, d)
            scores = self.qk(q, k) * self.scale  # (B, n, S, S)
            return self.finish(self.softmax(scores + mask_adder), v, b, s)

    class HeadsFolded(_Separate):
        def construct(self, x: Tensor, mask_adder: Tensor) -> Tensor:
            b, s, _ = x.shape
            n, d = self.num_heads, self.head_size
            q = self.heads(self.query_layer(x), b, s).reshape(b * n, s, d)  # (B*n, S, d)
            k = self.heads(self.key_layer(x), b, s).reshape(b * n, s, d)  # (B*n, S, d)
            v = self.heads(self.value_layer(x), b, s).reshape(b * n, s, d)  # (B*n, S, d)
            scores = ops.bmm(q, k.swapaxes(1, 2)) * self.scale  # (B*n, S, S)
            probs = self.softmax(scores.reshape(b, n, s, s) + mask_adder).reshape(b * n, s, s)  # (B*n, S, S)
            context = ops.bmm(probs, v).reshape(b, n, s, d)  # (B, n, S, d)
            return context.transpose(0, 2, 1, 3).reshape(b, s, self.width)  # (B, S, n*d)

    del ms
    return {"fused_qkv": FusedQKV, "k_transposed": KTransposed, "batchmatmul_tb": BatchMatMulTB,
            "heads_folded": HeadsFolded}


def build_models(cfg: Any, params: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, str]]:
    """``{name: BertModel}`` with the same weights; ``{name: error}`` for variants that could not be built."""
    from mindspore import JitConfig

    from lrp_prune import BertModel
    from lrp_prune.io.checkpoint import load_param_dict
    from lrp_prune.network.bert import refresh_cell

    def library() -> Any:
        model = BertModel(cfg, is_training=False)
        load_param_dict(model, params)
        model.set_train(False)
        return model

    models: dict[str, Any] = {"library": library()}
    errors: dict[str, str] = {}
    for name, cls in _variant_cells().items():
        model = library()
        for layer in model.bert_encoder.layers:
            layer.attention.attention = cls(layer.attention.attention)
        refresh_cell(model)
        model.set_train(False)
        models[name] = model
    try:
        model = library()
        model.set_jit_config(JitConfig(jit_level="O1"))
        models["jit_O1"] = model
    except Exception as err:  # noqa: BLE001 - recorded, not fatal
        errors["jit_O1"] = f"{type(err).__name__}: {err}"
    return models, errors


def runner(model: Any, inputs: tuple) -> Callable[[], Any]:
    def run():
        out = model(*inputs)
        return out[0].asnumpy()

    return run


def measure(cfg: Any, batch_sizes: tuple[int, ...], seq_length: int, repeats: dict[int, int],
            progress: Callable[[str], None]) -> dict[str, Any]:
    from mindspore import Tensor

    from reference import random_params
    from sections import random_inputs

    params = random_params(cfg.to_dict(), seed=0)
    models, errors = build_models(cfg, params)
    rows = []
    for b in batch_sizes:
        inputs = tuple(Tensor(a) for a in random_inputs(cfg, b, seq_length, seed=1))
        runners, diffs, first = {}, {}, {}
        expected = None
        for name, model in models.items():
            run = runner(model, inputs)
            try:
                t0 = time.perf_counter()
                out = run()  # compiles
                first[name] = round(time.perf_counter() - t0, 2)
            except Exception as err:  # noqa: BLE001 - a variant the backend refuses is a finding
                errors[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
                progress(f"{name}: {errors[name]}")
                continue
            if expected is None:
                expected = out
            diffs[name] = float(np.abs(out.astype(np.float64) - expected).max())
            run()
            runners[name] = run
        progress(f"batch {b}: timing {', '.join(runners)} x {repeats[b]}")
        times = interleaved(runners, repeats[b])
        base = float(np.median(times["library"]))
        for name, values in times.items():
            rows.append({"variant": name, "batch_size": b, "seq_length": seq_length,
                         "ratio_over_library": round(float(np.median(values)) / base, 4),
                         "paired_ratio": stats([v / l for v, l in zip(values, times["library"])], 4),
                         "seconds": stats(values), "first_call_s": first[name],
                         "max_abs_diff_vs_library": diffs[name]})
    del models
    free()
    return {"rows": rows, "errors": errors}


def render(doc: dict[str, Any]) -> str:
    s = doc["shapes"]
    lines = ["# Attention layouts: time of each variant / the library's BertModel", "",
             f"- date {doc['started_at']}; {doc['machine']['cpu_model']}, {doc['machine']['logical_cores']} cores; "
             f"mindspore {doc['versions']['mindspore']}; GRAPH_MODE, CPU",
             f"- shapes: {s['num_hidden_layers']} layers, hidden {s['hidden_size']}, {s['num_attention_heads']} heads, "
             f"FFN {s['intermediate_size']}, seq {doc['seq_length']}; whole BertModel forward timed", "",
             "| variant | batch | time / library | paired min-max | median ms | max abs diff vs library |",
             "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        p = r["paired_ratio"]
        lines.append(f"| {r['variant']} | {r['batch_size']} | {r['ratio_over_library']:.3f} | {p['min']:.3f}-{p['max']:.3f} | "
                     f"{r['seconds']['median'] * 1e3:.1f} | {r['max_abs_diff_vs_library']:.2e} |")
    for name, err in doc["errors"].items():
        lines.append(f"\n{name}: not measured ({err})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 1 repeat")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "layouts.json"))
    p.add_argument("--md", default=str(REPO / "benchmarks" / "results" / "layouts.md"))
    args = p.parse_args(argv)
    import mindspore as ms

    from sections import bert_config

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    if args.smoke:
        cfg = bert_config(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=37, seq_length=16, max_position_embeddings=32)
        batches, seq, repeats = (2,), 16, {2: 1}
    else:
        cfg = bert_config(vocab_size=30522, hidden_size=768, num_hidden_layers=4, num_attention_heads=12,
                          intermediate_size=3072, seq_length=128)
        batches, seq, repeats = (8, 32), 128, {8: 12, 32: 6}
    doc: dict[str, Any] = {"started_at": utc_now(), "machine": machine_info(), "versions": versions(),
                           "shapes": {k: getattr(cfg, k) for k in ("num_hidden_layers", "hidden_size",
                                                                   "num_attention_heads", "intermediate_size")},
                           "seq_length": seq}
    t0 = time.perf_counter()
    try:
        doc.update(measure(cfg, batches, seq, repeats, lambda m: print(f"[layouts] {m}", flush=True)))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    doc["wall_time_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, doc)
    atomic_write_text(args.md, render(doc))
    print(render(doc))
    bad = [r for r in doc["rows"] if r["max_abs_diff_vs_library"] > 1e-4]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
