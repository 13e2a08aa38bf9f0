"""Engineering history: a real git repository (written with `git fast-import`), the deployment
log, PagerDuty-shaped incidents, a Jira export, release targets and monthly coverage reports.

The team gets better over the year — smaller changes, more deploy days, fewer failed
deploys, faster recovery, rising coverage — except around the outage, which starts with a
failed deploy of the inference service.
"""

from __future__ import annotations

import math
import random
import subprocess
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.demo_company.business import Person
from collectors.demo_company.timeline import Timeline, add_months, at, days_in

SERVICES = ("inference", "gateway", "web")
AREAS = ("serving", "gateway", "billing", "web", "infra", "evals")


@dataclass
class History:
    commits: list[tuple[str, datetime, str, str]] = field(default_factory=list)  # mark,...
    deployments: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


def progress_of(timeline: Timeline, moment: datetime) -> float:
    """0 at the start of the year, 1 at its end: how far the team's practices have come."""
    return min(1.0, max(0.0, (moment - timeline.start) / (timeline.end - timeline.start)))


def history(timeline: Timeline, staff: list[Person]) -> History:
    rng = random.Random(timeline.seed * 409 + 7)
    out = History()
    day = timeline.start.date()
    pending: list[str] = []
    serial = 0
    while day < timeline.end.date():
        engineers = [p for p in staff if p.tech and p.hired <= day
                     and (p.exited is None or p.exited >= day)]
        if day.weekday() < 5 and engineers:
            moment = at(day, 8.0)
            for _ in range(rng.randint(6, 14)):
                serial += 1
                author = rng.choice(engineers)
                moment += timedelta(minutes=rng.randint(5, 70))
                subject = f"{rng.choice(AREAS)}: change {serial}"
                out.commits.append((f":{serial}", moment, author.person, subject))
                pending.append(f":{serial}")
            skill = progress_of(timeline, moment)
            if rng.random() < 0.3 + 0.6 * skill and pending:  # more deploy days over the year
                out.deployments.extend(_deploys(rng, timeline, day, pending, skill))
                pending = []
        day += timedelta(days=1)
    outage = timeline.outage
    bad = {"id": f"deploy-{outage.start:%Y%m%d}-outage", "service": "inference",
           "environment": "production", "result": "failure",
           "started": outage.start - timedelta(minutes=14),
           "finished": outage.start - timedelta(minutes=2), "marks": []}
    out.deployments.append(bad)
    out.deployments.sort(key=lambda d: d["started"])
    out.failed = [d for d in out.deployments if d["result"] == "failure"]
    return out


def _deploys(rng: random.Random, timeline: Timeline, day: date, marks: list[str],
             skill: float) -> list[dict[str, Any]]:
    # A change waits in review and CI: a day early in the year, a few hours at its end.
    hour = 17.5 + rng.random() * 1.5 if skill < 0.5 else 14 + rng.random() * 4
    started = at(day, hour) + timedelta(days=1 if skill < 0.3 else 0)
    failed = rng.random() < 0.16 - 0.11 * skill
    return [{"id": f"deploy-{started:%Y%m%d-%H%M}", "service": rng.choice(SERVICES),
             "environment": "production", "result": "failure" if failed else "success",
             "started": started, "finished": started + timedelta(minutes=rng.randint(6, 20)),
             "marks": list(marks)}]


def write_repository(path: Path, hist: History) -> dict[str, str]:
    """A real repository with every commit; returns mark -> SHA."""
    path = path.resolve()  # git -C would read a relative marks path from inside the repo
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    chunks: list[bytes] = []
    for mark, moment, author, subject in hist.commits:
        stamp = f"{int(moment.timestamp())} +0000"
        message = subject.encode()
        content = f"{subject}\n".encode()
        chunks.append(b"commit refs/heads/main\nmark " + mark.encode() + b"\n")
        ident = f"{author} <{author}@demo.example> {stamp}\n".encode()
        chunks.append(b"author " + ident + b"committer " + ident)
        chunks.append(b"data %d\n%s\n" % (len(message), message))
        area = subject.split(":")[0]
        chunks.append(b"M 644 inline %s/notes.txt\ndata %d\n%s\n" % (area.encode(), len(content),
                                                                     content))
    marks_file = path / ".git" / "demo-marks"
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet",
                    f"--export-marks={marks_file}"], input=b"".join(chunks), check=True)
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "main"], check=True)
    pairs = (line.split() for line in marks_file.read_text().splitlines())
    return {mark: sha for mark, sha in pairs}


