"""Helm v4's own renderer, for tests/helm_diff.rs.

Reads one JSON request, or a JSON list of them, on stdin and writes a JSON
list of results (in request order) on stdout; one process serves a whole
test run, since loading the Helm library takes most of the time.

Requests (every key but "mode" as the mode needs):
  {"mode": "render", "chart_dir", "values", "name", "namespace",
   "revision", "is_install", "is_upgrade"}
      -> {"ok": {template name: rendered text}} or {"error": "<Helm's message>"}
  {"mode": "merge", "chart_dir", "values"}
      -> {"ok": the chart's defaults coalesced with values}
  {"mode": "create", "name", "dir"}
      -> {"ok": "<path of the scaffolded chart>"} (what `helm create` writes)
  {"mode": "time", "chart_dir", "runs", and render's keys}
      -> {"ok": [seconds of each render]} (the chart loaded once; for the
         benchmark harness's `render`)

Uses the helm-python-sdk package (scripts/install-helm-sdk.sh installs it).
"""

import json
import sys
import time

from helm_python.chart import Chart


def handle(req):
    mode = req.get("mode", "render")
    if mode == "create":
        chart = Chart.create(req["name"], req["dir"])
        chart.close()
        return f'{req["dir"]}/{req["name"]}'
    with Chart.load(req["chart_dir"]) as chart:
        if mode == "merge":
            return chart.merge_values(req.get("values") or {})
        if mode == "time":
            times = []
            for _ in range(req.get("runs", 10)):
                start = time.perf_counter()
                render(chart, req)
                times.append(time.perf_counter() - start)
            return times
        return render(chart, req)


def render(chart, req):
    return chart.render(
        req.get("values") or {},
        name=req.get("name", "release"),
        namespace=req.get("namespace", "default"),
        revision=req.get("revision", 1),
        is_install=req.get("is_install", True),
        is_upgrade=req.get("is_upgrade", False),
    )


def main():
    payload = json.load(sys.stdin)
    requests = payload if isinstance(payload, list) else [payload]
    results = []
    for req in requests:
        try:
            results.append({"ok": handle(req)})
        except Exception as e:  # Helm's errors are what the tests compare.
            results.append({"error": str(e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
