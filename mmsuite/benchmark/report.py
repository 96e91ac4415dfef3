"""Benchmark reports: ``results.json`` (everything, standard JSON: NaN written as null) and a
self-contained ``report.html`` (plots and example thumbnails embedded as base64 PNGs, made with
matplotlib's Agg backend), plus the HTML tables notebooks show."""
import base64
import datetime
import html
import io
import json
import math
import os

import numpy as np

__all__ = ["write_report", "result_table_html", "results_table_html", "json_safe"]

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}figure{display:inline-block;margin:.5em}
.ex{display:flex;flex-wrap:wrap;gap:1em}.ex div{width:220px;font-size:90%}.muted{color:#777}"""


def json_safe(x):
    """x with NaN/inf floats as None, numpy scalars/arrays as Python values, tuples as lists."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt(v):
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4g}"
    return html.escape(str(v))


def _flat_metrics(metrics, prefix=""):
    for k, v in metrics.items():
        if isinstance(v, dict):
            yield from _flat_metrics(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", v


def result_table_html(res):
    """One task's metrics (with chance levels) and speed as an HTML table."""
    chance = res.get("chance", {})
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td class=num>{_fmt(v)}</td>"
                   f"<td class=num>{_fmt(chance[k]) if k in chance else ''}</td></tr>"
                   for k, v in _flat_metrics(res.get("metrics", {})))
    p = res.get("performance", {})
    lat = p.get("item_latency_ms", {})
    speed = (f"{p.get('computed_items', 0)} computed, {p.get('cached_items', 0)} from cache, "
             f"{res.get('dataset', {}).get('skipped', 0)} skipped; "
             + (f"{p['throughput_items_per_s']:.3g} items/s, " if p.get("throughput_items_per_s") else "")
             + (f"p50 {lat['p50']:.1f} ms/item, " if lat else "")
             + f"peak RSS {p.get('peak_rss_mb', 0):.0f} MB")
    model = res.get("model", {})
    return (f"<div><b>{html.escape(res.get('task', '?'))}</b> · {html.escape(str(model.get('name')))} "
            f"<span class=muted>({html.escape(str(model.get('path')))}, id {html.escape(str(model.get('id')))})</span>"
            f"<table><tr><th>metric</th><th>value</th><th>chance</th></tr>{rows}</table>"
            f"<div class=muted>{html.escape(speed)}</div></div>")


def results_table_html(results):
    if not results:
        return "<p>no benchmark has run yet</p>"
    return "".join(result_table_html(r) for r in results.values())


# ---- plots ----------------------------------------------------------------------------------------

def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(task, res):
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    out = []
    m, ch = res.get("metrics", {}), res.get("chance", {})
    if task == "retrieval":
        ks = res.get("settings", {}).get("k_values", [])
        if ks:
            fig, ax = plt.subplots(figsize=(5, 3.2))
            for key, label in (("image_retrieval", "text→image"), ("text_retrieval", "image→text")):
                ax.plot(ks, [m[f"{key}_recall@{k}"] for k in ks], "o-", label=label)
                ax.plot(ks, [ch.get(f"{key}_recall@{k}", float("nan")) for k in ks], ":", color="gray")
            ax.set_xticks(ks)
            ax.set_xlabel("k")
            ax.set_ylabel("recall@k")
            ax.set_ylim(0, 1.02)
            ax.set_title("Retrieval recall@k (dotted: chance)")
            ax.legend()
            out.append(("recall@k curves", _png(fig)))
    elif task == "vqa" and m.get("perAnswerType"):
        types = sorted(m["perAnswerType"])
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.bar(["overall"] + types, [m["overall"]] + [m["perAnswerType"][t] for t in types], color="#4a7")
        ax.set_ylabel("VQA accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title("VQA accuracy per answer type")
        out.append(("VQA accuracy per answer type", _png(fig)))
    elif m:
        keys = [k for k, v in m.items() if isinstance(v, (int, float)) and math.isfinite(v) and "rank" not in k]
        if keys:
            fig, ax = plt.subplots(figsize=(5, 3.2))
            ax.bar(keys, [m[k] for k in keys], color="#47a", label="model")
            if any(k in ch for k in keys):
                ax.scatter(keys, [ch.get(k, float("nan")) for k in keys], color="red", marker="_", s=400, label="chance")
                ax.legend()
            ax.set_title(f"{task} metrics")
            ax.tick_params(axis="x", rotation=30)
            out.append((f"{task} metrics", _png(fig)))
    p = res.get("performance", {})
    per_item = [ms / n for ms, n in zip(p.get("batch_latencies_ms", []), p.get("batch_sizes", [])) if n]
    if per_item:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(per_item, bins=min(30, max(5, len(per_item))), color="#a74")
        ax.set_xlabel("ms per item (batch time / batch size)")
        ax.set_ylabel("batches")
        ax.set_title(f"{task}: latency")
        out.append((f"{task} latency histogram", _png(fig)))
    return out


def _thumbnail(path, side=200):
    """A PNG (base64) of an image file scaled to fit side x side, or None if it cannot be read."""
    from .. import _C
    try:
        img = _C.decode_image(path)
        h, w = img.shape[:2]
        s = min(1.0, side / max(h, w))
        if s < 1.0:
            img = _C.resize_image(img, max(1, round(w * s)), max(1, round(h * s)))
    except Exception:  # noqa: BLE001 - a report never fails on one bad example
        return None
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.image as mpimg
    buf = io.BytesIO()
    mpimg.imsave(buf, np.ascontiguousarray(img), format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _examples(task, res, n=4):
    cells = []
    for it in res.get("items", [])[:n]:
        if not it.get("image"):
            continue
        thumb = _thumbnail(it["image"])
        if thumb is None:
            continue
        if task == "captioning":
            text = f"<b>{html.escape(it['prediction'])}</b><br><span class=muted>ref: " \
                   f"{html.escape((it.get('references') or [''])[0])}</span>"
        elif task == "vqa":
            text = f"Q: {html.escape(it['question'])}<br>A: <b>{html.escape(it['prediction'])}</b>"
        elif task == "classification":
            text = f"{html.escape(it['label'])} → <b>{html.escape(it['prediction'])}</b>"
        else:
            text = html.escape((it.get("captions") or [""])[0])
        cells.append(f"<div><img src=\"data:image/png;base64,{thumb}\" alt=\"example\"><br>{text}</div>")
    return f"<div class=ex>{''.join(cells)}</div>" if cells else ""


def _kv_table(d):
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v) if not isinstance(v, (dict, list)) else html.escape(json.dumps(json_safe(v))[:300])}</td></tr>"
                   for k, v in d.items())
    return f"<table>{rows}</table>"


