#!/usr/bin/env python
"""Generate the clustering and recommendation examples (CSV files with a known structure).

    python scripts/make_examples.py [--out data/generated] [--seed 7]

writes
  customers.csv     clustering: 3,000 customers from 4 planted segments (spend, visits,
                    tenure, basket size, channel); key customer_id.
  interactions.csv  recommendation: 800 users x 300 items in 6 taste groups; each user's 25
                    interactions are 90 % items of their own group; plays counts events
                    (implicit feedback); key event_id. A recommender must recover the groups:
                    the most popular items are spread evenly over the groups, so the
                    popularity baseline cannot.

Pure Python (random), no Spark: the files are the inputs of `lakeforge frame` / `lakeforge run`.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SEGMENTS = [  # mean spend, visits / month, tenure months, basket, preferred channel
    (35.0, 2.0, 6.0, 1.5, "web"),
    (120.0, 8.0, 40.0, 3.0, "store"),
    (60.0, 12.0, 18.0, 1.2, "app"),
    (300.0, 1.5, 70.0, 9.0, "store"),
]


def customers(path: Path, rows: int, rnd: random.Random) -> None:
    lines = ["customer_id,spend,visits,tenure_months,basket_size,channel"]
    for i in range(rows):
        spend, visits, tenure, basket, channel = SEGMENTS[i % len(SEGMENTS)]
        if rnd.random() < 0.15:
            channel = rnd.choice(["web", "store", "app"])
        lines.append(f"C{i:05d},{max(1.0, rnd.gauss(spend, spend * 0.15)):.2f},{max(0.0, rnd.gauss(visits, 1.0)):.1f},"
                     f"{max(0, int(rnd.gauss(tenure, 4)))},{max(1.0, rnd.gauss(basket, 0.6)):.1f},{channel}")
    path.write_text("\n".join(lines) + "\n")


def interactions(path: Path, users: int, items: int, groups: int, per_user: int, rnd: random.Random) -> None:
    lines, event = ["event_id,user_id,item_id,plays"], 0
    for u in range(users):
        own = [i for i in range(items) if i % groups == u % groups]
        k_own = round(per_user * 0.9)
        picks = set(rnd.sample(own, min(k_own, len(own))))
        while len(picks) < per_user:
            picks.add(rnd.randrange(items))
        for i in sorted(picks):
            event += 1
            lines.append(f"E{event:07d},{u},{i},{1 + int(rnd.expovariate(0.5))}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/generated", help="output folder (default: data/generated)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--users", type=int, default=800)
    ap.add_argument("--items", type=int, default=300)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(args.seed)
    customers(out / "customers.csv", args.customers, rnd)
    interactions(out / "interactions.csv", args.users, args.items, 6, 25, rnd)
    print(f"wrote {out / 'customers.csv'} ({args.customers} rows, 4 segments) and {out / 'interactions.csv'} "
          f"({args.users * 25} rows, {args.users} users x {args.items} items in 6 groups)")


if __name__ == "__main__":
    main()
