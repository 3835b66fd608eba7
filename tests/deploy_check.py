#!/usr/bin/env python3
"""Checks of deploy/ that can run without a cluster, a Docker engine or AWS.

- YAML: docker-compose.yml, deploy/k8s, .github/workflows pass yamllint; the manifests render with
  `kubectl kustomize` and `docker compose config` accepts the compose file (each when the tool can
  run here; says "skipped" otherwise).
- systemd units pass `systemd-analyze verify` without a single warning.
- AWS: the IAM policy allows exactly the DynamoDB and Secrets Manager operations the code calls
  (least privilege), on the named table and secrets, and
  the Terraform policy says the same.
- Prometheus: the alert rules pass `promtool check rules` and their unit tests (`promtool test
  rules`), and use only metrics the code exports.
- Grafana: the dashboard is valid JSON; every SQL query in it and every ```sql block of README.md
  runs on a freshly migrated database; every metric it graphs is one the code exports.

  tests/deploy_check.py --mailsync build/debug/admin/mailsync   (MAILSYNC_DATABASE_URL set)
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
failures = []


def fail(what):
    failures.append(what)
    print("FAIL:", what)


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def check_yaml():
    files = [ROOT / "docker-compose.yml"] + sorted((ROOT / "deploy/k8s").glob("*.yaml")) + sorted(
        (ROOT / ".github/workflows").glob("*.yml"))
    if shutil.which("yamllint") is None:
        fail("yamllint is not installed (deploy/local/install-deps.sh installs it)")
    else:
        result = run(["yamllint", "-c", str(ROOT / ".yamllint"), "-f", "parsable"] + [str(f) for f in files])
        if result.returncode != 0:
            fail("yamllint:\n" + result.stdout + result.stderr)
        else:
            print(f"ok: yamllint, {len(files)} files")
    if shutil.which("kubectl"):
        result = run(["kubectl", "kustomize", str(ROOT / "deploy/k8s")])
        kinds = re.findall(r"^kind: (\w+)", result.stdout, re.M)
        if result.returncode != 0:
            fail("kubectl kustomize deploy/k8s: " + result.stderr)
        elif sorted(kinds) != sorted(["Namespace", "ConfigMap", "Job", "Deployment", "Deployment",
                                      "PodDisruptionBudget"]):
            fail(f"kustomize rendered {kinds}")
        else:
            for probe in ("/healthz", "/readyz"):
                if result.stdout.count("path: " + probe) != 2:
                    fail(f"both Deployments need a {probe} probe")
            if "secretRef" not in result.stdout or "CHANGE_ME" in result.stdout:
                fail("manifests must reference the Secret, never carry its values")
            print(f"ok: kubectl kustomize deploy/k8s renders {len(kinds)} objects")
    else:
        print("skipped: kubectl kustomize (no kubectl here)")
    # `docker compose config` validates without an engine; Debian's docker-compose (v1.29) too.
    compose = None
    if shutil.which("docker") and run(["docker", "compose", "version"]).returncode == 0:
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        compose = ["docker-compose"]
    if compose is None:
        print("skipped: docker compose config (neither the compose plugin nor docker-compose here)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # The compose file reads .env beside it: use the example, as a new user would.
        shutil.copy(ROOT / "docker-compose.yml", pathlib.Path(tmp) / "docker-compose.yml")
        shutil.copy(ROOT / ".env.example", pathlib.Path(tmp) / ".env")
        result = run(compose + ["config", "-q"], cwd=tmp)
        services = run(compose + ["config", "--services"], cwd=tmp).stdout.split()
        expected = {"postgres", "dynamodb", "migrate", "create-table", "mailsync-scheduler",
                    "mailsync-worker"}
        if result.returncode != 0:
            fail(" ".join(compose) + " config: " + result.stderr + result.stdout)
        elif set(services) != expected:
            fail(f"compose services {sorted(services)}, expected {sorted(expected)}")
        else:
            print(f"ok: {' '.join(compose)} config ({len(services)} services)")


def check_systemd():
    if shutil.which("systemd-analyze") is None:
        fail("systemd-analyze is not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        units = []
        for unit in sorted((ROOT / "deploy/systemd").glob("*.service")):
            # verify wants the binaries to exist: point ExecStart at one that does.
            text = re.sub(r"/usr/local/bin/[\w-]+", "/bin/true", unit.read_text())
            name = unit.name.replace("@.service", "@1.service")
            (pathlib.Path(tmp) / name).write_text(text)
            if "@" in unit.name:
                (pathlib.Path(tmp) / unit.name).write_text(text)
            units.append(name)
        result = run(["systemd-analyze", "verify", "--man=no"] + units, cwd=tmp)
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or output:
            fail("systemd-analyze verify: " + output)
        else:
            print(f"ok: systemd-analyze verify {', '.join(units)}")


def check_aws():
    before = len(failures)
    used = set()
    for source in list((ROOT / "common/src/dynamo").glob("*.cpp")) + list((ROOT / "worker").glob("*.cpp")):
        used |= set(re.findall(r'call\("(\w+)"', source.read_text()))
    admin_only = {"CreateTable", "UpdateTimeToLive"}  # `mailsync dynamo create-table`, not the worker
    needed = {"dynamodb:" + op for op in used - admin_only}
    secrets = set()
    for source in (ROOT / "common/src/aws").glob("*.cpp"):
        secrets |= set(re.findall(r'call\("(\w+)"', source.read_text()))
    needed |= {"secretsmanager:" + op for op in secrets}
    policy = json.loads((ROOT / "deploy/aws/iam-policy.json").read_text())
    allowed = set()
    for statement in policy["Statement"]:
        allowed |= set(statement["Action"])
        if statement["Resource"] == "*" or statement["Resource"].endswith(":secret:*"):
            fail("the IAM policy must name the table and the secrets, not *")
        services = {action.split(":")[0] for action in statement["Action"]}
        if len(services) != 1:
            fail(f"statement {statement.get('Sid')} mixes services {sorted(services)}")
    if allowed != needed:
        fail(f"IAM policy allows {sorted(allowed)}, the code calls {sorted(needed)}")
    terraform = set(re.findall(r'"((?:dynamodb|secretsmanager):\w+)"',
                               (ROOT / "deploy/aws/dynamodb.tf").read_text()))
    if terraform != allowed:
        fail(f"Terraform policy {sorted(terraform)} differs from iam-policy.json {sorted(allowed)}")
    tf = (ROOT / "deploy/aws/dynamodb.tf").read_text()
    if not re.search(r'ttl\s*{\s*attribute_name\s*=\s*"ttl"\s*enabled\s*=\s*true', tf):
        fail("the Terraform table must enable TTL on `ttl`")
    if len(failures) == before:
        print(f"ok: IAM policy = the {len(needed)} DynamoDB and Secrets Manager operations the code calls")


def metric_names():
    text = (ROOT / "common/src/metrics.cpp").read_text()
    return set(re.findall(r'\.Name\("(mailsync_\w+)"\)', text))


def sql_blocks():
    dashboard = json.loads((ROOT / "deploy/grafana/mailsync-dashboard.json").read_text())
    queries = []
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if "rawSql" in target:
                queries.append((f"dashboard panel '{panel['title']}'", target["rawSql"]))
            if "expr" in target:
                exprs.append((panel["title"], target["expr"]))
    readme = (ROOT / "README.md").read_text()
    for i, block in enumerate(re.findall(r"```sql\n(.*?)```", readme, re.S)):
        for statement in [s.strip() for s in block.split(";") if s.strip()]:
            queries.append((f"README sql block {i + 1}", statement))
    return queries, exprs


def check_grafana(mailsync):
    queries, exprs = sql_blocks()
    known = metric_names()
    for title, expr in exprs:
        for name in re.findall(r"mailsync_\w+", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if name not in known and base not in known:
                fail(f"dashboard panel '{title}' graphs {name}, which no process exports")
    url = os.environ.get("MAILSYNC_DATABASE_URL")
    if not url:
        fail("MAILSYNC_DATABASE_URL is not set (source the local stack's env)")
        return
    database = f"deploy_check_{os.getpid()}"
    parts = urllib.parse.urlsplit(url)
    admin = run(["psql", url, "-qAtc", f"CREATE DATABASE {database}"])
    if admin.returncode != 0:
        fail("cannot create a database: " + admin.stderr)
        return
    test_url = urllib.parse.urlunsplit(parts._replace(path="/" + database))
    try:
        migrate = run([mailsync, "migrate"], env={**os.environ, "MAILSYNC_DATABASE_URL": test_url})
        if migrate.returncode != 0:
            fail("mailsync migrate: " + migrate.stderr)
            return
        before = len(failures)
        for where, query in queries:
            result = run(["psql", test_url, "-v", "ON_ERROR_STOP=1", "-qAtc", query])
            if result.returncode != 0:
                fail(f"{where}: {result.stderr.strip()}\n{query}")
        if len(failures) == before:
                print(f"ok: {len(queries)} SQL queries (dashboard and README) run on a migrated database; "
                  f"{len(exprs)} PromQL expressions use exported metrics")
    finally:
        run(["psql", url, "-qAtc", f"DROP DATABASE IF EXISTS {database}"])


def check_alerts():
    """deploy/prometheus: promtool accepts the rules, their unit tests pass, every metric exists."""
    rules = ROOT / "deploy/prometheus/mailsync-alerts.yml"
    known = metric_names()
    for name in re.findall(r"mailsync_\w+", rules.read_text()):
        if name not in known:
            fail(f"{rules.name} uses {name}, which no process exports")
    if shutil.which("promtool") is None:
        fail("promtool is not installed (deploy/local/install-deps.sh installs Debian's prometheus)")
        return
    for argv in (["promtool", "check", "rules", rules.name],
                 ["promtool", "test", "rules", "mailsync-alerts.test.yml"]):
        result = run(argv, cwd=rules.parent)
        if result.returncode != 0:
            fail(" ".join(argv) + ":\n" + result.stdout + result.stderr)
            return
    print("ok: promtool check rules and test rules deploy/prometheus/mailsync-alerts.yml")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mailsync", required=True, help="the built mailsync admin binary")
    args = parser.parse_args()
    check_yaml()
    check_systemd()
    check_aws()
    check_alerts()
    check_grafana(args.mailsync)
    if failures:
        print(f"{len(failures)} deploy check(s) failed")
        return 1
    print("all deploy checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
