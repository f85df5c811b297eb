"""Tiering around the pure core: price and policy files, access logs, the backtest."""
