"""Which secret settings each component of a deployment needs: the table the Kubernetes
Secrets (deploy/k8s/*-secret.env.example) and the Compose services follow, and the tests
check both ways (each component holds what it reads, and reads what it holds).

A component "uses" a secret setting when its code path reads it (``tests.deploy.reads``).
Whether a setting applies depends on the configuration: the broker's SASL user only with a
SASL protocol, the Azure key or SAS token by ``MOVINGDATA_AZURE_CREDENTIAL``.
"""

from collections.abc import Mapping
from typing import Literal, get_args

from pydantic import SecretStr

from workers.app import STAGES
from workers.settings import Settings

Component = Literal["worker", "sink", "api", "dashboard", "topics", "init"]
COMPONENTS: tuple[Component, ...] = get_args(Component)

# Every setting that is a credential: the secret types, the database URL (it carries its
# user's password) and the broker's SASL user (with its password, an identity).
SECRET_SETTINGS = frozenset(
    name
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
) | {"mongo_uri", "kafka_sasl_username"}

KAFKA = frozenset({"kafka_sasl_username", "kafka_sasl_password"})
STORES = frozenset({"s3_access_key", "s3_secret_key", "azure_key", "azure_sas_token"})

NEEDS: Mapping[Component, frozenset[str]] = {
    # Every stage but the sink: its own broker user, the database, the workers' OpenBao token
    # (the KEK's encrypt and decrypt), the stores' keys.
    "worker": KAFKA | STORES | {"mongo_uri", "openbao_token"},
    # The sink also signs audit checkpoints, with a token no other process holds.
    "sink": KAFKA | STORES | {"mongo_uri", "openbao_token", "openbao_sink_token"},
    # The API restores (the reader's token: decrypt, verify), reads and stages objects, signs
    # share links; its own broker user.
    "api": KAFKA | STORES | {"mongo_uri", "openbao_reader_token", "link_key"},
    # The dashboard reads the database and the broker (a read-only user of each) with its
    # reader API token: no OpenBao token, no store key.
    "dashboard": KAFKA | {"mongo_uri", "dashboard_token"},
    # Kubernetes' topics Job: creates the topics as the workers' broker user.
    "topics": KAFKA,
    # Compose's one-shot `init`: the topics and every store's container.
    "init": KAFKA | STORES,
}
# Whose pods mount the GCS service account's key (the Secret movingdata-gcs): those that
# open a GCS store, i.e. read MOVINGDATA_GCS_CREDENTIAL.
GCS_KEY_SETTING = "gcs_credential"
# Settings only an operator's command reads: in no component's table, in no Secret.
OPERATORS_ONLY = frozenset({"openbao_admin_token"})


def component_of(name: str) -> Component:
    """The component a Deployment or Job (``movingdata-<name>``) or a Compose service runs."""
    name = name.removeprefix("movingdata-")
    if name in STAGES:
        return "sink" if name == "sink" else "worker"
    if name in COMPONENTS:
        return name  # type: ignore[return-value]
    raise KeyError(f"{name}: not a component of the deployment")


def applies(setting: str, settings: Settings) -> bool:
    """Whether a secret setting is read at all under this configuration."""
    if setting in KAFKA:
        return settings.kafka_security_protocol.startswith("SASL")
    if setting == "azure_key":
        return settings.azure_credential == "key"
    if setting == "azure_sas_token":
        return settings.azure_credential == "sas"
    return True


def needed(component: Component, settings: Settings) -> set[str]:
    """The secret settings ``component`` needs under ``settings``' configuration."""
    return {s for s in NEEDS[component] if applies(s, settings)}
