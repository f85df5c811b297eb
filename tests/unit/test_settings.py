"""Secrets in settings never show: not in repr, str, a JSON dump, nor a structured log line."""

import io
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from workers.logs import JsonFormatter
from workers.settings import AZURITE_KEY, Settings

SECRETS = {
    "s3_access_key": "AKIDSECRETACCESS",
    "s3_secret_key": "s3-secret-key-value",
    "azure_key": "YXp1cmUtYWNjb3VudC1rZXktdmFsdWU=",
    "azure_sas_token": "sv=2024-08-04&sig=sas-signature-value",
    "kafka_sasl_password": "kafka-password-value",
    "openbao_token": "openbao-worker-token",
    "openbao_sink_token": "openbao-sink-token",
    "openbao_reader_token": "openbao-reader-token",
    "openbao_admin_token": "openbao-admin-token",
    "dashboard_token": "dashboard-token-value",
    "link_key": "share-link-signing-key",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    values = {name: SecretStr(value) for name, value in SECRETS.items()}
    return Settings(home=tmp_path, azure_credential="sas", **values)  # type: ignore[arg-type]


def logged(settings: Settings) -> str:
    """One JSON log line carrying the settings as a message argument and as an extra field."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("movingdata.test.settings")
    log.addHandler(handler)
    try:
        log.warning("settings %s", settings, extra={"settings": settings})
    finally:
        log.removeHandler(handler)
    return out.getvalue()


def test_every_credential_setting_is_secret() -> None:
    names = {
        name
        for name in Settings.model_fields
        if any(word in name for word in ("key", "secret", "token", "password"))
        and not name.endswith(("_key_id", "_signing_key", "_keyfile"))  # names, paths: no keys
    }
    assert names == set(SECRETS)
    for name in names:
        assert "SecretStr" in str(Settings.model_fields[name].annotation), name


def test_secrets_never_show(settings: Settings) -> None:
    shown = "\n".join((repr(settings), str(settings), settings.model_dump_json(), logged(settings)))
    assert "**********" in shown
    for name, value in SECRETS.items():
        assert value not in shown, name
    assert AZURITE_KEY not in repr(Settings())
