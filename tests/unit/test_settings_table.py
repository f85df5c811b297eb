"""The README's settings table is the settings class's, and deploy/ uses only real settings."""

import re
from pathlib import Path

from workers.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_ENV = {f"MOVINGDATA_{name.upper()}" for name in Settings.model_fields}


def test_the_readme_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings:begin -->\n")[1].split("<!-- settings:end -->")[0]
    assert table == settings_table(), "regenerate it: movingdata settings"


def test_every_setting_is_described() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_every_variable_used_in_deploy_is_a_setting() -> None:
    used = {
        name
        for path in (ROOT / "deploy").rglob("*")
        if path.is_file()
        and path.suffix in {".yaml", ".yml", ".env", ".example", ".md", ".py", ".sh", ""}
        for name in re.findall(r"MOVINGDATA_[A-Z0-9_]+", path.read_text(errors="replace"))
    }
    assert used, "deploy/ names no setting: the scan is broken"
    assert used - SETTINGS_ENV == set()
