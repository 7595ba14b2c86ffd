"""report.html's panels and the console table for client attributes (fedlang/runtime/report.py):
each attribute's counts go in one "participants by" panel, coverage and entropy in another, and
the table shows coverage and entropy but not the per-value counts."""

from fedlang.runtime.report import attribute_groups, panels

ROW = {"round": 1, "train_loss": 1.0, "participation": 0.5, "device_phone": 3, "device_laptop": 0,
       "device_coverage": 0.5, "device_entropy": 0.0, "region_eu": 2, "region_us": 1, "region_coverage": 1.0,
       "region_entropy": 0.918, "seconds": 1.0}


def test_attribute_columns_are_grouped_per_attribute():
    names = [k for k in ROW if k != "round"]
    assert attribute_groups(names) == {"device": ["device_phone", "device_laptop"],
                                       "region": ["region_eu", "region_us"]}
    titled = dict(panels(names))
    assert titled["participants by device"] == ["device_phone", "device_laptop"]
    assert titled["region diversity"] == ["region_coverage", "region_entropy"]
    assert all(not (title.startswith("device_") or title.startswith("region_")) for title in titled)


def test_the_round_table_hides_the_counts():
    from rich.console import Console

    from fedlang.runtime.runner import RoundTable

    console = Console(record=True, width=300)
    with RoundTable(console, 1, quiet=True) as table:
        table.add(ROW, ("loss",), False)
    header = console.export_text().splitlines()[0].split()
    assert "device_coverage" in header and "region_entropy" in header
    assert "device_phone" not in header and "region_eu" not in header
