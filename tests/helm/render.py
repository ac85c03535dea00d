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
  {"mode": "yaml", "snippets": [text, ...]}
      -> {"ok": [{"map": fromYaml's result, "array": fromYamlArray's}, ...]}
         Helm's own YAML reading (sigs.k8s.io/yaml over go-yaml v2, the
         reader of rendered manifests too) of each text, read from a file of
         a chart made for the request; a text Helm refuses gives
         {"Error": message} as "map" and [message] as "array".

Uses the helm-python-sdk package (scripts/install-helm-sdk.sh installs it).
"""

import json
import os
import sys
import tempfile
import time

from helm_python.chart import Chart


def handle(req):
    mode = req.get("mode", "render")
    if mode == "yaml":
        return parse_yaml(req["snippets"])
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


# One template reads every snippet with fromYaml and fromYamlArray.
PARSE_TEMPLATE = """{{- $out := list -}}
{{- range $i := until (int .Values.count) -}}
{{- $text := $.Files.Get (printf "snippets/%05d.txt" $i) -}}
{{- $out = append $out (dict "map" (fromYaml $text) "array" (fromYamlArray $text)) -}}
{{- end -}}
{{- toJson $out -}}
"""


def parse_yaml(snippets):
    with tempfile.TemporaryDirectory() as tmp:
        chart_dir = os.path.join(tmp, "yaml")
        os.makedirs(os.path.join(chart_dir, "templates"))
        os.makedirs(os.path.join(chart_dir, "snippets"))
        with open(os.path.join(chart_dir, "Chart.yaml"), "w") as f:
            f.write("apiVersion: v2\nname: yaml\nversion: 0.1.0\n")
        with open(os.path.join(chart_dir, "templates", "parse.txt"), "w") as f:
            f.write(PARSE_TEMPLATE)
        for i, text in enumerate(snippets):
            path = os.path.join(chart_dir, "snippets", f"{i:05d}.txt")
            with open(path, "w", newline="") as f:
                f.write(text)
        with Chart.load(chart_dir) as chart:
            out = chart.render({"count": len(snippets)})
        return json.loads(out["yaml/templates/parse.txt"])


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
