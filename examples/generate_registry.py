"""Write the example registry with expiry dates relative to a given day.

The demo always shows notices worth reading: one production license expires in 21
days, a development one in 10. Usage:

    python examples/generate_registry.py [--today 2026-12-04] [--output FILE]

Without --output the registry is printed; without --today the current UTC date is used.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta, timezone

TEMPLATE = """\
# Example registry for dify-license-exporter, generated for {today} by
# examples/generate_registry.py. Dates are relative to that day.
timezone: Asia/Shanghai

licenses:
  - id: DIFY-ENT-EXAMPLE-0001
    name: prod-main
    effective: {prod_main_effective}
    expires: {prod_main_expires}
    mode: online
    bound_to: {{cluster: prod-cn, namespace: dify}}
    last_refreshed: {prod_main_refreshed}T09:30:00+08:00
  - id: DIFY-ENT-EXAMPLE-0002
    name: prod-intl
    effective: {prod_intl_effective}
    expires: {prod_intl_expires}
    mode: offline
    bound_to: {{cluster: prod-cn, namespace: dify-intl}}
  - id: DIFY-ENT-EXAMPLE-0003
    name: prod-dr
    effective: {prod_dr_effective}
    expires: {prod_dr_expires}
    mode: offline
    bound_to: {{cluster: prod-cn, namespace: dify-dr}}
  - id: DIFY-ENT-EXAMPLE-0004
    name: staging
    effective: {staging_effective}
    expires: {staging_expires}
    mode: online
    bound_to: {{cluster: prod-cn, namespace: dify-staging}}
  - id: DIFY-ENT-EXAMPLE-0005
    name: test-shared
    effective: {test_shared_effective}
    expires: {test_shared_expires}
    mode: online
    bound_to: {{cluster: test-sg, namespace: dify-test}}
  - id: DIFY-ENT-EXAMPLE-0006
    name: dev-sandbox
    effective: {dev_effective}
    expires: {dev_expires}
    mode: offline
    bound_to: {{cluster: test-sg, namespace: dify-dev}}

instances:
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: production
    owner: Jane Roe <jane.roe@example.com>
    department: AI Platform
  - cluster: prod-cn
    namespace: dify-intl
    license: prod-intl
    environment: production
    owner: Li Wei <li.wei@example.com>
    department: International Business
  - cluster: prod-cn
    namespace: dify-dr
    license: prod-dr
    environment: production
    owner: Jane Roe <jane.roe@example.com>
    department: AI Platform
  - cluster: prod-cn
    namespace: dify-staging
    license: staging
    environment: staging
    owner: Jane Roe <jane.roe@example.com>
    department: AI Platform
  - cluster: test-sg
    namespace: dify-test
    license: test-shared
    environment: test
    owner: QA Team <qa@example.com>
    department: Quality Engineering
  - cluster: test-sg
    namespace: dify-qa
    license: test-shared
    environment: test
    owner: QA Team <qa@example.com>
    department: Quality Engineering
  - cluster: test-sg
    namespace: dify-sandbox
    license: dev-sandbox
    environment: development
    department: Developer Experience

renewals:
  - license: prod-main
    requester: procurement@example.com
    activator: sre-oncall@example.com
  - license: prod-intl
    requester: procurement@example.com
    activator: sre-oncall@example.com
  - license: prod-dr
    requester: procurement@example.com
    activator: sre-oncall@example.com
  - license: staging
    requester: procurement@example.com
    activator: sre-oncall@example.com
  - license: test-shared
    notice_days: [30, 7]
    requester: qa-lead@example.com
    activator: sre-oncall@example.com
  - license: dev-sandbox
    notice_days: [45, 14, 3]
    requester: devex@example.com
    activator: sre-oncall@example.com
"""

# (effective offset, expiry offset) in days from the given day, per license.
OFFSETS = {
    "prod_main": (-344, 21),
    "prod_intl": (-200, 165),
    "prod_dr": (-200, 165),
    "staging": (-290, 75),
    "test_shared": (-100, 265),
    "dev": (-355, 10),
}


def render(today: date) -> str:
    values = {"today": today.isoformat()}
    for name, (start, end) in OFFSETS.items():
        values[f"{name}_effective"] = (today + timedelta(days=start)).isoformat()
        values[f"{name}_expires"] = (today + timedelta(days=end)).isoformat()
    values["prod_main_refreshed"] = (today - timedelta(days=30)).isoformat()
    return TEMPLATE.format(**values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--today", type=date.fromisoformat, metavar="YYYY-MM-DD")
    parser.add_argument("--output", metavar="FILE")
    args = parser.parse_args(argv)
    today = args.today or datetime.now(timezone.utc).date()
    text = render(today)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