def deployment_rows(hist: History, shas: dict[str, str]) -> list[dict[str, Any]]:
    return [{"id": d["id"], "service": d["service"], "environment": d["environment"],
             "result": d["result"], "started": d["started"].isoformat(),
             "finished": d["finished"].isoformat(),
             "commit_shas": " ".join(shas[m] for m in d["marks"])} for d in hist.deployments]


def incidents(timeline: Timeline, hist: History) -> list[dict[str, Any]]:
    rng = random.Random(timeline.seed * 613 + 9)
    rows: list[dict[str, Any]] = []
    outage = timeline.outage

    def add(kind: str, created: datetime, hours: float, severity: str, service: str,
            title: str, deployment: str = "", contained: datetime | None = None) -> None:
        rows.append({"id": f"PD{len(rows) + 1:05d}", "description": title,
                     "service_name": service, "urgency": "high" if severity in ("P1", "P2")
                     else "low", "priority": severity,
                     "created_on": created.isoformat(),
                     "resolved_on": (created + timedelta(hours=hours)).isoformat(),
                     "seconds_to_first_ack": rng.randint(60, 900), "category": kind,
                     "contained_on": contained.isoformat() if contained else "",
                     "deployment_id": deployment})

    for deploy in hist.failed:
        if deploy["finished"] == outage.start - timedelta(minutes=2):
            add("availability", outage.start + timedelta(minutes=3),
                outage.hours - 0.05, "P1", "inference",
                "Inference down: bad model config in deploy", deploy["id"])
        elif rng.random() < 0.7:
            skill = progress_of(timeline, deploy["started"])
            add("availability", deploy["finished"] + timedelta(minutes=rng.randint(2, 30)),
                rng.lognormvariate(math.log(3.0 - 2.4 * skill), 0.6),
                rng.choice(("P2", "P3")), deploy["service"], "Errors after deploy",
                deploy["id"])
    for month in timeline.months:
        for _ in range(rng.randint(0, 3)):  # unrelated to deploys: capacity, vendors
            created = at(month, rng.random() * 24 * (days_in(month) - 1))
            add("availability", created, rng.lognormvariate(math.log(2.0), 0.8),
                rng.choice(("P3", "P4")), rng.choice(SERVICES), "Degraded latency")
        if rng.random() < 0.35:
            created = at(month, rng.random() * 24 * (days_in(month) - 1))
            contain = rng.lognormvariate(math.log(1.5), 0.7)
            add("security", created, contain + rng.random() * 10, "P2", "gateway",
                "Suspicious API key use", contained=created + timedelta(hours=contain))
    return sorted(rows, key=lambda r: r["created_on"])


def jira_time(moment: datetime) -> str:
    return moment.strftime("%d/%b/%y %I:%M %p")


