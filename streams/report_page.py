"""The monthly evaluation report as a self-contained HTML page (charts by matplotlib as inline
PNG, labels in Chinese with a CJK font) and as PDF (Debian's headless ``chromium``), one A4
landscape page per section. Content: :func:`grid.monthly.monthly`."""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from grid.monthly import SECTIONS, TOP

CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
TITLES = {"overview": "一、总体情况", "departments": "二、部门考核排名",
          "streets": "三、街镇考核排名", "hotspots": "四、问题高发网格（热点）",
          "recurrences": "五、重复发生问题", "trends": "六、时段分布与发现情况"}
FIGURES = (("dispatched", "派遣数"), ("closed", "结案数"), ("closure_rate", "结案率"),
           ("on_time_rate", "按期结案率"), ("rework_rate", "返工率"), ("extension_rate", "延期率"),
           ("open", "在办"), ("overdue", "超期"))
CSS = """
@page { size: A4 landscape; margin: 10mm 12mm; }
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; color: #222;
       margin: 0; font-size: 10.5pt; }
section { break-after: page; padding: 4mm 0; }
section:last-child { break-after: auto; }
h1 { font-size: 17pt; margin: 0 0 2mm; } h2 { font-size: 14pt; margin: 0 0 3mm;
  border-bottom: 2px solid #b22; padding-bottom: 1mm; }
.sub { color: #555; margin-bottom: 3mm; } .note { color: #555; font-size: 8.5pt; }
.cols { display: flex; gap: 6mm; align-items: flex-start; } .cols > * { flex: 1; }
table { border-collapse: collapse; font-size: 8.5pt; width: 100%; }
th, td { border: 1px solid #ccc; padding: 1px 4px; text-align: right; white-space: nowrap; }
th { background: #f3eded; } td.l, th.l { text-align: left; }
.up { color: #17803d; } .down { color: #b22; }
.kpi { display: flex; gap: 3mm; margin-bottom: 3mm; }
.kpi div { flex: 1; border: 1px solid #ddd; border-radius: 2mm; padding: 2mm; }
.kpi b { display: block; font-size: 15pt; } img { max-width: 100%; }
"""


def _font() -> str | None:
    """Register the first CJK font found with matplotlib; its family name."""
    from matplotlib import font_manager

    for path in CJK_FONTS:
        if os.path.exists(path):
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def _change(v: float | None) -> str:
    if v is None:
        return '<span class="note">—</span>'
    cls = "up" if v > 0 else "down" if v < 0 else ""
    return f'<span class="{cls}">{v * 100:+.1f}</span>'


def _esc(v: Any) -> str:
    return html.escape(str(v if v is not None else ""))


def _cell(row: dict[str, Any], key: str) -> str:
    v = row[key]
    shown = _pct(v) if key.endswith("_rate") else str(v)
    return f'<td data-f="{key}">{shown}</td>'


def _figures_table(rows: list[dict[str, Any]], scope: str, label: str) -> str:
    head = "".join(f"<th>{n}</th>" for _, n in FIGURES)
    out = [f'<table data-scope="{scope}"><tr><th>名次</th><th class="l">{label}</th>{head}'
           "<th>结案率环比</th><th>按期率环比</th></tr>"]
    for r in rows:
        out.append(f'<tr data-key="{_esc(r["key"])}"><td>{r.get("rank", "")}</td>'
                   f'<td class="l">{_esc(r["name"])} <span class="note">{_esc(r["key"])}'
                   f'</span></td>{"".join(_cell(r, k) for k, _ in FIGURES)}'
                   f'<td>{_change(r.get("change_closure_rate"))}</td>'
                   f'<td>{_change(r.get("change_on_time_rate"))}</td></tr>')
    return "".join(out) + "</table>"


