"""Print the sales summary described by a config file (config.json by default)."""

import sys

from loader import load_config, load_rows
from transforms import filter_rows, mean, totals_by


def build_report(config):
    rows = load_rows(config["input"], config.get("date_format", "%Y-%m-%d"))
    kept = filter_rows(rows, config.get("min_amount", 0), config.get("exclude_regions", []))
    by_region = totals_by(kept, "region")
    top = list(by_region.items())[: config.get("top_n", 3)]
    return {
        "rows_read": len(rows),
        "rows_kept": len(kept),
        "total": round(sum(r["amount"] for r in kept), 2),
        "average_order": round(mean(r["amount"] for r in kept), 2),
        "top_regions": top,
    }


def main(argv):
    config = load_config(argv[1] if len(argv) > 1 else "config.json")
    report = build_report(config)
    cur = config.get("currency", "")
    print(f"rows: {report['rows_kept']} of {report['rows_read']} kept")
    print(f"total: {report['total']:.2f} {cur}")
    print(f"average order: {report['average_order']:.2f} {cur}")
    print("top regions:")
    for region, amount in report["top_regions"]:
        print(f"  {region:<8} {amount:>9.2f} {cur}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
