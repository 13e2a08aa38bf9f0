"""Product analytics in Mixpanel's raw export shape, and integration attempts.

Users belong to tenants; a month's active users engage features. `agent-mode` ships in
month 3 and its adoption climbs; two surveys (users in the product, account admins for
the relationship NPS) both dip at the outage, the relationship one for longer; users who
hit the outage send `downtime_experienced` and, once it is over, `recovery_noticed`.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta
from typing import Any

from collectors.demo_company.timeline import Timeline, at, days_in

FEATURES = ("chat", "summarize", "search")
NEW_FEATURE = "agent-mode"
INTEGRATIONS = ("slack", "salesforce", "zendesk", "github", "notion")


def _event(name: str, user: str, moment: datetime, **props: Any) -> str:
    insert_id = hashlib.sha256(f"{name}|{user}|{moment.timestamp()}|{props}".encode()
                               ).hexdigest()[:32]
    return json.dumps({"event": name, "properties": {
        "time": int(moment.timestamp()), "distinct_id": user, "$insert_id": insert_id,
        **props}}, sort_keys=True)


def events(timeline: Timeline) -> list[str]:
    rng = random.Random(timeline.seed * 1231 + 19)
    lines: list[str] = []
    outage = timeline.outage
    outage_month = timeline.month_index(outage.start)
    launch = min(2, len(timeline.months) - 1)
    for index, month in enumerate(timeline.months):
        span = days_in(month) * 24.0

        def when(m: Any = month, s: float = span) -> datetime:
            return at(m, rng.uniform(0, s - 0.01))

        active = int(180 * timeline.growth[index])
        adoption = 0.0 if index < launch else min(0.55, 0.08 + 0.06 * (index - launch))
        for n in range(active):
            tenant = rng.choices(timeline.tenants,
                                 [timeline.tenant_weight[t] for t in timeline.tenants])[0]
            user = f"user-{tenant}-{n:04d}"
            for feature in rng.sample(FEATURES, k=rng.randint(1, 3)):
                lines.append(_event("feature_engaged", user, when(), feature=feature,
                                    tenant=tenant))
            if rng.random() < adoption:
                lines.append(_event("feature_engaged", user, when(), feature=NEW_FEATURE,
                                    tenant=tenant))
            if rng.random() < 0.2:  # one in five answers the in-product survey
                mood = 8.6 - (2.2 if index == outage_month else 0) + 0.05 * index
                score = max(0, min(10, round(rng.gauss(mood, 1.8))))
                lines.append(_event("nps_submitted", user, when(), score=score, tenant=tenant,
                                    survey="in_product"))
            if n % 6 == 0 and rng.random() < 0.5:  # account admins: the relationship survey
                # slower and lower than in-product: the outage weighs on it for two months
                dent = 1.6 if index in (outage_month, outage_month + 1) else 0.0
                score = max(0, min(10, round(rng.gauss(7.9 - dent + 0.04 * index, 1.6))))
                lines.append(_event("nps_submitted", f"admin-{tenant}-{n:04d}", when(),
                                    score=score, tenant=tenant, survey="relationship"))
            if index == outage_month and rng.random() < 0.3:
                hit = outage.start + timedelta(seconds=rng.uniform(0, outage.hours * 3600))
                lines.append(_event("downtime_experienced", user, hit, service="inference",
                                    tenant=tenant))
                lines.append(_event("recovery_noticed", user,
                                    outage.end + timedelta(minutes=rng.uniform(1, 45)),
                                    service="inference", tenant=tenant))
            if rng.random() < 0.03:
                lines.append(_event("defect_encountered", user, when(),
                                    feature=rng.choice(FEATURES), tenant=tenant))
        if index == launch:
            lines.append(_event("feature_deployed", "llmkpi-release", at(month, 10),
                                feature=NEW_FEATURE))
        for _ in range(rng.randint(40, 70)):
            tenant = rng.choice(timeline.tenants)
            ok = rng.random() < (0.93 if index == outage_month else 0.975 + 0.002 * index)
            lines.append(_event("integration_attempted", f"user-{tenant}-0000", when(),
                                integration=rng.choice(INTEGRATIONS), success=ok,
                                tenant=tenant))
    return sorted(lines)
