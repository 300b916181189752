from datetime import date

from loader import load_config, load_rows


def test_load_rows_computes_amount(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("date,region,product,qty,unit_price\n2024-05-02,north,kettle,3,29.90\n")
    (row,) = load_rows(f)
    assert row["date"] == date(2024, 5, 2)
    assert row["amount"] == 89.7


def test_shipped_config_points_at_the_csv():
    assert load_config("config.json")["input"] == "data/sales.csv"