def work_items(timeline: Timeline) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Jira rows (issue key, type, status, created, resolved, labels, fix version, points,
    time spent) and release targets: one release a month, a few shipped late."""
    rng = random.Random(timeline.seed * 823 + 13)
    items: list[dict[str, Any]] = []
    releases: list[dict[str, Any]] = []
    ideas_open: list[dict[str, Any]] = []
    debt_open: list[dict[str, Any]] = []

    def item(kind: str, created: datetime, resolved: datetime | None,
             **extra: Any) -> dict[str, Any]:
        row = {"Issue key": f"LLM-{len(items) + 1}", "Issue Type": kind,
               "Status": "Done" if resolved else "To Do", "Created": jira_time(created),
               "Resolved": jira_time(resolved) if resolved else "", "Labels": [],
               "Fix Version/s": "", "Story Points": "", "Time Spent": "",
               "Summary": f"{kind} {len(items) + 1}"} | extra
        items.append(row)
        return row

    for index, month in enumerate(timeline.months):
        name = f"{month:%Y.%m}"
        target = month.replace(day=20)
        late = rng.choice((0, 0, 1, 3, 6)) + (9 if index == timeline.month_index(
            timeline.outage.start) else 0)
        shipped = target + timedelta(days=late)
        releases.append({"name": name, "target": target.isoformat(),
                         "released": shipped.isoformat() if at(shipped) < timeline.end else ""})
        start = at(month, 9)
        for _ in range(rng.randint(10, 16)):  # stories for this month's release
            created = start - timedelta(days=rng.randint(5, 30))
            done = at(month, 24 * rng.uniform(0, days_in(month) - 1))
            resolved = done if done < timeline.end and rng.random() < 0.9 else None
            item("Story", created, resolved, **{"Fix Version/s": name,
                 "Story Points": str(rng.choice((1, 2, 3, 5, 8))),
                 "Status": "Done" if resolved else "In Progress"})
        for _ in range(rng.randint(5, 11)):  # bugs, fixed with hours logged
            created = at(month, 24 * rng.uniform(0, days_in(month) - 1))
            resolved = created + timedelta(hours=rng.uniform(4, 120))
            hours = rng.lognormvariate(math.log(6 - 2 * progress_of(timeline, created)), 0.5)
            item("Bug", created, resolved if resolved < timeline.end else None,
                 **{"Time Spent": str(int(hours * 3600)), "Fix Version/s": name})
        for _ in range(rng.randint(2, 5)):
            debt_open.append(item("Task", at(month, 24 * rng.uniform(0, 27)), None,
                                  Labels=["tech-debt"]))
        waiting = [r for r in debt_open if r["Status"] != "Done"]  # only open items close
        for row in rng.sample(waiting, k=min(len(waiting), rng.randint(1, 4))):
            close = at(month, 24 * rng.uniform(0, days_in(month) - 1))
            if row["Status"] != "Done" and close < timeline.end:
                row["Status"], row["Resolved"] = "Done", jira_time(close)
        for _ in range(rng.randint(4, 8)):
            ideas_open.append(item("Idea", at(month, 24 * rng.uniform(0, 27)), None,
                                   Status="Discovery"))
        waiting = [r for r in ideas_open if r["Status"] != "Done"]
        for row in rng.sample(waiting, k=min(len(waiting), rng.randint(3, 7))):
            close = at(month, 24 * rng.uniform(0, days_in(month) - 1))
            if row["Status"] != "Done" and close < timeline.end:
                row["Status"], row["Resolved"] = "Done", jira_time(close)
    for row in items:  # an item cannot be resolved before it was created
        if row["Resolved"] and datetime.strptime(row["Resolved"], "%d/%b/%y %I:%M %p") < \
                datetime.strptime(row["Created"], "%d/%b/%y %I:%M %p"):
            row["Resolved"] = row["Created"]
    return items, releases


def coverage_reports(timeline: Timeline) -> list[tuple[str, str]]:
    rng = random.Random(timeline.seed * 977 + 17)
    reports = []
    lines = 18_000
    for index, month in enumerate(timeline.months):
        lines += rng.randint(300, 900)
        rate = 0.66 + 0.17 * index / max(1, len(timeline.months) - 1) + rng.uniform(-0.02, 0.02)
        covered = int(lines * rate)
        stamp = int(at(add_months(month, 1)).timestamp() * 1000) - 3_600_000
        reports.append((f"coverage-{month:%Y-%m}.xml", (
            '<?xml version="1.0" ?>\n'
            f'<coverage version="7.6.1" timestamp="{stamp}" lines-valid="{lines}"'
            f' lines-covered="{covered}" line-rate="{covered / lines:.4f}" branches-covered="0"'
            ' branches-valid="0" branch-rate="0" complexity="0">\n'
            '\t<sources><source>/src/llm-platform</source></sources>\n'
            '\t<packages/>\n</coverage>\n')))
    return reports
