#!/usr/bin/env python3
"""Writes the folder used by BENCHMARKS.md's `podguard check` figures: 2,000 objects in 20
files (Deployments, StatefulSets and Pods with one container, env, resources, a configMap
volume with an octal defaultMode and a YAML 1.1 boolean, plus Services and ConfigMaps).

    python3 benches/check/corpus.py /tmp/corpus
"""
import os
import random
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/corpus"
os.makedirs(out, exist_ok=True)
random.seed(7)
docs = []
for i in range(2000):
    kind = random.choice(["Deployment", "Pod", "StatefulSet", "Service", "ConfigMap"])
    meta = f"metadata:\n  name: o{i}\n  namespace: ns{i % 20}\n"
    if kind == "Service":
        docs.append(f"apiVersion: v1\nkind: Service\n{meta}spec:\n  ports: [{{port: 80}}]\n")
        continue
    if kind == "ConfigMap":
        docs.append(f"apiVersion: v1\nkind: ConfigMap\n{meta}data:\n  a: b\n")
        continue
    privileged = "true" if i % 7 == 0 else "false"
    pod = f"""containers:
- name: app
  image: registry.example.com/app{i}:1.{i % 10}
  ports: [{{containerPort: 8080}}]
  env:
    - {{name: MODE, value: prod}}
    - {{name: LEVEL, value: "{i}"}}
  resources:
    requests: {{cpu: 100m, memory: 128Mi}}
    limits: {{memory: 256Mi}}
  securityContext:
    privileged: {privileged}
    readOnlyRootFilesystem: yes
  volumeMounts: [{{name: cfg, mountPath: /etc/cfg}}]
volumes:
- name: cfg
  configMap: {{name: cfg, defaultMode: 0644}}
"""
    if kind == "Pod":
        body = "".join("  " + line + "\n" for line in pod.splitlines())
        docs.append(f"apiVersion: v1\nkind: Pod\n{meta}spec:\n{body}")
    else:
        body = "".join("      " + line + "\n" for line in pod.splitlines())
        docs.append(
            f"apiVersion: apps/v1\nkind: {kind}\n{meta}spec:\n"
            f"  selector: {{matchLabels: {{app: o{i}}}}}\n  template:\n"
            f"    metadata: {{labels: {{app: o{i}}}}}\n    spec:\n{body}"
        )
for f in range(20):
    with open(os.path.join(out, f"part{f:02d}.yaml"), "w") as fh:
        fh.write("---\n".join(docs[f * 100:(f + 1) * 100]))
