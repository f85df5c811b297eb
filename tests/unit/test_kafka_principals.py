"""The local broker's principals: what each role is granted, and which SASL user a process of
a role loads (``tests/e2e/test_broker_security.py`` shows the broker enforcing it)."""

from pathlib import Path

import pytest

from workers.settings import kafka_role_env, load_settings
from workers.stack.principals import GRANTS, ROLES, acl_arguments, super_users, username


def granted(role: str, resource: str) -> set[str]:
    return {op for g in GRANTS if role in g.roles and g.resource == resource for op in g.operations}


def test_the_dashboard_only_reads_and_the_others_write() -> None:
    assert granted("dashboard", "topic") == {"Read", "Describe"}
    assert granted("dashboard", "group") == {"Describe"}
    for role in ("worker", "api", "operator"):
        assert {"Read", "Write", "Describe"} <= granted(role, "topic"), role
        assert granted(role, "group") == {"Read", "Describe"}, role
    assert {r for r in ROLES if "Create" in granted(r, "topic")} == {"worker", "operator"}
    assert not any({"Delete", "Alter", "All"} & set(g.operations) for g in GRANTS)


def test_acls_are_prefixed_on_the_deployments_topics_and_groups() -> None:
    for grant in GRANTS:
        argv = acl_arguments(grant, "acme")
        assert argv[:3] == ["--add", "--resource-pattern-type", "prefixed"]
        names = [argv[i + 1] for i, a in enumerate(argv) if a == f"--{grant.resource}"]
        assert names == (["acme."] if grant.resource == "topic" else ["acme-", "acme."])
        principals = {argv[i + 1] for i, a in enumerate(argv) if a == "--allow-principal"}
        assert principals == {f"User:{username(r)}" for r in grant.roles}
    assert super_users("movingdata") == "User:ANONYMOUS;User:movingdata"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("USERNAME", "PASSWORD"):
        monkeypatch.delenv(f"MOVINGDATA_KAFKA_SASL_{name}", raising=False)
    monkeypatch.delenv("MOVINGDATA_KAFKA_ROLE", raising=False)
    monkeypatch.setenv("MOVINGDATA_HOME", str(tmp_path))
    (tmp_path / "local.env").write_text(
        "MOVINGDATA_KAFKA_SASL_USERNAME=movingdata\nMOVINGDATA_KAFKA_SASL_PASSWORD=shared\n"
    )
    for role in ROLES:
        (tmp_path / kafka_role_env(role)).write_text(
            f"MOVINGDATA_KAFKA_SASL_USERNAME={username(role)}\n"
            f"MOVINGDATA_KAFKA_SASL_PASSWORD=pw-{role}\n"
        )
    return tmp_path


def credentials(**kwargs: object) -> tuple[str | None, str | None]:
    s = load_settings(**kwargs)  # type: ignore[arg-type]
    password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None
    return s.kafka_sasl_username, password


def test_a_process_loads_its_roles_user(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials() == ("movingdata", "shared")  # no role: the shared user (tests, bench)
    assert credentials(kafka_role="dashboard") == ("movingdata-dashboard", "pw-dashboard")
    assert credentials(operator=True, kafka_role="api") == ("movingdata-api", "pw-api")
    assert load_settings(kafka_role="worker").kafka_role == "worker"
    monkeypatch.setenv("MOVINGDATA_KAFKA_ROLE", "dashboard")  # the setting picks another
    assert credentials(kafka_role="worker") == ("movingdata-dashboard", "pw-dashboard")
    monkeypatch.setenv("MOVINGDATA_KAFKA_SASL_USERNAME", "someone")  # the environment wins
    monkeypatch.setenv("MOVINGDATA_KAFKA_SASL_PASSWORD", "theirs")
    assert credentials(kafka_role="worker") == ("someone", "theirs")


def test_a_role_without_its_file_keeps_the_shared_user(home: Path) -> None:
    (home / kafka_role_env("operator")).unlink()
    assert credentials(operator=True, kafka_role="operator") == ("movingdata", "shared")