def _html(results, title, summary=None):
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
             f"<p class=muted>{datetime.datetime.now().isoformat(timespec='seconds')}</p>"]
    env = next(iter(results.values()), {}).get("environment", {})
    if summary:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td class=num>{_fmt(v)}</td>"
                       f"<td class=num>{_fmt(summary[k + '_chance']) if k + '_chance' in summary else ''}</td></tr>"
                       for k, v in summary.items() if not k.endswith("_chance"))
        parts.append(f"<h2>Summary</h2><table><tr><th>metric</th><th>value</th><th>chance</th></tr>{rows}</table>")
    for name, res in results.items():
        task = res.get("task", name)
        parts.append(f"<h2>{html.escape(name)}</h2>{result_table_html(res)}")
        for caption, png in _plots(task, res):
            parts.append(f"<figure><img src=\"data:image/png;base64,{png}\" alt=\"{html.escape(caption)}\">"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append(_examples(task, res))
        ds = res.get("dataset", {})
        parts.append(f"<h3>Dataset</h3>{_kv_table({k: v for k, v in ds.items() if k != 'problems'})}")
        if ds.get("problems"):
            rows = "".join(f"<tr><td>{html.escape(str(p['item']))}</td><td>{html.escape(str(p['file']))}</td>"
                           f"<td>{html.escape(p['problem'])}</td></tr>" for p in ds["problems"][:50])
            parts.append(f"<p>{len(ds['problems'])} item(s) skipped:</p><table><tr><th>item</th><th>file</th>"
                         f"<th>problem</th></tr>{rows}</table>")
        perf = {k: v for k, v in res.get("performance", {}).items() if k not in ("batch_latencies_ms", "batch_sizes")}
        parts.append(f"<h3>Settings</h3>{_kv_table(res.get('settings', {}))}<h3>Performance</h3>{_kv_table(perf)}")
    parts.append(f"<h2>Environment</h2>{_kv_table(env)}</body></html>")
    return "".join(parts)


def _atomic_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_report(out_dir, results, title="mmsuite benchmark", summary=None, extra=None):
    """Write out_dir/results.json and out_dir/report.html for {name: result}. summary: an
    optional flat {metric: value, metric + "_chance": value} table shown first (and stored
    under "summary"); extra: more top-level JSON entries."""
    if not results:
        raise ValueError("write_report: no results (run a benchmark first)")
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "results.json"), "html": os.path.join(out_dir, "report.html")}
    doc = {"title": title}
    if summary:
        doc["summary"] = summary
    doc.update(extra or {})
    doc["results"] = results
    _atomic_write(paths["json"], json.dumps(json_safe(doc), indent=1, ensure_ascii=False, allow_nan=False))
    _atomic_write(paths["html"], _html(results, title, summary))
    return paths
