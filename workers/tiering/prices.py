"""Load ``deploy/prices/*.toml`` (checked by ``workers.core.prices``), keyed by provider."""

from pathlib import Path

from workers.core.prices import PriceError, ProviderPrices, parse_prices

PRICES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prices"


def load_prices(folder: Path = PRICES_DIR) -> dict[str, ProviderPrices]:
    """Every ``*.toml`` in ``folder``; one provider per file."""
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise PriceError(f"{folder}: no *.toml prices files")
    loaded: dict[str, ProviderPrices] = {}
    for path in files:
        prices = parse_prices(path.read_text(), path.name)
        if prices.provider in loaded:
            raise PriceError(f"{path.name}: provider: {prices.provider!r} priced twice")
        loaded[prices.provider] = prices
    return loaded