def _units_table(units: list[dict[str, Any]]) -> str:
    """Work orders by department and unit (lead / assisting) and the hotline's callbacks."""
    rows = "".join(
        f'<tr data-key="{_esc(u["department"])}:{_esc(u["unit"])}"><td class="l">'
        f'{_esc(u["department"])}</td><td class="l">{_esc(u["unit_name"] or u["unit"] or "—")}'
        f'</td><td>{u["lead"]}</td><td>{u["assisting"]}</td><td>{u["parts_done"]}</td>'
        f'<td>{u["callbacks"]}</td><td>{_pct(u["satisfaction_rate"])}</td>'
        f'<td>{_pct(u["reopen_rate"])}</td></tr>' for u in units[:TOP])
    more = f'<p class="note">另有 {len(units) - TOP} 个单位未列出。</p>' \
        if len(units) > TOP else ""
    return ('<h3>责任单位（主办、协办与回访）</h3><table data-scope="units"><tr>'
            '<th class="l">部门</th><th class="l">单位</th><th>主办</th><th>协办</th>'
            "<th>协办完成</th><th>回访</th><th>满意率</th><th>重开率</th></tr>"
            f"{rows}</table>{more}")


def _rates_chart(rows: list[dict[str, Any]], title: str) -> str:
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["closure_rate"] is not None][:20]
    fig, ax = plt.subplots(figsize=(5.2, 0.28 * len(rows) + 1.1))
    if not rows:
        ax.text(0.5, 0.5, "本期无派遣案件", ha="center", va="center")
        ax.axis("off")
        return _png(fig)
    labels = [r["name"] for r in rows][::-1]
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["closure_rate"] * 100 for r in rows][::-1], 0.4,
            label="结案率", color="#b22")
    ax.barh([i - 0.2 for i in y], [(r["on_time_rate"] or 0) * 100 for r in rows][::-1], 0.4,
            label="按期结案率", color="#e8a33d")
    ax.set_yticks(list(y), labels)
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _overview(d: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    total, before, change = d["evaluation"]["total"], d["total_before"], d["total_change"]
    kpis = "".join(
        f'<div data-f="{k}">{n}<b>'
        f'{_pct(total[k]) if k.endswith("_rate") else total[k]}</b>'
        f'<span class="note">上期 {_pct(before[k]) if k.endswith("_rate") else before[k]}'
        f'{" · 环比 " + _change(change[k]) if k in change else ""}</span></div>'
        for k, n in FIGURES)
    weeks = d["trends"]["weekly_district"]
    fig, ax = plt.subplots(figsize=(9.5, 3.2))
    xs = list(weeks)
    bars = ax.bar(xs, [weeks[w]["reports"] for w in xs], color="#8fa9c8", label="上报（周）")
    ax.set_ylabel("案件数")
    ax2 = ax.twinx()
    (line,) = ax2.plot(xs, [(weeks[w]["closure_rate"] or 0) * 100 for w in xs], "o-",
                       color="#b22", label="结案率 %（当周派遣）")
    ax2.set_ylim(0, 105)
    ax.set_title("每周上报量与结案率（周一起）")
    ax.legend(handles=[bars, line], loc="upper left", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    hot, rec = d["hotspots"], d["recurrences"]
    summary = (f"本期共派遣 {total['dispatched']} 件，结案 {total['closed']} 件；"
               f"识别问题高发网格 {len(hot['hot'])} 个，重复发生问题 {len(rec['queue'])} 件。"
               f"环比为与上期（{d['previous']['from']} 至 {d['previous']['to']}）"
               "相比的百分点变化。")
    low = [f"{label}：{r['name']}（{_pct(r['closure_rate'])}）" for label, rows in
           (("结案率最低的部门", d["departments"]), ("结案率最低的街镇", d["streets"]))
           for r in [x for x in rows if x["closure_rate"] is not None][-1:]]
    if low:
        summary += "<br>" + _esc("；".join(low)) + "。"
    return f'<div class="kpi" data-scope="total">{kpis}</div><p>{summary}</p>{_png(fig)}'


def _hotspots(d: dict[str, Any], cells: Any, streets: Any) -> str:
    import matplotlib.pyplot as plt

    h = d["hotspots"]
    fig, ax = plt.subplots(figsize=(5.6, 5.6))
    if streets is not None:
        streets.boundary.plot(ax=ax, color="#999", linewidth=0.5)
    if cells is not None:
        counts = h["counts"]
        some = cells[cells["code"].isin([c for c, n in counts.items() if n])]
        some.plot(ax=ax, color="#9db4d0", linewidth=0)
        hot = cells[cells["code"].isin([x["cell"] for x in h["hot"]])]
        hot.plot(ax=ax, color="#c00", linewidth=0)
    ax.set_axis_off()
    ax.set_title("热点网格（红）与有案件的网格（蓝）")
    rows = "".join(
        f'<tr data-cell="{_esc(x["cell"])}"><td class="l">{_esc(x["cell"])}</td>'
        f'<td class="l">{_esc(x["street_name"])}</td><td>{x["cases"]}</td>'
        f'<td>{x["neighbours_mean"]:.2f}</td><td>{x["local_i"]:.2f}</td>'
        f'<td>{x["p_value"]:.3f}</td></tr>' for x in h["hot"][:TOP])
    more = f'<p class="note">另有 {len(h["hot"]) - TOP} 个热点网格未列出。</p>' \
        if len(h["hot"]) > TOP else ""
    table = ('<table data-scope="hotspots"><tr><th class="l">单元网格</th><th class="l">街镇</th>'
             "<th>案件</th><th>邻域均值</th><th>局部 I</th><th>p</th></tr>"
             f"{rows}</table>{more}")
    text = (f'<p class="note">统计量：局部莫兰指数（Local Moran\'s I），{h["cells"]} 个单元网格的'
            f'共边或共角（queen）邻接，999 次条件置换；高-高聚集且通过 FDR 校正（α = {h["alpha"]}，'
            f'p ≤ {h["p_bound"]:.4f}）的网格为热点。本期 {h["cases"]} 件有效案件。</p>')
    by_street: dict[str, int] = {}
    for x in h["hot"]:
        by_street[x["street_name"]] = by_street.get(x["street_name"], 0) + 1
    streets_line = "、".join(f"{k} {n} 个" for k, n in sorted(
        by_street.items(), key=lambda kv: (-kv[1], kv[0])))
    text += f'<p>热点网格所在街镇：{_esc(streets_line) or "无"}。</p>'
    return f'{text}<div class="cols"><div>{table}</div><div>{_png(fig)}</div></div>'


def _recurrences(d: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    r = d["recurrences"]
    by = r["by_street"][:12]
    fig, ax = plt.subplots(figsize=(4.6, 0.3 * max(len(by), 1) + 1.0))
    ax.barh([x["name"] for x in by][::-1], [x["cases"] for x in by][::-1], color="#b22")
    ax.set_title("各街镇重复发生问题数")
    counts = "".join(f'<tr data-key="{_esc(x["key"])}"><td class="l">{_esc(x["name"])}</td>'
                     f'<td>{x["cases"]}</td></tr>' for x in r["by_department"])
    queue = "".join(
        f'<tr data-case="{_esc(x["case_id"])}"><td class="l">{_esc(x["case_id"])}</td>'
        f'<td class="l">{_esc(x["type_name"])}</td><td class="l">{_esc(x["street_name"])}</td>'
        f'<td class="l">{_esc(x["department_name"])}</td><td>{x["created_at"][:16]}</td>'
        f'<td class="l">第{x["nth"]}次</td><td class="l">{_esc(", ".join(x["earlier"]))}</td>'
        "</tr>" for x in r["queue"][:TOP])
    return (f'<p class="note">同一位置（同一单元网格或该类型的重复判定半径内）同类问题在上次结案后 '
            f'{r["days"]} 天内再次上报，即记为重复发生，标在新案件上。</p>'
            '<div class="cols"><div><table data-scope="recurrence-departments"><tr>'
            f'<th class="l">部门</th><th>重复发生</th></tr>{counts}</table></div>'
            f"<div>{_png(fig)}</div></div>"
            '<h3>待处理队列（按次数）</h3><table data-scope="recurrence-queue"><tr>'
            '<th class="l">案件</th><th class="l">类型</th><th class="l">街镇</th>'
            '<th class="l">部门</th><th>上报时间</th><th class="l">次数</th>'
            f'<th class="l">此前案件</th></tr>{queue}</table>')


def _trends(d: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    from grid.analytics import WEEKDAYS

    t = d["trends"]
    fig, ax = plt.subplots(figsize=(7.2, 2.6))
    im = ax.imshow(t["heatmap"], aspect="auto", cmap="Reds")
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h}时" for h in range(0, 24, 2)], fontsize=8)
    ax.set_title("上报时段分布（星期 × 小时，上海时间）")
    fig.colorbar(im, ax=ax, shrink=0.8)
    heat = _png(fig)
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    for cat, weeks in t["weekly"].items():
        ax.plot(list(weeks), [w["reports"] for w in weeks.values()], "o-",
                label=d["category_names"].get(cat, cat))
    ax.set_title("各大类每周上报量")
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    ax.legend(fontsize=7)
    rows = "".join(
        f'<tr data-key="{_esc(s["reporter"])}"><td class="l">{_esc(s["reporter"])}</td>'
        f'<td>{s["reports"]}</td><td>{_pct(s["valid_rate"])}</td>'
        f'<td>{_pct(s["self_disposal_share"])}</td><td>{s["verifications"]}</td>'
        f'<td>{"—" if s["mean_verify_hours"] is None else s["mean_verify_hours"]}</td></tr>'
        for s in t["supervisors"][:12])
    return (f'<div class="cols"><div>{heat}</div><div>{_png(fig)}</div></div>'
            "<h3>监督员发现情况（应发现尽发现）</h3>"
            '<table data-scope="supervisors"><tr><th class="l">监督员</th><th>上报立案</th>'
            "<th>有效率</th><th>自行处置占比</th><th>核查次数</th><th>平均核查用时（小时）</th>"
            f"</tr>{rows}</table>")


def render_html(d: dict[str, Any], cells: Any = None, streets: Any = None) -> str:
    """The report page; ``cells``/``streets``: GeoDataFrames of the district for the map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    family = _font()
    if family:
        plt.rcParams["font.family"] = [family, "sans-serif"]
    plt.rcParams["axes.unicode_minus"] = False
    body = {
        "overview": _overview(d),
        "departments": '<div class="cols"><div>' + _figures_table(
            d["departments"], "department", "部门") + "</div><div>"
        + _rates_chart(d["departments"], "各部门结案率与按期结案率") + "</div></div>"
        + (_units_table(d["evaluation"]["units"]) if d["evaluation"].get("units") else ""),
        "streets": '<div class="cols"><div>' + _figures_table(
            d["streets"], "street", "街镇") + "</div><div>"
        + _rates_chart(d["streets"], "各街镇结案率与按期结案率") + "</div></div>",
        "hotspots": _hotspots(d, cells, streets),
        "recurrences": _recurrences(d),
        "trends": _trends(d),
    }
    title = f'{_esc(d["district_name"])}城市网格化管理月度考核评价报告'
    head = (f"<h1>{title}</h1><div class=\"sub\">考核期 {d['from']} 至 {d['to']}（上海时间；"
            "指标口径见 docs/evaluation.md：本期首次派遣的案件，按期末状态计）</div>")
    parts = [f'<section id="{s}"><h2>{TITLES[s]}</h2>{body[s]}</section>' for s in SECTIONS]
    parts[0] = parts[0].replace("<h2>", head + "<h2>", 1)
    return (f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title}'
            f"</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>")


def chromium() -> str:
    """Debian's chromium (``GRID_CHROMIUM`` to use another)."""
    exe = os.environ.get("GRID_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).exists():
        raise FileNotFoundError("no chromium to print the PDF with: apt-get install chromium "
                                "(or set GRID_CHROMIUM)")
    return exe


def print_pdf(page: str, out: Path, timeout: float = 120) -> None:
    """Print an HTML page to ``out`` with headless Chromium (the page's @page size)."""
    with tempfile.TemporaryDirectory(prefix="grid-report-") as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(page, encoding="utf-8")
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--no-pdf-header-footer", f"--user-data-dir={tmp}/profile",
               f"--print-to-pdf={out.resolve()}", src.as_uri()]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"chromium could not print the report (exit {done.returncode}): "
                               f"{done.stderr.decode(errors='replace')[-500:]}")
