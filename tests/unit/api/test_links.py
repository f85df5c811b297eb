"""Without ``MOVINGDATA_LINK_KEY`` share links are off: making one is a 503 saying so, and no
URL is served (404), whatever it carries."""

from types import SimpleNamespace

import pytest

from workers.api import links
from workers.api.problems import Problem
from workers.api.tokens import ROLE_SCOPES, Principal
from workers.settings import Settings

WRITER = Principal("w", "acme", ROLE_SCOPES["writer"])


async def test_without_a_link_key_no_link_is_made_and_none_is_served() -> None:
    svc = SimpleNamespace(settings=Settings(link_key=None))
    with pytest.raises(Problem) as made:
        await links.create_link("o1", None, WRITER, svc, "r1")  # type: ignore[arg-type]
    assert made.value.status == 503 and "MOVINGDATA_LINK_KEY" in made.value.detail
    with pytest.raises(Problem) as served:
        await links.open_link("abc", svc, "r2", exp=1, sig="00")  # type: ignore[arg-type]
    assert served.value.status == 404
