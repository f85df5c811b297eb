"""Sync jobs: a source bucket's listing planned page by page (``workers.core.sync``) and put
through the chain by the scan stage (``workers.agents.scan``)."""
